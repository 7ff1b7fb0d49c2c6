"""`llmctl local ...` checks that need no engine: inputs before anything starts, flags a running stack
cannot honour, the API key on request, a private git-ignored state folder, and Ctrl-C."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

from llmctl.procs import Background
from tests.cli.local.test_local import CONFIG, _marked_processes
from tests.fixtures.server import make_tiny_lora

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]


@pytest.fixture
def running_stack(llmctl):
    """A stack recorded as running, as `local up` leaves it, with sleepers in the server's and S3's place."""
    llmctl.write_config(CONFIG)
    root = llmctl.cwd / ".llmctl"
    local = root / "local"
    procs = [Background(local, name) for name in ("server", "s3")]
    server_pid, s3_pid = (p.start(SLEEPER, env=dict(os.environ)) for p in procs)
    endpoint = {"url": "http://127.0.0.1:18123", "api_key": "the-local-key", "model": "tiny-llama",
                "model_path": str(local / "models" / "m"), "s3_url": "http://127.0.0.1:18124", "server_pid": server_pid,
                "s3_pid": s3_pid, "state_dir": str(local), "timeline": {"phases": [], "total_s": 1.0},
                "already_running": False, "model_source": "tiny random model"}
    (root / "localdemo.json").write_text(json.dumps({"local": endpoint}))
    yield endpoint
    for p in procs:
        p.stop(grace_s=2)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_a_missing_model_folder_fails_at_once_before_anything_starts(llmctl):
    llmctl.write_config(CONFIG)
    done = llmctl("local", "up", "--model", "/nonexistent", timeout=60)
    assert done.returncode == 2
    assert _error_lines(done.stderr) == [
        "error: --model /nonexistent: no such folder; fix: point --model at a local Hugging Face model folder"]
    assert "embedded S3" not in done.stderr and "Traceback" not in done.stderr
    assert not (llmctl.cwd / ".llmctl" / "local" / "s3.log").exists()  # S3 was never started
    assert _marked_processes(llmctl.cwd / ".llmctl" / "local") == []


def test_a_changed_model_or_port_on_a_running_stack_is_refused_with_the_restart(llmctl, running_stack, tmp_path):
    other = tmp_path / "other-model"
    other.mkdir()
    (other / "config.json").write_text("{}")
    model = llmctl("local", "up", "--model", str(other))
    assert model.returncode == 2
    assert _error_lines(model.stderr) == [
        f"error: the local endpoint is already running and it serves tiny random model: --model {other} would need a "
        f"restart; fix: `llmctl local down` then `llmctl local up --model {other}`"]
    port = llmctl("local", "up", "--port", "18999")
    assert port.returncode == 2
    assert "it listens on port 18123: --port 18999 would need a restart" in port.stderr
    assert "`llmctl local down` then `llmctl local up --port 18999`" in port.stderr
    same = llmctl("local", "up", "--port", "18123", "-o", "json", check=True)
    assert json.loads(same.stdout)["already_running"] is True
    assert len(_marked_processes(llmctl.cwd / ".llmctl" / "local")) == 2  # nothing was restarted or stopped


def test_a_changed_adapter_set_on_a_running_stack_is_refused_with_the_restart(llmctl, running_stack, tmp_path):
    sql, chat = make_tiny_lora(tmp_path / "sql"), make_tiny_lora(tmp_path / "chat", seed=2)
    state = llmctl.cwd / ".llmctl" / "localdemo.json"
    state.write_text(json.dumps({"local": {**running_stack, "adapters": ["sql"]}}))
    added = llmctl("local", "up", "--adapter", str(sql), "--adapter", f"{chat}:chat")
    assert added.returncode == 2
    assert _error_lines(added.stderr) == [
        f"error: the local endpoint is already running and it serves adapters sql: --adapter {sql}:sql --adapter "
        f"{chat}:chat would need a restart; fix: `llmctl local down` then `llmctl local up --adapter {sql}:sql "
        f"--adapter {chat}:chat`"]
    same = llmctl("local", "up", "--adapter", f"{sql}:sql", "-o", "json", check=True)
    assert json.loads(same.stdout)["already_running"] is True
    assert len(_marked_processes(llmctl.cwd / ".llmctl" / "local")) == 2  # nothing was restarted or stopped


def test_status_shows_the_api_key_only_when_asked(llmctl, running_stack):
    hidden = json.loads(llmctl("local", "status", "-o", "json", check=True).stdout)
    assert hidden["api_key"] == "(hidden: --show-api-key)" and hidden["running"] is True
    shown = llmctl("local", "status", "--show-api-key", check=True)
    assert "the-local-key" in shown.stdout
    assert "the-local-key" not in llmctl("local", "status", check=True).stdout
    assert json.loads(llmctl("local", "status", "--show-api-key", "-o", "json", check=True).stdout)["api_key"] == "the-local-key"


def _spawn_on_a_terminal(llmctl, *args: str) -> tuple[subprocess.Popen, int]:
    """`llmctl` as on a user's terminal: a pty that is its controlling terminal, so ^C is a real Ctrl-C."""
    main, side = pty.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, b"\x00\x20\x00\x64\x00\x00\x00\x00")  # 32 rows, 100 columns
    env = {**llmctl.env, "TERM": "xterm"}
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "llmctl", *args], cwd=llmctl.cwd, env=env, stdin=side, stdout=side,
                            stderr=side, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    os.close(side)
    return proc, main


def _read_until(main: int, proc: subprocess.Popen, seen: bytearray, needle: bytes, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in seen:
            return True
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                seen += os.read(main, 65536)
            except OSError:  # the other side closed: the process ended
                return needle in seen
        elif proc.poll() is not None:
            return needle in seen
    return needle in seen


def test_ctrl_c_during_local_up_says_what_it_stopped_and_leaves_nothing(llmctl):
    llmctl.write_config(CONFIG)
    state_root = llmctl.cwd / ".llmctl" / "local"
    proc, main = _spawn_on_a_terminal(llmctl, "local", "up")
    seen = bytearray()
    try:
        assert _read_until(main, proc, seen, b"embedded S3 at", 240), seen.decode(errors="replace")[-3000:]
        os.write(main, b"\x03")  # Ctrl-C: SIGINT to the terminal's foreground process group
        _read_until(main, proc, seen, b"\x00never", 60)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        os.close(main)
    text = seen.decode(errors="replace")
    assert rc == 130, text[-3000:]
    assert "error: interrupted" in text and "stopped the embedded S3" in text, text[-3000:]
    assert "nothing of the local stack is left running" in text
    assert "Downloading model" in text and "Loading engine" in text  # the live panel drew the local phases...
    assert "Scheduling" not in text and "Pulling image" not in text  # ...and only those
    assert _marked_processes(state_root) == []
    # The state folder holds the API key: git-ignored, private.
    assert (llmctl.cwd / ".llmctl" / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (llmctl.cwd / ".llmctl").stat().st_mode & 0o777 == 0o700
    assert (state_root / "s3.log").stat().st_mode & 0o777 == 0o600

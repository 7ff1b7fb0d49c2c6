"""The user's own container engine (docker, podman or buildah): find one that works, build, push.

The only module that runs an image engine. All three build the same Dockerfile and speak the
same registry protocol; what differs between them is kept here:
- buildah keeps a layer cache only with `--layers` (docker and podman always do);
- podman and buildah read registry logins from an auth file (containers-auth.json(5)) named per
  call, so llmctl writes the ECR login into a private temporary file for the length of the
  command and nothing is left after it; docker keeps logins in its own config or credential
  helper, so there llmctl runs `docker login --password-stdin`, as the ECR documentation does;
- podman and buildah write the pushed manifest's digest to `--digestfile`; docker prints it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmctl.errors import EXIT_INTERRUPTED, ConfigError, LlmctlError

ENGINES = ("docker", "podman", "buildah")
# EKS GPU nodes are x86_64; a build on an arm64 laptop must still produce an amd64 image.
PLATFORM = "linux/amd64"
PROBE_TIMEOUT_S = 30
_DOCKER_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class Engine:
    name: str
    path: str

    def build(self, context: Path, tags: Sequence[str], build_args: dict[str, str], on_line: LineSink) -> None:
        argv = [self.path, "build", "--platform", PLATFORM, "--file", str(context / "Dockerfile")]
        if self.name == "buildah":
            argv.append("--layers")
        for key in sorted(build_args):
            argv += ["--build-arg", f"{key}={build_args[key]}"]
        for tag in tags:
            argv += ["--tag", tag]
        _run(self, "build", [*argv, str(context)], on_line)

    @contextlib.contextmanager
    def logged_in(self, registry: str, username: str, password: str) -> Iterator[Path | None]:
        """Log in to `registry` for the body of the `with`; yields the auth file (None for docker)."""
        if self.name == "docker":
            _run(self, "login", [self.path, "login", "--username", username, "--password-stdin", registry], lambda line: None, stdin=password)
            yield None
            return
        with tempfile.TemporaryDirectory(prefix="llmctl-auth-") as folder:  # mode 0700
            authfile = Path(folder) / "auth.json"
            auth = base64.b64encode(f"{username}:{password}".encode()).decode()
            authfile.write_text(json.dumps({"auths": {registry: {"auth": auth}}}))
            yield authfile

    def push(self, ref: str, authfile: Path | None, on_line: LineSink) -> str | None:
        """Push `ref`; the digest the registry answered with, when the engine reports one."""
        if self.name == "docker":
            lines: list[str] = []
            _run(self, "push", [self.path, "push", ref], lambda line: (lines.append(line), on_line(line)))
            found = [m.group(1) for line in lines if (m := _DOCKER_DIGEST.search(line))]
            return found[-1] if found else None
        with tempfile.TemporaryDirectory(prefix="llmctl-push-") as folder:
            digestfile = Path(folder) / "digest"
            argv = [self.path, "push", "--authfile", str(authfile), "--digestfile", str(digestfile), ref]
            _run(self, "push", argv, on_line)
            digest = digestfile.read_text().strip() if digestfile.exists() else ""
            return digest or None


def detect(wanted: str | None = None) -> Engine:
    """`wanted`, or the first of docker, podman, buildah that is installed and answers `info`."""
    if wanted is not None and wanted not in ENGINES:
        raise ConfigError(f"--engine {wanted!r} is not one of {', '.join(ENGINES)}")
    problems = []
    for name in [wanted] if wanted else ENGINES:
        path = shutil.which(name)
        reason = "not installed" if path is None else _unusable(name, path)
        if reason is None:
            return Engine(name, path)
        problems.append(f"{name} {reason}")
    which = f"engine {wanted}" if wanted else "container engine"
    raise ConfigError(
        f"no usable {which} for `llmctl build --local`: {'; '.join(problems)}",
        hint="install docker (and start its daemon), podman or buildah, or run `llmctl build` to build in AWS CodeBuild",
    )


def _unusable(name: str, path: str) -> str | None:
    """None when `<engine> info` works (the docker daemon answers; podman/buildah storage opens)."""
    try:
        done = subprocess.run([path, "info"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"does not answer (`{name} info` took over {PROBE_TIMEOUT_S}s)"
    except OSError as exc:
        return f"cannot run ({exc.strerror})"
    if done.returncode == 0:
        return None
    last = next((line.strip() for line in reversed(done.stderr.splitlines() + done.stdout.splitlines()) if line.strip()), "")
    return f"does not work (`{name} info`: {last or f'exit {done.returncode}'})"


def _run(engine: Engine, verb: str, argv: list[str], on_line: LineSink, *, stdin: str | None = None) -> None:
    """Run one engine command, each output line to `on_line`; a failure names its last line."""
    # LC_ALL=C keeps the engines' messages (and docker's digest line) in English.
    env = {**os.environ, "LC_ALL": "C"}
    last = ""
    try:
        with subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", env=env,
        ) as proc:
            if stdin is not None:
                proc.stdin.write(stdin)
                proc.stdin.close()
            try:
                for raw in proc.stdout:
                    line = raw.rstrip("\n")
                    if line.strip():
                        last = line.strip()
                    on_line(line)
            except KeyboardInterrupt:
                proc.terminate()
                proc.wait(30)
                raise LlmctlError(f"interrupted: {engine.name} {verb} stopped", hint="re-run `llmctl build --local`", exit_code=EXIT_INTERRUPTED) from None
    except OSError as exc:
        raise LlmctlError(f"cannot run {engine.path}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise LlmctlError(
            f"{engine.name} {verb} failed (exit {proc.returncode}): {last or 'no output'}",
            hint="the lines above show the failing step" if verb in ("build", "push") else None,
        )

"""Background processes that outlive the command that started them (local mode).

Each has a pid file and a log file in a state folder. A pid file is trusted only while that
pid is alive *and* its command line still carries our marker, so a stale file left by a
crash (or a recycled pid) never makes llmctl signal someone else's process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    if preferred and port_free(preferred, host):
        return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Background:
    """A named detached process: `<dir>/<name>.pid`, `<dir>/<name>.log`."""

    root: Path
    name: str

    @property
    def pid_file(self) -> Path:
        return self.root / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def marker(self) -> str:
        return f"LLMCTL_PROCESS={self.root.resolve()}/{self.name}"

    def start(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> int:
        """Start detached (own session, so Ctrl-C on llmctl doesn't hit it) and record its pid."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker_key, marker_value = self.marker.split("=", 1)
        with open(os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
            proc = subprocess.Popen(
                argv,
                env={**env, marker_key: marker_value},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        with open(os.open(self.pid_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as pid_file:
            pid_file.write(str(proc.pid))
        # Popen returns once the exec began, a moment before the kernel publishes the new
        # environment; wait for it so that pid() right after start() sees our marker.
        deadline = time.monotonic() + 5
        while _owner(proc.pid, self.marker) is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return proc.pid

    def pid(self) -> int | None:
        """Our live pid, or None (a pid file of a dead or foreign process is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        owner = _owner(pid, self.marker)
        if owner:
            return pid
        if owner is False:
            self.pid_file.unlink(missing_ok=True)
        return None

    def stop(self, grace_s: float) -> bool:
        """SIGTERM the leader (it drains and stops its children), wait up to `grace_s`, then
        SIGKILL whatever is left of its process group. True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        try:
            os.killpg(pid, signal.SIGKILL)  # stragglers: engine workers of a leader that hung
        except ProcessLookupError:
            pass
        while _alive(pid):
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def tail(self, lines: int = 20) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            return []


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def _owner(pid: int, marker: str) -> bool | None:
    """True for our live process, False for a dead or foreign one, None while a live process's
    environment is still empty (mid-exec): neither trusted nor forgotten."""
    if not _alive(pid):
        return False
    if not Path("/proc").is_dir():  # no procfs (macOS): a live pid is the best evidence we have
        return True
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False  # another user's process
    if not environ:
        return None
    return marker.encode() in environ.split(b"\0")

"""Detached processes: pid files trusted only for our own live process, clean stops."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys

from llmctl.procs import Background, free_port, port_free

SLEEPER = [sys.executable, "-c", "import time\nwhile True: time.sleep(0.1)"]
TERM_IGNORER = [sys.executable, "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"]


def test_start_stop_leaves_nothing(tmp_path):
    proc = Background(tmp_path, "sleeper")
    pid = proc.start(SLEEPER, env=dict(os.environ))
    assert proc.pid() == pid
    assert proc.stop(grace_s=5) is True
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0] == "Z"


def test_sigterm_ignored_is_killed_after_grace(tmp_path):
    proc = Background(tmp_path, "stubborn")
    pid = proc.start(TERM_IGNORER, env=dict(os.environ))
    assert proc.pid() == pid
    assert proc.stop(grace_s=0.5) is True
    assert proc.pid() is None


def test_pid_is_known_the_moment_start_returns(tmp_path):
    """Right after exec the kernel shows an empty environment for a moment (up to a quarter of
    reads straight after Popen here); start() waits it out."""
    pids, seen = [], []
    try:
        for i in range(20):
            proc = Background(tmp_path, f"sleeper-{i}")
            pids.append(proc.start([shutil.which("sleep"), "30"], env=dict(os.environ)))
            seen.append(proc.pid())
        assert seen == pids
    finally:
        for pid in pids:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_live_process_with_an_empty_environment_is_neither_trusted_nor_forgotten(tmp_path):
    """What a process looks like mid-exec: pid() cannot judge it, so it keeps the pid file."""
    proc = Background(tmp_path, "server")
    tmp_path.mkdir(exist_ok=True)
    child = subprocess.Popen([shutil.which("sleep"), "30"], env={})
    try:
        proc.pid_file.write_text(str(child.pid))
        assert proc.pid() is None
        assert proc.pid_file.exists()
    finally:
        child.kill()
        child.wait()
    assert proc.pid() is None
    assert not proc.pid_file.exists()


def test_stale_pid_file_is_ignored_and_removed(tmp_path):
    proc = Background(tmp_path, "server")
    tmp_path.mkdir(exist_ok=True)
    # Our own pid is alive but is not the recorded process: never trust (or signal) it.
    proc.pid_file.write_text(str(os.getpid()))
    assert proc.pid() is None
    assert not proc.pid_file.exists()
    proc.pid_file.write_text("not a pid")
    assert proc.pid() is None
    assert proc.stop(grace_s=1) is False


def test_port_helpers():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        assert not port_free(busy)
        assert free_port(busy) != busy
    free = free_port()
    assert port_free(free)
    assert free_port(free) == free

"""`llmctl --help` must stay fast: no cloud SDK, kubernetes client, jinja2 or vllm import."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("boto3", "botocore", "kubernetes", "jinja2", "vllm", "numpy", "pydantic")


def test_help_imports_nothing_heavy(isolated_env):
    code = (
        "import sys\n"
        "from llmctl.cli.main import run\n"
        "try:\n"
        "    run(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=isolated_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "Usage: llmctl" in done.stdout


def test_every_subcommand_help_works(llmctl):
    top = llmctl("--help", check=True).stdout
    for name in ("init", "config", "doctor"):
        assert name in top
        llmctl(name, "--help", check=True)


def test_help_is_replayed_from_cache_identically(llmctl, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = llmctl("--help", env=env, check=True).stdout
    cached = list((tmp_path / "cache" / "llmctl").glob("help-*.txt"))
    assert len(cached) == 1 and cached[0].read_text() == first
    assert llmctl("--help", env=env, check=True).stdout == first
    # Another width is another cache entry, never a stale replay.
    narrow = llmctl("--help", env={**env, "COLUMNS": "60"}, check=True).stdout
    assert narrow != first
    assert len(list((tmp_path / "cache" / "llmctl").glob("help-*.txt"))) == 2


def test_failed_help_is_not_cached(llmctl, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert llmctl("no-such-command", "--help", env=env).returncode == 2
    assert not list((tmp_path / "cache").rglob("help-*.txt"))

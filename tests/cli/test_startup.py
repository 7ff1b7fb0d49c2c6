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

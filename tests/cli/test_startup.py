"""Commands import only what they use, so each starts near the cost of Typer, pydantic and rich.

Timings live in `benchmarks/cli_startup.py`; here, the behaviour behind them: which modules a
command leaves in `sys.modules` (a cloud SDK, the kubernetes client, jinja2, numpy, aiohttp or
vllm imported at start-up would cost every command its import time).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("boto3", "botocore", "kubernetes", "jinja2", "vllm", "numpy", "aiohttp", "yaml", "urllib3")


def imported_after(argv: list[str], env: dict, cwd, heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], str]:
    """Run `llmctl argv` in a fresh interpreter; (the `heavy` modules it imported, its stdout)."""
    code = (
        "import sys\n"
        "from llmctl.cli.main import run\n"
        "try:\n"
        f"    run({argv!r})\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


# `--help` imports every command module to list them: what they import at module level, every command pays
LAYERS_BELOW_CLI = ("llmctl.config", "llmctl.actions", "llmctl.aws", "llmctl.k8s", "llmctl.render",
                    "llmctl.monitoring", "llmctl.bench", "llmctl.eksctl", "llmctl.state", "llmctl.pricing")


@pytest.mark.parametrize("argv", [["config", "show", "-o", "json"], ["config", "validate"], ["status", "--help"],
                                  ["--help"], ["deploy", "--help"], ["monitoring", "up", "--help"]])
def test_commands_import_nothing_heavy(argv, isolated_env, tmp_path):
    # help reads no config and validates no option value (an option not given has none): not even pydantic
    heavy = HEAVY
    if "--help" in argv:
        heavy += ("pydantic",) + LAYERS_BELOW_CLI
    found, stdout = imported_after(argv, isolated_env, tmp_path, heavy)
    assert found == [], f"llmctl {' '.join(argv)} imported {found}"
    assert stdout


def test_option_values_are_still_checked_by_typer(llmctl):
    """The validator of an option is built when a value needs it (`cli.main._ValidatorOnFirstValue`),
    and it is Typer's: the same answer for a bad value, a value out of range and a good one."""
    for argv, words in ((["bench", "-n", "abc"], "Input should be a valid integer"),
                        (["bench", "--num-prompts", "0"], "Input should be greater than or equal to 1"),
                        (["-o", "xml", "config", "show"], "'xml' is not one of 'text', 'json'")):
        done = llmctl(*argv)
        assert done.returncode == 2, done
        assert words in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert json.loads(llmctl("-o", "json", "config", "show", check=True).stdout)["aws"]["region"] == "us-east-1"


def test_config_show_is_the_resolved_config(isolated_env, tmp_path):
    _, stdout = imported_after(["config", "show", "-o", "json"], isolated_env, tmp_path)
    assert json.loads(stdout)["deploy"]["namespace"] == "vllm"


def test_every_subcommand_help_works(llmctl):
    top = llmctl("--help", check=True).stdout
    for name in ("init", "config", "doctor", "deploy", "monitoring", "teardown"):
        assert name in top
        llmctl(name, "--help", check=True)


def test_help_leaves_no_cache_behind(llmctl, tmp_path):
    """Help is rendered by Typer every time: no replayed text that a code change could make stale."""
    llmctl("--help", env={"XDG_CACHE_HOME": str(tmp_path / "cache")}, check=True)
    assert not (tmp_path / "cache").exists()

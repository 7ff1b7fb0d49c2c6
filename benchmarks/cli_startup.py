"""Start-up of the commands users run, against the floor of the frameworks llmctl is built on.

Issue 14's floor is the plain `import typer, pydantic, rich.console`, and its target: every
command <= 1.5x it. pydantic's `__init__` imports almost nothing until a model or an adapter is
built, so two more floors are printed beside it, each with every command's ratio to it:
- one pydantic model: that import, then one one-field `BaseModel` defined and validated. The
  first model imports pydantic's schema machinery (and `importlib.metadata`, for its plugin
  scan); no command that reads a pydantic config starts faster (`config show`, `config validate`).
- a bare Typer app: a group with a global option and one command that parses an option,
  validates one pydantic model and prints it with rich. Typer checks each option value with a
  pydantic `TypeAdapter` (llmctl builds those only for options given a value,
  `cli.main._ValidatorOnFirstValue`, so its `--help`s import no pydantic at all).

Each llmctl command runs as the installed console script (a real process, as users start it) in
an empty folder (defaults, no config file), interleaved with the floors so machine load hits all
alike. Bytecode is compiled once, as `pip install` leaves it, into a private cache folder:
without it (PYTHONDONTWRITEBYTECODE, an editable install's first run) llmctl's own modules would
be compiled from source on every run while the frameworks' come from site-packages' .pyc files.
Printed: median wall time and median CPU time (user + system of the child: on a busy machine the
steadier of the two) and their ratios; the verdict (<= 1.5x, in both) for each floor, so another
floor's does not stand in for the issue's.

    .venv/bin/python benchmarks/cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TARGET = 1.5
FLOOR = "floor: a bare Typer app (typer, pydantic, rich)"
IMPORTS = 'python -c "import typer, pydantic, rich.console"'
ONE_MODEL = "floor: the plain import and one pydantic model"
MODEL = """
import typer, pydantic, rich.console


class Settings(pydantic.BaseModel):
    name: str = "x"


Settings(name="y")
"""
BARE_APP = """
import typer
from pydantic import BaseModel
from rich.console import Console


class Settings(BaseModel):
    name: str = "x"


app = typer.Typer(add_completion=False)


@app.callback()
def main(output: str = "text") -> None:
    pass


@app.command()
def show(name: str = "x") -> None:
    Console().print(Settings(name=name).model_dump_json())


app(["show", "--name", "y"])
"""


def measure(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(argv)} failed (wait status {status})")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    llmctl = shutil.which("llmctl", path=os.path.dirname(sys.executable)) or "llmctl"
    cases = {
        FLOOR: [sys.executable, "-c", BARE_APP],
        IMPORTS: [sys.executable, "-c", "import typer, pydantic, rich.console"],
        ONE_MODEL: [sys.executable, "-c", MODEL],
        "llmctl --version": [llmctl, "--version"],
        "llmctl --help": [llmctl, "--help"],
        "llmctl status --help": [llmctl, "status", "--help"],
        "llmctl config validate": [llmctl, "config", "validate"],
        "llmctl config show -o json": [llmctl, "config", "show", "-o", "json"],
    }
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_") and k != "PYTHONDONTWRITEBYTECODE"}
        env.update(HOME=folder, COLUMNS="100", NO_COLOR="1", PYTHONPYCACHEPREFIX=os.path.join(folder, "pycache"))
        for argv in cases.values():  # warm the file cache and write the .pyc files once
            measure(argv, folder, env)
        for _ in range(args.runs):
            for name, argv in cases.items():
                w, c = measure(argv, folder, env)
                wall[name].append(w)
                cpu[name].append(c)
    median = {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in cases}
    (floor_wall, floor_cpu), (imports_wall, imports_cpu) = median[FLOOR], median[IMPORTS]
    print(f"{args.runs} runs each, interleaved; medians; target <= {TARGET:.2f}x (wall and cpu)")
    print(f"  {'':50s} {'wall':>9s} {'x floor':>7s} {'x import':>8s}   {'cpu':>9s} {'x floor':>7s} {'x import':>8s}")
    for name, (w, c) in median.items():
        print(f"  {name:50s} {w * 1000:6.1f} ms {w / floor_wall:6.2f}x {w / imports_wall:7.2f}x"
              f"   {c * 1000:6.1f} ms {c / floor_cpu:6.2f}x {c / imports_cpu:7.2f}x")
    ours = [name for name in cases if name.startswith("llmctl")]
    for label, (base_wall, base_cpu) in (("the plain import (issue 14's target)", (imports_wall, imports_cpu)),
                                         ("one pydantic model", median[ONE_MODEL]),
                                         ("a bare Typer app", (floor_wall, floor_cpu))):
        worst_wall = max(median[name][0] for name in ours) / base_wall
        worst_cpu = max(median[name][1] for name in ours) / base_cpu
        verdict = "pass" if max(worst_wall, worst_cpu) <= TARGET else "FAIL"
        print(f"worst llmctl ratio to {label}: wall {worst_wall:.2f}x, cpu {worst_cpu:.2f}x: {verdict}")


if __name__ == "__main__":
    main()

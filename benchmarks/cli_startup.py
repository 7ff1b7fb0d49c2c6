"""Start-up of the commands users run, against the floor of the frameworks llmctl is built on.

The floor is `python -c "import typer, pydantic, rich.console"` on the same interpreter: no CLI
made of them starts faster. Each command runs as the installed console script in an empty folder
(defaults, no config file), interleaved with the floor so machine load hits all alike. Printed:
median wall time and median CPU time (user + system of the child: on a busy machine the steadier
of the two) and their ratios to the floor. Target (issue 14): every command <= 1.5x the floor.

For scale, a reference that is not llmctl: a three-line Typer app parsing one option, which
already pays for the pydantic validators Typer builds for option values.

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
FLOOR = 'python -c "import typer, pydantic, rich.console"'
TYPER_ONE_OPTION = (
    "import typer\napp = typer.Typer()\n@app.command()\ndef main(name: str = 'x') -> None:\n    pass\n"
    "app(['--name', 'y'], standalone_mode=False)\n"
)


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
        FLOOR: [sys.executable, "-c", "import typer, pydantic, rich.console"],
        "llmctl config show -o json": [llmctl, "config", "show", "-o", "json"],
        "llmctl status --help": [llmctl, "status", "--help"],
        "llmctl --version": [llmctl, "--version"],
        "(reference) a Typer app parsing one option": [sys.executable, "-c", TYPER_ONE_OPTION],
    }
    wall: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCTL_")}
        env.update(HOME=folder, COLUMNS="100", NO_COLOR="1")
        for argv in cases.values():  # warm the file cache and the .pyc files once
            measure(argv, folder, env)
        for _ in range(args.runs):
            for name, argv in cases.items():
                w, c = measure(argv, folder, env)
                wall[name].append(w)
                cpu[name].append(c)
    floor_wall, floor_cpu = statistics.median(wall[FLOOR]), statistics.median(cpu[FLOOR])
    print(f"{args.runs} runs each, interleaved; medians; target <= {TARGET:.2f}x the floor")
    worst = 0.0
    for name in cases:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        if name.startswith("llmctl"):
            worst = max(worst, w / floor_wall)
        print(f"  {name:46s} wall {w * 1000:7.1f} ms {w / floor_wall:5.2f}x   cpu {c * 1000:7.1f} ms {c / floor_cpu:5.2f}x")
    print(f"worst llmctl wall ratio {worst:.2f}x: {'pass' if worst <= TARGET else 'FAIL'}")


if __name__ == "__main__":
    main()

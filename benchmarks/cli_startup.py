"""Median wall time of `llmctl --help` against `python -c pass` on the same interpreter.

Target (issue 2): warm `llmctl --help` <= 3x `python -c pass`. Also prints the first (cold,
cache-filling) run, which imports Typer and rich, so the cost of a cache miss stays visible.

    .venv/bin/python benchmarks/cli_startup.py [--runs 20]
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


def wall(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    llmctl = shutil.which("llmctl", path=os.path.dirname(sys.executable)) or "llmctl"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "XDG_CACHE_HOME": cache, "COLUMNS": "100"}
        cold = wall([llmctl, "--help"], env)
        python = [wall([sys.executable, "-c", "pass"], env) for _ in range(args.runs)]
        warm = [wall([llmctl, "--help"], env) for _ in range(args.runs)]
        no_cache = [wall([llmctl, "--version"], env) for _ in range(max(3, args.runs // 4))]
    base, ours = statistics.median(python), statistics.median(warm)
    print(f"python -c pass            median {base * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"llmctl --help             median {ours * 1000:7.1f} ms  ({args.runs} runs)")
    print(f"llmctl --help (cold run)         {cold * 1000:7.1f} ms  (fills the help cache)")
    print(f"llmctl --version          median {statistics.median(no_cache) * 1000:7.1f} ms  (full Typer start-up)")
    print(f"ratio --help / python     {ours / base:.2f}x  (target <= 3.00x: {'pass' if ours / base <= 3 else 'FAIL'})")


if __name__ == "__main__":
    main()

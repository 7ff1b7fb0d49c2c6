"""`llmctl bench` vs `vllm bench serve --backend openai`: same server, same workload, same numbers?

Starts the real `python -m server` with the vLLM CPU engine on the tiny model (loopback), then
alternates runs of both tools (random prompts of exact token length, ignore_eos, fixed output
length, the same concurrency) and compares median TTFT, median TPOT and output throughput.
Target: within 5% of each other. A 100-prompt run lasts ~4 s and the same tool's runs then differ
by up to 20% on 2 cores, so the default is 4 rounds of 400 prompts (about 4 minutes).

    .venv/bin/python benchmarks/bench_vs_vllm.py [--rounds 4] [--num-prompts 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = ("median_ttft_ms", "median_tpot_ms", "output_throughput", "mean_ttft_ms", "median_itl_ms", "request_throughput")
COMPARED = FIGURES[:3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "MODEL_PATH": str(model_dir),
        "SERVED_MODEL_NAME": "tiny-llama",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MAX_MODEL_LEN": "1024",
        "MAX_NUM_SEQS": "16",
        "ENFORCE_EAGER": "true",
        "MAX_CONCURRENT_REQUESTS": "32",
        "MAX_QUEUED_REQUESTS": "64",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "PYTHONPATH": str(REPO),
    }
    env.pop("API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited {proc.returncode}; log: {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"server not ready after 180 s; log: {log}")


def run_vllm(url: str, model_dir: Path, out: Path, args) -> dict:
    argv = [
        sys.executable, str(REPO / "benchmarks" / "vllm_cli.py"), "bench", "serve", "--backend", "openai",
        "--base-url", url, "--endpoint", "/v1/completions", "--model", "tiny-llama", "--tokenizer", str(model_dir),
        "--dataset-name", "random", "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
        "--random-range-ratio", "0", "--num-prompts", str(args.num_prompts), "--max-concurrency", str(args.concurrency),
        "--ignore-eos", "--seed", "0", "--percentile-metrics", "ttft,tpot,itl,e2el", "--save-result",
        "--result-dir", str(out.parent), "--result-filename", out.name, "--disable-tqdm",
    ]
    subprocess.run(argv, check=True, timeout=300, capture_output=True, text=True)
    return json.loads(out.read_text())


def run_llmctl(url: str, model_dir: Path, out: Path, args) -> dict:
    argv = [
        sys.executable, "-m", "llmctl", "bench", "--url", url, "--endpoint", "/v1/completions", "--tokenizer", str(model_dir),
        "-n", str(args.num_prompts), "--concurrency", str(args.concurrency), "--input-len", str(args.input_len),
        "--output-len", str(args.output_len), "--ignore-eos", "--seed", "0", "--output-json", str(out), "--no-crosscheck",
    ]
    subprocess.run(argv, check=True, timeout=300, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--num-prompts", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=32)
    parser.add_argument("--output-len", type=int, default=32)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "src"))
    from llmctl.tinymodel import make_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="bench-vs-vllm-"))
    model_dir = make_tiny_llama(work / "model")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(model_dir, port, work / "server.log")
    results: dict[str, list[dict]] = {"vllm": [], "llmctl": []}
    try:
        for i in range(args.rounds):
            pair = [("vllm", run_vllm), ("llmctl", run_llmctl)]
            for tool, fn in pair if i % 2 == 0 else pair[::-1]:  # alternate who goes first
                t0 = time.monotonic()
                doc = fn(url, model_dir, work / f"{tool}-{i}.json", args)
                results[tool].append(doc)
                print(f"round {i} {tool:7s} completed={doc['completed']} failed={doc['failed']} "
                      + " ".join(f"{k}={doc[k]:.2f}" for k in FIGURES) + f" ({time.monotonic() - t0:.0f} s)", flush=True)
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()

    print(f"\nworkload: {args.num_prompts} prompts, input {args.input_len} / output {args.output_len} tokens, "
          f"concurrency {args.concurrency}, ignore_eos, {args.rounds} rounds each (median of rounds)")
    print(f"{'figure':22s} {'vllm':>10s} {'llmctl':>10s} {'diff':>8s}")
    worst = 0.0
    for key in FIGURES:
        ours = statistics.median(d[key] for d in results["llmctl"])
        theirs = statistics.median(d[key] for d in results["vllm"])
        diff = (ours - theirs) / theirs * 100 if theirs else 0.0
        if key in COMPARED:
            worst = max(worst, abs(diff))
        print(f"{key:22s} {theirs:10.2f} {ours:10.2f} {diff:+7.1f}%")
    verdict = "PASS" if worst <= 5.0 else "FAIL"
    print(f"\n{verdict}: largest difference in median TTFT / median TPOT / output throughput is {worst:.1f}% (target <= 5%)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())

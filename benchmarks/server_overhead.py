"""Our server's overhead against vLLM's own OpenAI server: same tiny model, same engine arguments,
the same streaming workload from vLLM's `vllm bench serve --backend openai` against both, in one run
(alternating rounds, so machine noise hits both alike).

Targets (issue 3): our output throughput >= 0.95x vLLM's; our median TTFT <= 1.10x vLLM's.

    .venv/bin/python benchmarks/server_overhead.py [--rounds 3 --num-prompts 200 --concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
MODEL_NAME = "tiny-llama"
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready ({url})")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout}s")


def start_ours(model: Path, port: int, api_key: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, **ENGINE_ENV, "MODEL_PATH": str(model), "SERVED_MODEL_NAME": MODEL_NAME, "PORT": str(port),
           "HOST": "127.0.0.1", "MAX_MODEL_LEN": "1024", "MAX_NUM_SEQS": "16", "ENFORCE_EAGER": "true",
           "API_KEY": api_key, "MAX_CONCURRENT_REQUESTS": "256", "MAX_QUEUED_REQUESTS": "1024"}
    return subprocess.Popen([sys.executable, "-m", "server"], cwd=REPO, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def start_vllm(model: Path, port: int, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024",
            "--max-num-seqs", "16", "--enforce-eager"]
    return subprocess.Popen(argv, env={**os.environ, **ENGINE_ENV}, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def bench_args(url: str, model: Path, out: Path, args) -> list[str]:
    return ["--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions", "--model", MODEL_NAME,
            "--tokenizer", str(model), "--dataset-name", "random", "--random-input-len", str(args.input_len),
            "--random-output-len", str(args.output_len), "--num-prompts", str(args.num_prompts),
            "--max-concurrency", str(args.concurrency), "--ignore-eos", "--seed", "0", "--disable-tqdm",
            "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-prompts", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    args = parser.parse_args()
    from llmctl.tinymodel import make_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="server-overhead-"))
    model = make_tiny_llama(work / "tiny-llama")
    api_key = secrets.token_hex(8)
    ours_port, vllm_port = free_port(), free_port()
    servers = {"ours": f"http://127.0.0.1:{ours_port}", "vllm": f"http://127.0.0.1:{vllm_port}"}
    procs = [start_ours(model, ours_port, api_key, work / "ours.log"), start_vllm(model, vllm_port, work / "vllm.log")]
    try:
        wait_ready(f"{servers['ours']}/ready", procs[0])
        wait_ready(f"{servers['vllm']}/health", procs[1])
        runs, plan = [], []
        for r in range(args.rounds + 1):  # round 0 warms both up and is not counted
            for name in ("ours", "vllm") if r % 2 else ("vllm", "ours"):
                out = work / f"{name}-{r}.json"
                runs.append(bench_args(servers[name], model, out, args))
                plan.append((name, r, out))
        (work / "runs.json").write_text(json.dumps(runs))
        subprocess.run([sys.executable, str(REPO / "benchmarks" / "vllm_cli.py"), "--many", str(work / "runs.json")],
                       env={**os.environ, "OPENAI_API_KEY": api_key}, check=True, stdout=subprocess.DEVNULL)
    finally:
        for proc in procs:
            stop(proc)
    results: dict[str, list[dict]] = {"ours": [], "vllm": []}
    for name, r, out in plan:
        data = json.loads(out.read_text())
        assert data["completed"] == args.num_prompts, (name, data["completed"], data.get("errors"))
        if r:
            results[name].append(data)
    print(f"workload: {args.num_prompts} prompts, {args.input_len} in / {args.output_len} out tokens, "
          f"concurrency {args.concurrency}, streaming /v1/completions, {args.rounds} rounds (median)")
    summary = {}
    for name, rows in results.items():
        summary[name] = {k: statistics.median(row[k] for row in rows)
                         for k in ("output_throughput", "median_ttft_ms", "median_tpot_ms", "request_throughput")}
        s = summary[name]
        print(f"{name:5} output {s['output_throughput']:8.1f} tok/s  req {s['request_throughput']:6.2f}/s  "
              f"median TTFT {s['median_ttft_ms']:7.2f} ms  median TPOT {s['median_tpot_ms']:6.2f} ms")
    throughput = summary["ours"]["output_throughput"] / summary["vllm"]["output_throughput"]
    ttft = summary["ours"]["median_ttft_ms"] / summary["vllm"]["median_ttft_ms"]
    print(f"throughput ratio ours/vllm: {throughput:.3f} (target >= 0.95) {'PASS' if throughput >= 0.95 else 'FAIL'}")
    print(f"median TTFT ratio ours/vllm: {ttft:.3f} (target <= 1.10) {'PASS' if ttft <= 1.10 else 'FAIL'}")


if __name__ == "__main__":
    main()

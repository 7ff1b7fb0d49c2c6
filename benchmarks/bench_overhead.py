"""Client overhead: `llmctl bench` vs `vllm bench serve` against a no-op streaming server.

The server (aiohttp, its own process, loopback) answers `/v1/completions` with `--output-len`
SSE chunks and a usage event at once, so whatever latency a client measures is its own. For
each tool: the highest Poisson rate it sustains (achieved >= 90% of offered, no failures) on a
rising ladder, and its median TTFT at a low rate; target: llmctl's exceeds vLLM's by < 1 ms.
Bounded to about two minutes.

    .venv/bin/python benchmarks/bench_overhead.py [--rates 250,500,1000,2000] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

NOOP_SERVER = r'''
import json, sys
from aiohttp import web

async def completions(request):
    body = await request.json()
    n = int(body.get("max_tokens") or 8)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    chunk = json.dumps({"choices": [{"index": 0, "text": "x"}]})
    await resp.write(("".join(f"data: {chunk}\n\n" for _ in range(n))
        + "data: " + json.dumps({"choices": [], "usage": {"prompt_tokens": 8, "completion_tokens": n}}) + "\n\n"
        + "data: [DONE]\n\n").encode())
    return resp

async def models(request):
    return web.json_response({"data": [{"id": "noop"}]})

app = web.Application()
app.router.add_post("/v1/completions", completions)
app.router.add_get("/v1/models", models)
app.router.add_get("/health", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("no-op server did not start")


def vllm_runs(url: str, model_dir: Path, work: Path, rates: list[float], seconds: float, output_len: int) -> list[dict]:
    argvs, outs = [], []
    for i, rate in enumerate(rates):
        out = work / f"vllm-{i}.json"
        outs.append(out)
        argvs.append([
            "--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions", "--model", "noop",
            "--tokenizer", str(model_dir), "--dataset-name", "random", "--random-input-len", "8",
            "--random-output-len", str(output_len), "--num-prompts", str(max(20, int(rate * seconds))),
            "--request-rate", str(rate), "--seed", "0", "--percentile-metrics", "ttft,tpot,itl,e2el",
            "--save-result", "--result-dir", str(work), "--result-filename", out.name, "--disable-tqdm",
        ])
    spec = work / "vllm-runs.json"
    spec.write_text(json.dumps(argvs))
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "vllm_cli.py"), "--many", str(spec)], check=True, timeout=600,
                   capture_output=True, text=True)
    return [json.loads(p.read_text()) for p in outs]


def llmctl_runs(url: str, model_dir: Path, work: Path, rates: list[float], seconds: float, output_len: int) -> list[dict]:
    docs = []
    for i, rate in enumerate(rates):
        out = work / f"llmctl-{i}.json"
        subprocess.run([
            sys.executable, "-m", "llmctl", "bench", "--url", url, "--tokenizer", str(model_dir), "--input-len", "8",
            "--output-len", str(output_len), "-n", str(max(20, int(rate * seconds))), "--request-rate", str(rate),
            "--concurrency", "100000", "--seed", "0", "--no-crosscheck", "--output-json", str(out),
        ], check=True, timeout=300, capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
        docs.append(json.loads(out.read_text()))
    return docs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,250,500,1000,2000")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--output-len", type=int, default=8)
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]

    sys.path.insert(0, str(REPO / "src"))
    from llmctl.tinymodel import make_tiny_llama

    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    model_dir = make_tiny_llama(work / "model")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_up(url)
        results = {"vllm": vllm_runs(url, model_dir, work, rates, args.seconds, args.output_len),
                   "llmctl": llmctl_runs(url, model_dir, work, rates, args.seconds, args.output_len)}
    finally:
        server.terminate()
        server.wait(10)

    print(f"{'rate':>7s} | {'vllm req/s':>10s} {'TTFT p50 ms':>11s} | {'llmctl req/s':>12s} {'TTFT p50 ms':>11s}")
    best = {}
    for tool in results:
        sustained = [r for r, d in zip(rates, results[tool]) if d["failed"] == 0 and d["request_throughput"] >= 0.9 * r]
        best[tool] = max(sustained) if sustained else 0.0
    for i, rate in enumerate(rates):
        v, o = results["vllm"][i], results["llmctl"][i]
        print(f"{rate:7.0f} | {v['request_throughput']:10.1f} {v['median_ttft_ms']:11.3f} | {o['request_throughput']:12.1f} {o['median_ttft_ms']:11.3f}")
    low_v, low_o = results["vllm"][0]["median_ttft_ms"], results["llmctl"][0]["median_ttft_ms"]
    print(f"\nhighest sustained rate: vllm {best['vllm']:g} req/s, llmctl {best['llmctl']:g} req/s")
    print(f"median TTFT at {rates[0]:g} req/s (client overhead, the server does nothing): vllm {low_v:.3f} ms, llmctl {low_o:.3f} ms")
    # The no-op server's own time is in both; the overhead is what llmctl adds beyond vLLM's client.
    ok = best["llmctl"] >= best["vllm"] and low_o - low_v < 1.0
    print(f"median TTFT overhead vs vLLM's client: {low_o - low_v:+.3f} ms")
    print(("PASS" if ok else "FAIL") + ": llmctl sustains at least vLLM's rate and adds under 1 ms of median TTFT")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

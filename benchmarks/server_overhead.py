"""Our server's overhead against vLLM's own OpenAI server, and the wrapper's cost per request.

1. End to end. Both servers run the same tiny model with the same engine options; vLLM's
   `vllm bench serve` (in this process) sends the same seeded streaming /v1/completions workload to
   each, round after round. Isolation: each server is pinned with taskset to --server-cpus and the
   client to --client-cpus; only one engine runs at a time (the other server's process group is
   paused with SIGSTOP); rounds alternate the order (ABBA), so drift hits both alike. Per round the
   ratio ours/vLLM; printed: the median and the min..max spread over rounds. A verdict is given
   only when every round agrees (all meet the target: PASS; none does: FAIL) over at least five
   rounds (all on one side by chance: p <= 3%; with the default seven, < 1%), else "inconclusive".
   Targets (issue 15): output throughput >= 0.98x vLLM's; median TTFT <= 1.05x.
   Beside them, the CPU time of each server's HTTP process per request (the serving layer's own
   cost, engine excluded), which other load on the machine disturbs far less.
2. The wrapper directly: llmctl's layers (RequestMiddleware, ServerApp's readiness check and
   admission slot, the metrics record, the MeteredEngine around `generate`) timed in-process
   around a stub that stands where vLLM's app and engine are, against the stub alone.

    .venv/bin/python benchmarks/server_overhead.py [--rounds 7 --num-prompts 100 --concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO), str(REPO / "benchmarks")]
MODEL_NAME = "tiny-llama"
ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1"}
TARGETS = {"output_throughput": (">=", 0.98), "median_ttft_ms": ("<=", 1.05)}
MIN_ROUNDS = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready ({url})")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                return
        time.sleep(0.5)
    raise SystemExit(f"{url} not ready after {timeout}s")


def pinned(cpus: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def start_ours(model: Path, port: int, api_key: str, log: Path, cpus: str) -> subprocess.Popen:
    env = {**os.environ, **ENGINE_ENV, "MODEL_PATH": str(model), "SERVED_MODEL_NAME": MODEL_NAME, "PORT": str(port),
           "HOST": "127.0.0.1", "MAX_MODEL_LEN": "1024", "MAX_NUM_SEQS": "16", "ENFORCE_EAGER": "true",
           "API_KEY": api_key, "MAX_CONCURRENT_REQUESTS": "256", "MAX_QUEUED_REQUESTS": "1024"}
    return subprocess.Popen(pinned(cpus, [sys.executable, "-m", "server"]), cwd=REPO, env=env, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def start_vllm(model: Path, port: int, log: Path, cpus: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", MODEL_NAME, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "1024",
            "--max-num-seqs", "16", "--enforce-eager"]
    return subprocess.Popen(pinned(cpus, argv), env={**os.environ, **ENGINE_ENV}, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop(proc: subprocess.Popen) -> None:
    signal_group(proc, signal.SIGCONT)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
    signal_group(proc, signal.SIGKILL)


def bench_args(url: str, model: Path, out: Path, args, num_prompts: int) -> list[str]:
    return ["--backend", "openai", "--base-url", url, "--endpoint", "/v1/completions", "--model", MODEL_NAME,
            "--tokenizer", str(model), "--dataset-name", "random", "--random-input-len", str(args.input_len),
            "--random-output-len", str(args.output_len), "--num-prompts", str(num_prompts),
            "--max-concurrency", str(args.concurrency), "--ignore-eos", "--seed", "0", "--disable-tqdm",
            "--save-result", "--result-dir", str(out.parent), "--result-filename", out.name]


def run_bench(argv: list[str], log: Path) -> dict:
    """One `vllm bench serve` run in this process (vLLM's own parser and main)."""
    import vllm_cli  # noqa: F401 - makes vLLM find its version under vllm-cpu
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    with log.open("a") as out, contextlib.redirect_stdout(out):
        return main(parser.parse_args(argv))


def end_to_end(args, work: Path) -> dict[str, list[dict]]:
    from llmctl.tinymodel import make_tiny_llama

    model = make_tiny_llama(work / "tiny-llama")
    api_key = secrets.token_hex(8)
    ports = {"ours": free_port(), "vllm": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    procs = {}
    results: dict[str, list[dict]] = {"ours": [], "vllm": []}
    os.environ["OPENAI_API_KEY"] = api_key  # vllm bench serve's openai backend sends it; vLLM's server ignores it
    try:
        for name, start, probe in (("ours", start_ours, "/ready"), ("vllm", start_vllm, "/health")):
            extra = (api_key,) if name == "ours" else ()
            procs[name] = start(model, ports[name], *extra, work / f"{name}.log", args.server_cpus)
            wait_ready(f"{urls[name]}{probe}", procs[name])
            run_bench(bench_args(urls[name], model, work / f"{name}-warmup.json", args, 32), work / "bench.log")
            signal_group(procs[name], signal.SIGSTOP)  # one engine at a time
        if args.client_cpus:
            os.sched_setaffinity(0, {int(c) for c in args.client_cpus.split(",")})
        for r in range(args.rounds):
            for name in ("ours", "vllm") if r % 2 == 0 else ("vllm", "ours"):
                signal_group(procs[name], signal.SIGCONT)
                time.sleep(1)  # let it settle after the pause
                before = api_cpu_s(procs[name])
                row = run_bench(bench_args(urls[name], model, work / f"{name}-{r}.json", args, args.num_prompts),
                                work / "bench.log")
                row["api_cpu_ms"] = (api_cpu_s(procs[name]) - before) * 1000 / args.num_prompts
                signal_group(procs[name], signal.SIGSTOP)
                assert row["completed"] == args.num_prompts, (name, row["completed"], row.get("errors"))
                results[name].append(row)
                print(f"round {r + 1}/{args.rounds} {name:4}: {row['output_throughput']:7.1f} tok/s, "
                      f"median TTFT {row['median_ttft_ms']:7.2f} ms, HTTP process CPU {row['api_cpu_ms']:5.2f} ms/request",
                      flush=True)
    finally:
        for proc in procs.values():
            stop(proc)
    return results


def api_cpu_s(proc: subprocess.Popen) -> float:
    """CPU seconds of the server's HTTP process itself (not the engine processes): the serving
    layer's cost, far less sensitive to other load on the machine than wall-clock numbers."""
    import psutil

    times = psutil.Process(proc.pid).cpu_times()
    return times.user + times.system


def verdict(ratios: list[float], op: str, target: float) -> str:
    """PASS or FAIL only when every round agrees and there are enough rounds for that to mean
    something (all MIN_ROUNDS on one side by chance: p <= 2**-MIN_ROUNDS = 3%)."""
    if len(ratios) < MIN_ROUNDS:
        return f"inconclusive (fewer than {MIN_ROUNDS} rounds)"
    meets = [(r >= target) if op == ">=" else (r <= target) for r in ratios]
    return "PASS" if all(meets) else "FAIL" if not any(meets) else "inconclusive (the rounds disagree)"


def report_end_to_end(results: dict[str, list[dict]], args) -> None:
    print(f"\nworkload: {args.num_prompts} prompts, {args.input_len} in / {args.output_len} out tokens, concurrency "
          f"{args.concurrency}, streaming /v1/completions, {args.rounds} rounds (ABBA), server cpus "
          f"{args.server_cpus or 'all'}, client cpus {args.client_cpus or 'all'}, one engine at a time")
    for name, rows in results.items():
        tput = [row["output_throughput"] for row in rows]
        ttft = [row["median_ttft_ms"] for row in rows]
        print(f"{name:5} output {statistics.median(tput):8.1f} tok/s ({min(tput):.1f}..{max(tput):.1f})  "
              f"median TTFT {statistics.median(ttft):7.2f} ms ({min(ttft):.2f}..{max(ttft):.2f})")
    def ratios(key: str) -> list[float]:
        return [o[key] / v[key] for o, v in zip(results["ours"], results["vllm"], strict=True)]

    for key, (op, target) in TARGETS.items():
        label = "throughput" if key == "output_throughput" else "median TTFT"
        r = ratios(key)
        print(f"{label} ratio ours/vllm: median {statistics.median(r):.3f}, spread {min(r):.3f}..{max(r):.3f} "
              f"over {len(r)} rounds (target {op} {target}): {verdict(r, op, target)}")
    cpu = {name: statistics.median(row["api_cpu_ms"] for row in rows) for name, rows in results.items()}
    r = ratios("api_cpu_ms")
    print(f"HTTP process CPU per request: ours {cpu['ours']:.2f} ms, vllm {cpu['vllm']:.2f} ms: ratio median "
          f"{statistics.median(r):.3f}, spread {min(r):.3f}..{max(r):.3f}")


# --- 2. the wrapper alone -------------------------------------------------------------------------

def wrapper_stack():
    """Our ASGI layers as the server builds them (JSON request log included), with a stub where vLLM's app is."""
    from llmctl.tinymodel import make_tiny_llama
    from server.app import create_app
    from server.logs import setup_logging
    from server.settings import load_settings

    setup_logging("INFO")
    for handler in logging.getLogger("server").handlers:  # the JSON log lines are made, and dropped
        handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process

    model = make_tiny_llama(Path(tempfile.mkdtemp(prefix="wrapper-")) / "tiny-llama")
    settings = load_settings({"MODEL_PATH": str(model), "API_KEY": "k"})
    outer, inner = create_app(settings, None, None)
    inner.engine.status = "ready"
    return outer, inner


def stub_app(chunks: int):
    body = json.dumps({"choices": [{"index": 0, "text": "x"}]}).encode()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        for _ in range(chunks - 1):
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": body})

    return app


def time_asgi(app, n: int) -> float:
    """Seconds per request of `app` on a POST /v1/completions with a small JSON body."""
    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": [
        (b"authorization", b"Bearer k"), (b"content-type", b"application/json"), (b"content-length", b"40")]}
    message = {"type": "http.request", "body": b'{"prompt": "hello", "max_tokens": 64}   ', "more_body": False}

    async def receive():
        return message

    async def send(_):
        pass

    async def loop() -> float:
        for _ in range(200):
            await app(dict(scope), receive, send)
        started = time.perf_counter()
        for _ in range(n):
            await app(dict(scope), receive, send)
        return (time.perf_counter() - started) / n

    return asyncio.run(loop())


def time_metered_engine(tokens: int, n: int) -> tuple[float, float]:
    """Seconds per request of iterating `tokens` engine outputs, without and with the MeteredEngine."""
    from server.metrics import CURRENT, RequestRecord
    from server.vllm_seam import MeteredEngine, RequestOutputKind

    outputs = [SimpleNamespace(prompt_token_ids=[1] * 64, prompt=None, outputs=[
        SimpleNamespace(index=0, token_ids=[7], finish_reason=None if i < tokens - 1 else "length")])
        for i in range(tokens)]

    class Engine:
        async def generate(self, prompt, params, request_id, **kwargs):
            for out in outputs:
                yield out

    params = SimpleNamespace(output_kind=RequestOutputKind.DELTA)

    async def loop(engine) -> float:
        started = time.perf_counter()
        for _ in range(n):
            CURRENT.set(RequestRecord("/v1/completions"))
            async for _ in engine.generate(None, params, "r"):
                pass
        return (time.perf_counter() - started) / n

    return asyncio.run(loop(Engine())), asyncio.run(loop(MeteredEngine(Engine())))


def report_wrapper(n: int, output_len: int) -> None:
    outer, inner = wrapper_stack()
    print("\nthe wrapper alone (in-process, no sockets; median of 5 runs):")
    for chunks in (1, output_len):
        inner.engine.openai_app = stub_app(chunks)
        bare = statistics.median(time_asgi(inner.engine.openai_app, n) for _ in range(5))
        wrapped = statistics.median(time_asgi(outer, n) for _ in range(5))
        print(f"  request with {chunks:3} response chunk(s): stub {bare * 1e6:6.1f} us, through our layers "
              f"{wrapped * 1e6:6.1f} us: +{(wrapped - bare) * 1e6:5.1f} us per request")
    runs = [time_metered_engine(output_len, n // 4) for _ in range(5)]
    bare, metered = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(f"  engine outputs counted for {output_len} tokens: {bare * 1e6:6.1f} us -> {metered * 1e6:6.1f} us: "
          f"+{(metered - bare) * 1e6:5.1f} us per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--num-prompts", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--input-len", type=int, default=64)
    parser.add_argument("--output-len", type=int, default=64)
    cpus = sorted(os.sched_getaffinity(0))
    parser.add_argument("--server-cpus", default=",".join(map(str, cpus[:-1])) if len(cpus) > 1 else "",
                        help="taskset list for each server (default: all but the last CPU)")
    parser.add_argument("--client-cpus", default=str(cpus[-1]) if len(cpus) > 1 else "",
                        help="CPUs of the benchmark client (default: the last CPU)")
    parser.add_argument("--wrapper-only", action="store_true", help="only the in-process wrapper timing")
    parser.add_argument("--wrapper-requests", type=int, default=20000)
    args = parser.parse_args()
    if not args.wrapper_only:
        work = Path(tempfile.mkdtemp(prefix="server-overhead-"))
        results = end_to_end(args, work)
        report_end_to_end(results, args)
    report_wrapper(args.wrapper_requests, args.output_len)


if __name__ == "__main__":
    main()

"""Hostile-client probes against the real server (vLLM CPU engine, tiny model), loopback only.

    .venv/bin/python benchmarks/server_hostile.py [--sigterm-only | --no-sigterm]

Prints one line per probe: huge never-finished headers (RSS growth, sockets still open), slow
headers and idle connections (still open after the timeouts?), a huge `stop` list and huge prompts
(/health latency while they run, the status they get), the former 500 cases, SIGTERM during load.
"""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmctl.tinymodel import make_tiny_llama  # noqa: E402
from tests.fixtures.server import server_env, start_server, stop_server  # noqa: E402


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=5)


def _is_open(sock: socket.socket) -> bool:
    """False once the server closed the connection (EOF or reset), whatever it sent first."""
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def header_flood(server, sockets: int = 8, mib: int = 16) -> str:
    proc = psutil.Process(server.process.pid)
    before = proc.memory_info().rss
    chunk = b"a" * 65536
    socks = []
    for _ in range(sockets):
        s = _connect(server.url)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            for _ in range(mib * 16):
                s.sendall(chunk)
        except OSError:
            pass  # the server cut it off
        socks.append(s)
    time.sleep(1)
    peak = proc.memory_info().rss
    still_open = sum(_is_open(s) for s in socks)
    for s in socks:
        s.close()
    return f"header flood {sockets} x {mib} MiB: RSS +{(peak - before) / 2**20:.0f} MiB, {still_open} still open"


def slow_and_idle(server, wait_s: float = 15) -> str:
    slow, idle = _connect(server.url), _connect(server.url)
    slow.sendall(b"GET /health HTTP/1.1\r\n")
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        try:
            slow.sendall(b"X-A: b\r\n")
        except OSError:
            break
        time.sleep(1)
    result = f"after {wait_s:.0f} s: slow headers open={_is_open(slow)}, idle connection open={_is_open(idle)}"
    slow.close()
    idle.close()
    return result


def health_while(server, label: str, body: dict, parallel: int) -> str:
    """/health latency while `parallel` raw-socket POSTs of `body` run (the bytes are made once,
    so the client's own Python work does not delay its /health requests)."""
    data = json.dumps(body).encode()
    head = (f"POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_key}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()

    def hostile():
        with _connect(server.url) as sock:
            sock.settimeout(120)
            sock.sendall(head + data)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return int(answer.split()[1])

    worst = 0.0
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = [pool.submit(hostile) for _ in range(parallel)]
        while not all(f.done() for f in futures):
            t = time.perf_counter()
            httpx.get(f"{server.url}/health", timeout=60)
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.05)
        codes = sorted({f.result() for f in futures})
    return f"{label} x{parallel}: statuses {codes}, worst /health {worst:.2f} s"


def former_500s(server) -> str:
    cases = [("/generate", {"prompt": "x", "stop": ""}), ("/generate", {"prompt": "x", "seed": 2**64}),
             ("/generate", {"prompt": "x", "top_k": 2**64}), ("/v1/completions", {"prompt": "x", "stop": ""}),
             ("/v1/completions", {"prompt": "x", "seed": 2**64}), ("/v1/completions", {"prompt": "x", "top_k": 2**64}),
             ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_k": 2**64})]
    before = server.metric("vllm_requests_total", status="error")
    out = []
    for path, body in cases:
        r = httpx.post(f"{server.url}{path}", headers=server.headers, json={"max_tokens": 2, **body}, timeout=60)
        out.append(f"{path} {next(iter(k for k in body if k != 'prompt' and k != 'messages'))}={r.status_code}")
    alive = httpx.get(f"{server.url}/health").status_code
    errors = server.metric("vllm_requests_total", status="error") - before
    return "former 500s: " + ", ".join(out) + f"; counted as error: {errors:.0f}; /health {alive}"


def sigterm_during_load(model_dir: Path, log: Path) -> str:
    import subprocess

    env = server_env(model_dir, 0, "k")
    from llmctl.procs import free_port

    env["PORT"] = str(free_port())
    proc = subprocess.Popen([sys.executable, "-m", "server"], env=env, cwd=Path(__file__).resolve().parents[1],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{env['PORT']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).json().get("status") == "loading":
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    time.sleep(3)  # the engine is being created
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(120)
    except subprocess.TimeoutExpired:
        code = None
    took = time.monotonic() - sent
    stop_server(proc)
    return f"SIGTERM during load: exit {code} after {took:.1f} s"


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="hostile-"))
    model = make_tiny_llama(root / "tiny-llama", seed=0)
    if "--sigterm-only" not in sys.argv:
        server = start_server(model, root / "server.log")
        try:
            print(former_500s(server), flush=True)
            print(header_flood(server), flush=True)
            print(slow_and_idle(server), flush=True)
            print(health_while(server, "stop list of 100k", {"prompt": "x", "max_tokens": 2,
                                                              "stop": [f"s{i}" for i in range(100_000)]}, 1), flush=True)
            print(health_while(server, "prompt of 1M chars", {"prompt": "a " * 500_000, "max_tokens": 2}, 8), flush=True)
            print(health_while(server, "prompt of 16k chars (the default limit at 1024 tokens of context)",
                               {"prompt": "a " * 8000, "max_tokens": 2}, 8), flush=True)
        finally:
            stop_server(server.process)
    if "--no-sigterm" not in sys.argv:
        print(sigterm_during_load(model, root / "sigterm.log"), flush=True)
    print(json.dumps({"logs": str(root)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

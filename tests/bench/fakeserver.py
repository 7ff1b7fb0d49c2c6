"""A scripted streaming server (aiohttp, own thread, loopback) for the bench tests.

It speaks the three endpoints' SSE formats, exports `vllm_requests_total` and
`vllm_tokens_generated_total` on /metrics, and can be told to answer with an HTTP status,
hang (for timeouts), send several tokens per chunk or all events in one write (what a starved
client reads), report a TTFT of its own in `vllm_time_to_first_token_seconds` (server_ttft_s), or
slow down its first token as concurrency rises past a knee:
TTFT = ttft_s * (1 + knee_slope * max(0, active - knee)).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass

from aiohttp import web


@dataclass
class Script:
    tokens: int = 8
    tokens_per_chunk: int = 1
    ttft_s: float = 0.005
    itl_s: float = 0.002
    status: int | None = None  # answer every request with this status
    fail_every: int | None = None  # every Nth request gets HTTP 500
    hang: bool = False
    knee: int | None = None
    knee_slope: float = 2.0
    report_usage: bool = True
    one_write: bool = False  # every event of a response in one write
    one_write_models: tuple[str, ...] = ()  # one write only for requests naming these models
    server_ttft_s: float | None = None  # exported as each request's server-side TTFT
    model: str = "fake-model"


class FakeServer:
    def __init__(self, script: Script | None = None, ssl_context=None):
        """`ssl_context`: a server-side ssl.SSLContext to listen with TLS (https URL)."""
        self.script = script or Script()
        self.ssl_context = ssl_context
        self.hosts: list[str] = []  # the Host header of every request
        self.active = 0
        self.seen = 0
        self.counts = {"success": 0, "error": 0}
        self.tokens = 0
        self.max_active = 0
        self.ttfts: list[float] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._release.set)
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application(middlewares=[self._record_host])
        for path in ("/generate", "/v1/completions", "/v1/chat/completions"):
            app.router.add_post(path, self._handle)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    @web.middleware
    async def _record_host(self, request: web.Request, handler):
        self.hosts.append(request.headers.get("Host", ""))
        return await handler(request)

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.script.model, "object": "model"}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        lines = ["# TYPE vllm_requests_total counter"]
        for status, n in self.counts.items():
            lines.append(f'vllm_requests_total{{endpoint="/v1/completions",status="{status}"}} {float(n)}')
        lines += ["# TYPE vllm_tokens_generated_total counter", f'vllm_tokens_generated_total{{endpoint="/v1/completions"}} {float(self.tokens)}']
        if self.script.server_ttft_s is not None:
            name, where = "vllm_time_to_first_token_seconds", 'endpoint="/v1/completions"'
            lines += [f"# TYPE {name} histogram",
                      *(f'{name}_bucket{{{where},le="{le}"}} {float(sum(t <= b for t in self.ttfts))}'
                        for le, b in (("0.01", 0.01), ("0.1", 0.1), ("1.0", 1.0), ("+Inf", float("inf")))),
                      f"{name}_count{{{where}}} {float(len(self.ttfts))}", f"{name}_sum{{{where}}} {sum(self.ttfts)}"]
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        s = self.script
        body = await request.json()
        self.seen += 1
        if s.status is not None or (s.fail_every and self.seen % s.fail_every == 0):
            self.counts["error"] += 1
            status = s.status or 500
            return web.json_response({"error": {"message": f"scripted {status}", "type": "x", "param": None}}, status=status)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if s.hang:
                await self._release.wait()
                raise web.HTTPServiceUnavailable()
            excess = max(0, self.active - s.knee) if s.knee is not None else 0
            await asyncio.sleep(s.ttft_s * (1 + s.knee_slope * excess))
            n = min(s.tokens, body.get("max_tokens") or body.get("max_completion_tokens") or s.tokens)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            path = request.path
            sent = 0
            pending: list[bytes] = []
            while sent < n:
                k = min(s.tokens_per_chunk, n - sent)
                if sent:
                    await asyncio.sleep(s.itl_s)
                text = "tok " * k
                if path == "/generate":
                    event = {"text": text, "tokens": k}
                elif path == "/v1/chat/completions":
                    event = {"choices": [{"index": 0, "delta": {"content": text}}]}
                else:
                    event = {"choices": [{"index": 0, "text": text}]}
                pending.append(f"data: {json.dumps(event)}\n\n".encode())
                if not (s.one_write or body.get("model") in s.one_write_models):
                    await resp.write(pending.pop())
                sent += k
            if pending:
                await resp.write(b"".join(pending))
            if path == "/generate":
                await resp.write(f"data: {json.dumps({'generated_text': '', 'tokens_generated': n, 'prompt_tokens': 3})}\n\n".encode())
            elif s.report_usage:
                usage = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": n + 3}
                await resp.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
            await resp.write(b"data: [DONE]\n\n")
            self.counts["success"] += 1
            self.tokens += n
            if s.server_ttft_s is not None:
                self.ttfts.append(s.server_ttft_s)
            return resp
        finally:
            self.active -= 1

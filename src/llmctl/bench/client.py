"""One streaming request in, one `RequestResult` out; the request functions never raise.

Timing follows vLLM's `benchmarks/lib/endpoint_request_func.py` exactly, so the statistics agree
with `vllm bench serve`: TTFT is the time from sending to the first chunk carrying a choice
(or, on `/generate`, a text delta); each later such chunk adds one ITL gap (a chunk may carry
several tokens); latency (E2EL) ends at the last such chunk. Output and prompt token counts come
from the server's usage report (`stream_options.include_usage`, or `/generate`'s final event).
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import functools
import json
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

ENDPOINTS = ("/generate", "/v1/completions", "/v1/chat/completions")


@dataclass
class RequestInput:
    prompt: str
    prompt_len: int
    output_len: int


@dataclass(frozen=True)
class Tls:
    """How an https endpoint is checked. A TLS NLB's address (an AWS host name) is never the name on its
    certificate (the user's domain): with `server_name` the connection goes to the URL's address but sends
    that name as SNI and Host and checks the certificate against it, as a client of the domain would;
    without one (and `check_hostname` off) only the chain is checked, as the smoke test does. The trust
    store is the system's (SSL_CERT_FILE / SSL_CERT_DIR add a private CA)."""

    server_name: str | None = None
    check_hostname: bool = True

    @functools.cached_property
    def context(self) -> ssl.SSLContext:
        """One per run: aiohttp pools connections per context object."""
        context = ssl.create_default_context()
        context.check_hostname = self.check_hostname or bool(self.server_name)
        return context

    def options(self, url: str) -> dict[str, Any]:
        """aiohttp request options for one request to `url`: the TLS context, SNI and the Host header."""
        if not url.startswith("https://"):
            return {}
        options: dict[str, Any] = {"ssl": self.context}
        if self.server_name:
            port = urllib.parse.urlsplit(url).port
            host = self.server_name if port in (None, 443) else f"{self.server_name}:{port}"
            options.update(server_hostname=self.server_name, headers={"Host": host})
        return options


def request_options(tls: Tls, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """`headers` plus what `tls` adds, as aiohttp keyword arguments."""
    options = tls.options(url)
    return {**options, "headers": {**headers, **options.get("headers", {})}}


@dataclass
class Target:
    """Where and how to send: base URL, endpoint path, key, and the request fields we add."""

    base_url: str
    endpoint: str = "/v1/completions"
    api_key: str | None = None
    model: str | None = None
    ignore_eos: bool = False
    temperature: float | None = None
    timeout_s: float = 300.0
    extra_body: dict[str, Any] = field(default_factory=dict)
    tls: Tls = field(default_factory=Tls)
    metrics_url: str | None = None  # whose /metrics the cross-check reads (the server's metrics listener)
    host: str | None = None  # a Host header (the KEDA HTTP add-on's interceptor routes on it)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + self.endpoint

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return {**headers, "Host": self.host} if self.host else headers


@dataclass
class RequestResult:
    success: bool = False
    error: str = ""  # the class of failure, for the breakdown: "HTTP 429", "timeout", ...
    detail: str = ""  # the server's message or the exception text
    ttft: float = 0.0
    itl: list[float] = field(default_factory=list)
    latency: float = 0.0
    prompt_len: int = 0
    output_tokens: int = 0  # 0 when the server reported no usage
    start_time: float = 0.0  # perf_counter() when sent
    client_queue_time: float = 0.0  # time spent waiting for a concurrency slot
    generated_text: str = ""
    # Network reads that carried at least one token. A starved client (or a buffering proxy) gets
    # many SSE events in one read: their gaps are not the server's pace. None: not recorded.
    token_reads: int | None = None


RequestFunc = Callable[[aiohttp.ClientSession, Target, RequestInput], Awaitable[RequestResult]]


class SSEParser:
    """Incremental server-sent-events parser: feed bytes, get complete `data:` payloads."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._buffer = ""

    def feed(self, chunk: bytes) -> list[str]:
        self._buffer += self._decoder.decode(chunk).replace("\r\n", "\n")
        events = []
        while "\n\n" in self._buffer:
            raw, self._buffer = self._buffer.split("\n\n", 1)
            data = self._data(raw)
            if data is not None:
                events.append(data)
        return events

    def close(self) -> list[str]:
        raw, self._buffer = self._buffer + self._decoder.decode(b"", final=True), ""
        data = self._data(raw)
        return [] if data is None else [data]

    @staticmethod
    def _data(raw: str) -> str | None:
        lines = [line[5:].removeprefix(" ") for line in raw.split("\n") if line.startswith("data:")]
        return "\n".join(lines) if lines else None  # comments (":ping") and blank events: none


def _payload(target: Target, req: RequestInput) -> dict[str, Any]:
    if target.endpoint == "/generate":
        body: dict[str, Any] = {"prompt": req.prompt, "max_tokens": req.output_len, "stream": True}
    else:
        body = {"model": target.model, "stream": True, "stream_options": {"include_usage": True}}
        if target.endpoint == "/v1/chat/completions":
            body.update(messages=[{"role": "user", "content": req.prompt}], max_completion_tokens=req.output_len)
        else:
            body.update(prompt=req.prompt, max_tokens=req.output_len, repetition_penalty=1.0)
        if target.model is None:
            del body["model"]
    if target.ignore_eos:
        body["ignore_eos"] = True
    if target.temperature is not None:
        body["temperature"] = target.temperature
    body.update(target.extra_body)
    return body


def _delta(endpoint: str, data: dict) -> tuple[bool, str]:
    """(is this a token chunk, its text) for one decoded event."""
    if endpoint == "/generate":
        if "text" in data and "tokens_generated" not in data:
            return True, data.get("text") or ""
        return False, ""
    choices = data.get("choices")
    if not choices:
        return False, ""
    if endpoint == "/v1/chat/completions":
        return True, (choices[0].get("delta") or {}).get("content") or ""
    return True, choices[0].get("text") or ""


def _usage(endpoint: str, data: dict) -> tuple[int | None, int | None]:
    """(completion tokens, prompt tokens) when this event reports them."""
    if endpoint == "/generate":
        if "tokens_generated" in data:
            return data.get("tokens_generated"), data.get("prompt_tokens")
        return None, None
    usage = data.get("usage") if not data.get("choices") else None
    if usage:
        return usage.get("completion_tokens"), usage.get("prompt_tokens")
    return None, None


def classify(exc: BaseException) -> str:
    """A short class for the error breakdown."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = getattr(exc, "os_error", None)
        if isinstance(os_error, ConnectionRefusedError) or getattr(os_error, "errno", None) == errno.ECONNREFUSED:
            return "connection refused"
        return "connection error"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError)):
        return "disconnected"
    if isinstance(exc, json.JSONDecodeError):
        return "bad stream"
    return type(exc).__name__


async def send_request(session: aiohttp.ClientSession, target: Target, req: RequestInput) -> RequestResult:
    """Send one streaming request; every failure ends up in the result, never raised."""
    out = RequestResult(prompt_len=req.prompt_len)
    payload = _payload(target, req)
    text: list[str] = []
    start = time.perf_counter()
    out.start_time = start
    last = start
    first = False
    try:
        async with session.post(
            target.url, json=payload, timeout=aiohttp.ClientTimeout(total=target.timeout_s),
            **request_options(target.tls, target.url, target.headers()),
        ) as response:
            if response.status != 200:
                out.error = f"HTTP {response.status}"
                out.detail = _error_message(await response.text()) or (response.reason or "")
                return out
            parser = SSEParser()
            stream_error = None
            out.token_reads = 0
            async for chunk in response.content.iter_any():
                carried = False
                for event in parser.feed(chunk):
                    if event == "[DONE]":
                        continue
                    now = time.perf_counter()
                    data = json.loads(event)
                    if "error" in data:
                        stream_error = _error_message(event)
                        continue
                    is_token, delta = _delta(target.endpoint, data)
                    if is_token:
                        if not first:
                            first = True
                            out.ttft = now - start
                        else:
                            out.itl.append(now - last)
                        last = now
                        text.append(delta)
                        carried = True
                    completion, prompt = _usage(target.endpoint, data)
                    if completion is not None:
                        out.output_tokens = completion
                    if prompt is not None:
                        out.prompt_len = prompt
                out.token_reads += carried
            for event in parser.close():
                if event != "[DONE]" and "error" in (data := json.loads(event)):
                    stream_error = _error_message(event)
            out.generated_text = "".join(text)
            if stream_error is not None:
                out.error, out.detail = "stream error", stream_error
            elif not first:
                out.error, out.detail = "no tokens", "the stream ended before any token arrived"
            else:
                out.success = True
                out.latency = last - start
    except Exception as exc:  # noqa: BLE001 - a benchmark counts failures, it does not stop on them
        out.success = False
        out.error = classify(exc)
        out.detail = str(exc) or type(exc).__name__
    return out


def _error_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", ""))[:200]
    return str(error or data)[:200]


def make_session(concurrency: int | None) -> aiohttp.ClientSession:
    """One pooled session for the run, sized like vLLM's (connection reuse, no total timeout)."""
    connector = aiohttp.TCPConnector(
        limit=concurrency or 0, limit_per_host=concurrency or 0, keepalive_timeout=60, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None))

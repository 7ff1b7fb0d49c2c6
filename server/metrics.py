"""The reference architecture's Prometheus series, in the default registry beside vLLM's `vllm:*`,
and the per-request record they are computed from.

The middleware opens a RequestRecord per request (CURRENT); the engine client vLLM's serving
objects hold (vllm_seam.MeteredEngine) adds the tokens to it as they are generated; the
middleware turns it into the series and the log line when the response is done. So every
generation route, vLLM's and ours, is counted the same way and as the client's `usage` says.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

from server.errors import ApiError

disable_created_metrics()

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "vllm_requests_total",
    "Requests by outcome: success, invalid, unauthorized, rejected (429), unavailable, aborted, error.",
    ["status", "endpoint", "model"],
)
LATENCY = Histogram(
    "vllm_request_latency_seconds", "End-to-end latency of successful requests.", ["endpoint", "model"], buckets=LATENCY_BUCKETS
)
TTFT = Histogram(
    "vllm_time_to_first_token_seconds", "Time from request arrival to the first generated token.", ["endpoint", "model"],
    buckets=TTFT_BUCKETS,
)
TOKENS_GENERATED = Counter("vllm_tokens_generated_total", "Completion tokens generated.", ["endpoint", "model"])
PROMPT_TOKENS = Counter("vllm_prompt_tokens_total", "Prompt tokens processed.", ["endpoint", "model"])
ACTIVE = Gauge("vllm_active_requests", "Requests holding an engine slot.")
QUEUED = Gauge("vllm_queued_requests", "Requests waiting for an engine slot (MAX_QUEUED_REQUESTS bounds it).")
MODEL_LOADED = Gauge("vllm_model_loaded", "1 once the model is loaded and warmed up, else 0.")
ADAPTER_LOADED = Gauge("vllm_lora_adapter_loaded",
                       "1 for each LoRA adapter the engine serves now, 0 for one LORA_MODULES declares but it does not.",
                       ["adapter"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class RequestRecord:
    """What one request cost the engine and what its client was told."""

    endpoint: str
    keep_prompt: bool = False
    model: str = ""  # the base's served name or the LoRA adapter's, once the engine has the request
    arrival: float = field(default_factory=time.perf_counter)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token: float | None = None
    finish_reason: str | None = None
    prompt: str | None = None
    failure: str | None = None  # "aborted" (client gone) or "error" (the engine failed)

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.arrival

    def latency(self) -> float:
        return time.perf_counter() - self.arrival


CURRENT: ContextVar[RequestRecord | None] = ContextVar("llmctl_request", default=None)


@functools.cache
def _series(endpoint: str, model: str) -> tuple:
    """The labelled children of one endpoint and model (labels() takes a lock and builds a key each call)."""
    return (PROMPT_TOKENS.labels(endpoint, model), TOKENS_GENERATED.labels(endpoint, model), TTFT.labels(endpoint, model),
            LATENCY.labels(endpoint, model))


@functools.cache
def _requests(outcome: str, endpoint: str, model: str):
    return REQUESTS.labels(outcome, endpoint, model)


def observe(record: RequestRecord, outcome: str) -> None:
    """One finished generation request -> the reference series."""
    prompt, tokens, ttft, latency = _series(record.endpoint, record.model)
    _requests(outcome, record.endpoint, record.model).inc()
    prompt.inc(record.prompt_tokens)
    tokens.inc(record.completion_tokens)
    if record.ttft is not None:
        ttft.observe(record.ttft)
    if outcome == "success":
        latency.observe(record.latency())


_ADAPTERS_SHOWN: set[str] = set()


def set_adapters(declared: list[str], loaded: list[str]) -> None:
    """The adapter gauge as of now (the missing-adapter alert reads its zeros); one unloaded and undeclared goes."""
    names = set(declared) | set(loaded)
    for gone in _ADAPTERS_SHOWN - names:
        ADAPTER_LOADED.remove(gone)
    for name in names:
        ADAPTER_LOADED.labels(name).set(1 if name in loaded else 0)
    _ADAPTERS_SHOWN.clear()
    _ADAPTERS_SHOWN.update(names)


_BEFORE_SCRAPE: list[Callable[[], None]] = []


def before_scrape(hook: Callable[[], None]) -> None:
    """`hook` runs before every render (the server's one app: the adapter gauge); a later app replaces it."""
    _BEFORE_SCRAPE[:] = [hook]


def render() -> bytes:
    """Everything in the default registry: ours and vLLM's own series."""
    for hook in _BEFORE_SCRAPE:
        hook()
    return generate_latest(REGISTRY)


async def send(send_message) -> None:
    """The whole /metrics response."""
    body = render()
    await send_message({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]})
    await send_message({"type": "http.response.body", "body": body})


def on_api_port(metrics_port: int):
    """What GET /metrics on the API port answers (an ASGI app): the series with METRICS_PORT=0,
    else a 404 that says where they are."""
    async def answer(scope, receive, send_message) -> None:
        if metrics_port:
            error = ApiError(404, f"/metrics is served on the metrics port ({metrics_port}), not this one",
                             type="not_found")
            return await error.send(send_message)
        await send(send_message)
    return answer


async def app(scope, receive, send_message) -> None:
    """The metrics listener's whole ASGI app (METRICS_PORT): GET /metrics, and 404 for anything else,
    so the port a NetworkPolicy opens to the monitoring namespace reaches nothing but the series."""
    if scope["type"] != "http":
        return
    if scope["path"] != "/metrics" or scope["method"] not in ("GET", "HEAD"):
        return await ApiError(404, "this port serves GET /metrics only", type="not_found").send(send_message)
    await send(send_message)

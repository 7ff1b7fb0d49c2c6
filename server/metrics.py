"""The reference architecture's Prometheus series, in the default registry beside vLLM's `vllm:*`."""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

disable_created_metrics()

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "vllm_requests_total",
    "Requests by outcome: success, invalid, unauthorized, rejected (429), unavailable, aborted, error.",
    ["status", "endpoint"],
)
LATENCY = Histogram(
    "vllm_request_latency_seconds", "End-to-end latency of successful requests.", ["endpoint"], buckets=LATENCY_BUCKETS
)
TTFT = Histogram(
    "vllm_time_to_first_token_seconds", "Time from request arrival to the first generated token.", ["endpoint"],
    buckets=TTFT_BUCKETS,
)
TOKENS_GENERATED = Counter("vllm_tokens_generated_total", "Completion tokens generated.", ["endpoint"])
PROMPT_TOKENS = Counter("vllm_prompt_tokens_total", "Prompt tokens processed.", ["endpoint"])
ACTIVE = Gauge("vllm_active_requests", "Requests holding an engine slot.")
QUEUED = Gauge("vllm_queued_requests", "Requests waiting for an engine slot (MAX_QUEUED_REQUESTS bounds it).")
MODEL_LOADED = Gauge("vllm_model_loaded", "1 once the model is loaded and warmed up, else 0.")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render() -> bytes:
    """Everything in the default registry: ours and vLLM's own series."""
    return generate_latest(REGISTRY)

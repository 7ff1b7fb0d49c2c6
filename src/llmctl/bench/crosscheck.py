"""The server's own view of a run: scrape `/metrics` before and after, compare with the client.

Counters and histograms are differenced between the two scrapes, so earlier traffic (and the
warm-up, scraped before the run) does not count. The reference series come from `server/`
(`vllm_requests_total{status,endpoint}`, `vllm_tokens_generated_total`, `vllm_prompt_tokens_total`,
`vllm_time_to_first_token_seconds`, `vllm_request_latency_seconds`); queue time from vLLM's
`vllm:request_queue_time_seconds`, and vLLM's own TTFT histogram when ours is absent.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

# Client and server TTFT further apart than this factor mean the client's clock is not the server's
# pace: on one machine, usually a client starved of CPU that reads the streams late.
TTFT_DISAGREEMENT_FACTOR = 2.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Samples:
    """Prometheus text -> {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _sum(samples: Samples, name: str, **match: str) -> float | None:
    values = [v for (n, labels), v in samples.items() if n == name and all(dict(labels).get(k) == w for k, w in match.items())]
    return sum(values) if values else None


def _delta(before: Samples, after: Samples, name: str, **match: str) -> float | None:
    a = _sum(after, name, **match)
    if a is None:
        return None
    return a - (_sum(before, name, **match) or 0.0)


def _buckets(before: Samples, after: Samples, name: str, **match: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram's change, summed over other labels."""
    totals: dict[float, float] = defaultdict(float)
    for source, sign in ((after, 1.0), (before, -1.0)):
        for (n, labels), v in source.items():
            lab = dict(labels)
            if n == f"{name}_bucket" and all(lab.get(k) == w for k, w in match.items()):
                totals[float(lab["le"])] += sign * v
    return sorted(totals.items())


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's `histogram_quantile`: linear interpolation inside the bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            width = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / width if width else 0.0)
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass
class HistogramDelta:
    count: float
    mean_ms: float | None
    median_ms: float | None

    @classmethod
    def of(cls, before: Samples, after: Samples, name: str, **match: str) -> "HistogramDelta | None":
        count = _delta(before, after, f"{name}_count", **match)
        if not count:
            return None
        total = _delta(before, after, f"{name}_sum", **match) or 0.0
        median = histogram_quantile(0.5, _buckets(before, after, name, **match))
        return cls(count, total / count * 1000, None if median is None else median * 1000)


@dataclass
class CrossCheck:
    server_requests: dict[str, float]  # status -> count during the run
    server_completed: float | None
    server_output_tokens: float | None
    server_prompt_tokens: float | None
    server_ttft: HistogramDelta | None
    server_latency: HistogramDelta | None
    server_queue: HistogramDelta | None
    disagreements: list[str] = field(default_factory=list)
    ttft_ratio: float | None = None  # client mean TTFT / server mean TTFT

    @property
    def ttft_disagrees(self) -> bool:
        ratio = self.ttft_ratio
        return ratio is not None and not 1 / TTFT_DISAGREEMENT_FACTOR <= ratio <= TTFT_DISAGREEMENT_FACTOR

    def to_dict(self) -> dict:
        def hist(h: HistogramDelta | None) -> dict | None:
            return None if h is None else {"count": h.count, "mean_ms": h.mean_ms, "median_ms": h.median_ms}

        return {
            "server_requests": self.server_requests,
            "server_completed": self.server_completed,
            "server_output_tokens": self.server_output_tokens,
            "server_prompt_tokens": self.server_prompt_tokens,
            "server_ttft": hist(self.server_ttft),
            "server_latency": hist(self.server_latency),
            "server_queue_time": hist(self.server_queue),
            "disagreements": self.disagreements,
            "ttft_ratio": self.ttft_ratio,
            "ttft_disagrees": self.ttft_disagrees,
        }


def compare(before_text: str, after_text: str, client: dict, endpoint: str | None = None) -> CrossCheck:
    """Server deltas beside the client's metrics; a disagreement in counts is flagged."""
    before, after = parse_metrics(before_text), parse_metrics(after_text)
    match = {"endpoint": endpoint} if endpoint and _sum(after, "vllm_requests_total", endpoint=endpoint) is not None else {}
    statuses: dict[str, float] = {}
    for (name, labels), _ in after.items():
        lab = dict(labels)
        if name == "vllm_requests_total" and all(lab.get(k) == v for k, v in match.items()):
            status = lab.get("status", "")
            if status not in statuses:
                statuses[status] = _delta(before, after, "vllm_requests_total", status=status, **match) or 0.0
    check = CrossCheck(
        server_requests={k: v for k, v in statuses.items() if v},
        server_completed=statuses.get("success") if statuses else None,
        server_output_tokens=_delta(before, after, "vllm_tokens_generated_total", **match),
        server_prompt_tokens=_delta(before, after, "vllm_prompt_tokens_total", **match),
        server_ttft=HistogramDelta.of(before, after, "vllm_time_to_first_token_seconds", **match)
        or HistogramDelta.of(before, after, "vllm:time_to_first_token_seconds"),
        server_latency=HistogramDelta.of(before, after, "vllm_request_latency_seconds", **match)
        or HistogramDelta.of(before, after, "vllm:e2e_request_latency_seconds"),
        server_queue=HistogramDelta.of(before, after, "vllm:request_queue_time_seconds"),
    )
    pairs = (
        ("completed requests", client.get("completed"), check.server_completed),
        ("output tokens", client.get("total_output_tokens"), check.server_output_tokens),
        ("prompt tokens", client.get("total_input_tokens"), check.server_prompt_tokens),
    )
    for what, ours, theirs in pairs:
        if ours is not None and theirs is not None and not math.isclose(float(ours), float(theirs)):
            check.disagreements.append(f"{what}: client counted {ours:g}, server counted {theirs:g}")
    client_ttft, server_ttft = client.get("mean_ttft_ms"), check.server_ttft.mean_ms if check.server_ttft else None
    if client.get("completed") and client_ttft and server_ttft:
        check.ttft_ratio = client_ttft / server_ttft
    return check


async def scrape(session, base_url: str, timeout_s: float = 10.0, tls=None) -> str | None:
    """GET /metrics text, or None when the endpoint does not expose it (`tls`: a client.Tls for https)."""
    import aiohttp

    from llmctl.bench.client import Tls, request_options

    url = base_url.rstrip("/") + "/metrics"
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s),
                               **request_options(tls or Tls(), url, {})) as resp:
            if resp.status != 200:
                return None
            return await resp.text()
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None

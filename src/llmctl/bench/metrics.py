"""Pure statistics over `RequestResult`s, defined as `vllm bench serve` (0.32) defines them.

The keys are vLLM's result-file keys (`mean_ttft_ms`, `p99_tpot_ms`, `request_throughput`,
`max_output_tokens_per_s`, ...), so tools that read vLLM's JSON read ours:

* TTFT, E2EL: per successful request (E2EL ends at the last token chunk).
* TPOT: per successful request with more than one output token, (latency - ttft) / (tokens - 1),
  as in vLLM; and, beyond vLLM, only from requests whose tokens came in at least two network
  reads: when all of them reach the client in one read (a starved client, a buffering proxy)
  latency - ttft is the client's lateness, not the server's pace (0.01 ms, "139,239 tok/s").
  `tpot_requests` says how many requests it comes from. For goodput a request with one token
  counts as TPOT 0 (as in vLLM).
* ITL: the pooled gaps between streamed chunks of all successful requests.
* Mean, median, std (population) and percentiles by numpy's default (linear) interpolation;
  an empty list gives 0, as vLLM's `np.mean(x or 0)` does.
* Throughputs divide by the run's duration; goodput counts requests meeting every SLO.
* Peak output tokens/s and peak concurrent requests: one-second buckets from the first send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from llmctl.bench.client import RequestResult

DEFAULT_PERCENTILES = (50.0, 90.0, 95.0, 99.0)
SLO_NAMES = ("ttft", "tpot", "e2el")


def parse_slo(text: str | None) -> dict[str, float]:
    """`ttft:200,tpot:50` -> {"ttft": 200.0, "tpot": 50.0} (milliseconds)."""
    slo: dict[str, float] = {}
    if not text:
        return slo
    for pair in text.replace(" ", ",").split(","):
        if not pair:
            continue
        name, sep, value = pair.partition(":")
        if not sep or name not in SLO_NAMES:
            raise ValueError(f"{pair!r} is not NAME:MS with NAME one of {', '.join(SLO_NAMES)}")
        try:
            slo[name] = float(value)
        except ValueError:
            raise ValueError(f"{pair!r}: {value!r} is not a number of milliseconds") from None
        if slo[name] < 0:
            raise ValueError(f"{pair!r}: an SLO must not be negative")
    return slo


def percentile_key(p: float) -> str:
    """vLLM's spelling: 99 -> "99", 99.9 -> "99.9"."""
    return str(int(p)) if int(p) == p else str(p)


def summarize(values: Sequence[float], name: str, percentiles: Sequence[float]) -> dict[str, float]:
    """mean/median/std/pN of `values` (seconds) in milliseconds, under vLLM's key names."""
    import numpy as np

    data = list(values) or 0
    out = {
        f"mean_{name}_ms": float(np.mean(data)) * 1000,
        f"median_{name}_ms": float(np.median(data)) * 1000,
        f"std_{name}_ms": float(np.std(data)) * 1000,
    }
    for p in percentiles:
        out[f"p{percentile_key(p)}_{name}_ms"] = float(np.percentile(data, p)) * 1000
    return out


def request_tpot(result: RequestResult, output_len: int) -> float | None:
    """TPOT of one request, or None when it produced one token or fewer."""
    if output_len <= 1:
        return None
    return (result.latency - result.ttft) / (output_len - 1)


def streamed(result: RequestResult) -> bool:
    """Its tokens came in at least two reads (records without the count: assumed, as vLLM does)."""
    return result.token_reads is None or result.token_reads >= 2


def compute_metrics(
    results: Sequence[RequestResult],
    duration: float,
    *,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    slo: dict[str, float] | None = None,
    count_tokens: Callable[[str], int] | None = None,
    concurrency_limited: bool = False,
) -> dict:
    """Every figure of a run, keyed like vLLM's result JSON, plus the error breakdown.

    `count_tokens` stands in (as vLLM's tokenizer does) when the server reported no usage;
    without it such a request counts as one output token, as in vLLM.
    """
    output_lens: list[int] = []
    ttfts: list[float] = []
    tpots: list[float] = []
    all_tpots: list[float] = []
    itls: list[float] = []
    e2els: list[float] = []
    queue_times: list[float] = []
    total_input = 0
    completed = 0
    for r in results:
        if not r.success:
            output_lens.append(0)
            continue
        n = r.output_tokens or (count_tokens(r.generated_text) if count_tokens else 1)
        output_lens.append(n)
        total_input += r.prompt_len
        tpot = request_tpot(r, n)
        if tpot is not None and streamed(r):
            tpots.append(tpot)
        all_tpots.append(tpot or 0.0)
        itls.extend(r.itl)
        ttfts.append(r.ttft)
        e2els.append(r.latency)
        queue_times.append(r.client_queue_time)
        completed += 1

    good = 0
    if slo:
        columns = {"ttft": ttfts, "tpot": all_tpots, "e2el": e2els}
        chosen = [(columns[name], limit / 1000.0) for name, limit in slo.items()]
        for i in range(completed):
            if all(values[i] <= limit for values, limit in chosen):
                good += 1

    total_output = sum(output_lens)
    errors = Counter(r.error or "unknown" for r in results if not r.success)
    peak_tokens, peak_concurrency = peaks(results)
    out = {
        "duration": duration,
        "completed": completed,
        "failed": len(results) - completed,
        "total_input_tokens": total_input,
        "total_output_tokens": total_output,
        "request_throughput": completed / duration,
        "request_goodput": good / duration if slo else None,
        "output_throughput": total_output / duration,
        "total_token_throughput": (total_input + total_output) / duration,
        "max_output_tokens_per_s": peak_tokens,
        "max_concurrent_requests": peak_concurrency,
        "tpot_requests": len(tpots),
        "rtfx": 0.0,  # vLLM's audio figure (inverse real-time factor): no audio input here
        "errors_by_type": dict(errors.most_common()),
    }
    out.update(summarize(ttfts, "ttft", percentiles))
    out.update(summarize(tpots, "tpot", percentiles))
    # A streaming user's reading speed, from the same requests as TPOT (None when none streamed).
    out["per_request_tokens_per_s"] = 1000.0 / out["median_tpot_ms"] if tpots and out["median_tpot_ms"] else None
    out.update(summarize(itls, "itl", percentiles))
    out.update(summarize(e2els, "e2el", percentiles))
    if concurrency_limited:
        out.update(summarize(queue_times, "client_queue_time", percentiles))
    out["output_lens"] = output_lens
    return out


def peaks(results: Sequence[RequestResult]) -> tuple[float, int]:
    """vLLM's peak output tokens/s and peak concurrent requests (one-second buckets).

    Each chunk counts as one token, as in vLLM (its token times are start + ttft + cumulative ITL).
    """
    import numpy as np

    ok = [r for r in results if r.success]
    if not ok:
        return 0.0, 0
    t0 = min(r.start_time for r in ok)
    t1 = max(r.start_time + r.latency for r in ok)
    buckets = int(np.ceil(t1 - t0)) + 1
    tokens = np.zeros(buckets)
    active = np.zeros(buckets)
    for r in ok:
        t = r.start_time + r.ttft
        times = [t]
        for gap in r.itl:
            t += gap
            times.append(t)
        for when in times:
            second = int(when - t0)
            if 0 <= second < buckets:
                tokens[second] += 1
        first, last = int(r.start_time - t0), int(r.start_time + r.latency - t0)
        active[first : last + 1] += 1
    return float(tokens.max()), int(active.max())


def result_document(metrics: dict, results: Sequence[RequestResult], params: dict, *, detailed: bool = False) -> dict:
    """The `--output-json` document: vLLM's run header and metrics, then llmctl's extras.

    Per-request lists (`ttfts`, `itls`, ...) only with `detailed`, as vLLM's `--save-detailed`.
    """
    from datetime import datetime

    rate = params.get("request_rate")
    doc = {
        "date": datetime.now().strftime("%Y%m%d-%H%M%S"),
        "endpoint_type": params.get("backend", "llmctl"),
        "backend": params.get("backend", "llmctl"),
        "label": params.get("label"),
        "model_id": params.get("model_id"),
        "tokenizer_id": params.get("tokenizer_id"),
        "num_prompts": params.get("num_prompts"),
        "request_rate": "inf" if rate is None or rate == float("inf") else rate,
        "burstiness": params.get("burstiness", 1.0),
        "max_concurrency": params.get("max_concurrency"),
    }
    doc.update({k: v for k, v in metrics.items() if k != "output_lens"})
    doc["latencies"] = [r.latency for r in results]
    doc["queue_times"] = [r.client_queue_time for r in results]
    if detailed:
        doc.update(
            input_lens=[r.prompt_len for r in results],
            output_lens=metrics.get("output_lens", []),
            ttfts=[r.ttft for r in results],
            itls=[r.itl for r in results],
            start_times=[r.start_time for r in results],
            generated_texts=[r.generated_text for r in results],
            errors=[r.error for r in results],
        )
    doc["llmctl"] = {k: v for k, v in params.items() if k not in doc}
    return doc


# The reference architecture's quoted figures: (label, metric key, target text, check). They were
# measured for one setup, and grade nothing else.
REFERENCE_SETUP = "Llama-2-7B on a T4"
REFERENCE_TARGETS: tuple[tuple[str, str, str, Callable[[float], bool]], ...] = (
    ("TTFT (median)", "median_ttft_ms", "100-200 ms", lambda v: v <= 200.0),
    ("Time per output token (median)", "median_tpot_ms", "40-60 ms", lambda v: v <= 60.0),
    ("Tokens/s per request", "per_request_tokens_per_s", "15-25 tok/s", lambda v: v >= 15.0),
    ("Request throughput", "request_throughput", "0.3-0.5 req/s", lambda v: v >= 0.3),
    ("Latency P50", "median_e2el_ms", "200 ms", lambda v: v <= 200.0),
    ("Latency P95", "p95_e2el_ms", "500 ms", lambda v: v <= 500.0),
    ("Latency P99", "p99_e2el_ms", "2.3 s", lambda v: v <= 2300.0),
)
REFERENCE_PERCENTILES = (50.0, 95.0, 99.0)


def reference_applies(model: str | None, gpu_model: str | None) -> bool:
    """The endpoint serves a Llama-2-7B (any fine-tune: `llama-2-7b-chat-hf`, `Llama2-7B-qlora`) on a T4."""
    name = "".join(c for c in (model or "").lower() if c.isalnum())
    return "llama27b" in name and (gpu_model or "").upper() == "T4"


def reference_checks(metrics: dict) -> list[dict]:
    """Each reference figure beside the measured one: pass when at least as good as the target.

    With no request that streamed, TPOT and tokens/s per request are n/a (not a 0 ms "pass").
    """
    values = dict(metrics)
    if not metrics.get("tpot_requests"):
        values["median_tpot_ms"] = None
    checks = []
    for label, key, target, ok in REFERENCE_TARGETS:
        value = values.get(key)
        status = "n/a" if value is None or not metrics.get("completed") else ("pass" if ok(value) else "fail")
        checks.append({"figure": label, "key": key, "value": value, "target": target, "status": status})
    return checks

"""Metric arithmetic on synthetic timings, with the expectations worked out by hand."""

from __future__ import annotations

import pytest

from llmctl.bench.client import RequestResult
from llmctl.bench.metrics import compute_metrics, parse_slo, peaks, reference_checks, result_document

approx = pytest.approx


def ok(start, ttft, itl, latency, out, prompt):
    return RequestResult(success=True, start_time=start, ttft=ttft, itl=list(itl), latency=latency, output_tokens=out, prompt_len=prompt)


@pytest.fixture
def runs() -> list[RequestResult]:
    return [
        ok(0.0, 0.1, [0.05, 0.05, 0.1], 0.3, 4, 10),  # TPOT (0.3-0.1)/3
        ok(0.5, 0.2, [], 0.2, 1, 20),  # one token: no TPOT
        ok(1.2, 0.1, [0.2], 0.3, 5, 30),  # 2 chunks carrying 5 tokens: TPOT 0.2/4, one ITL gap
        RequestResult(success=False, error="HTTP 500", start_time=1.0, prompt_len=40),
    ]


def test_counts_and_throughput(runs):
    m = compute_metrics(runs, 2.0)
    assert (m["completed"], m["failed"]) == (3, 1)
    assert (m["total_input_tokens"], m["total_output_tokens"]) == (60, 10)
    assert m["request_throughput"] == approx(1.5)
    assert m["output_throughput"] == approx(5.0)
    assert m["total_token_throughput"] == approx(35.0)
    assert m["output_lens"] == [4, 1, 5, 0]
    assert m["errors_by_type"] == {"HTTP 500": 1}
    assert m["request_goodput"] is None


def test_ttft_stats(runs):
    m = compute_metrics(runs, 2.0)
    assert m["mean_ttft_ms"] == approx(133.3333, rel=1e-4)
    assert m["median_ttft_ms"] == approx(100.0)
    assert m["std_ttft_ms"] == approx(47.1405, rel=1e-4)  # population std, as numpy/vLLM
    assert m["p99_ttft_ms"] == approx(198.0)  # linear: 0.1 + 0.98 * (0.2 - 0.1)
    assert m["p50_ttft_ms"] == approx(100.0)


def test_tpot_excludes_single_token_and_uses_token_count_not_chunks(runs):
    m = compute_metrics(runs, 2.0)
    # A: 200 ms / 3 = 66.667; C: 200 ms / 4 = 50 (multi-token chunks); B excluded (1 token)
    assert m["mean_tpot_ms"] == approx((66.66667 + 50.0) / 2, rel=1e-5)
    assert m["median_tpot_ms"] == approx(58.33333, rel=1e-5)


def test_tpot_skips_requests_whose_tokens_came_in_one_read(runs):
    runs[0].token_reads, runs[2].token_reads = 1, 2  # A's four tokens reached the client at once
    m = compute_metrics(runs, 2.0)
    assert m["tpot_requests"] == 1 and m["median_tpot_ms"] == approx(50.0)
    assert m["per_request_tokens_per_s"] == approx(20.0)


def test_itl_pools_chunk_gaps(runs):
    m = compute_metrics(runs, 2.0)
    # pooled gaps [50, 50, 100, 200]: C's two chunks give one 200 ms gap, whatever they carry
    assert m["mean_itl_ms"] == approx(100.0)
    assert m["median_itl_ms"] == approx(75.0)
    assert m["p99_itl_ms"] == approx(197.0)


def test_e2el(runs):
    m = compute_metrics(runs, 2.0)
    assert m["mean_e2el_ms"] == approx(266.6667, rel=1e-5)
    assert m["median_e2el_ms"] == approx(300.0)


def test_goodput_uses_all_slos_and_tpot_zero_for_one_token(runs):
    # ttft<=150 & tpot<=60: A fails tpot (66.7), B fails ttft (200), C passes -> 1 good / 2 s
    assert compute_metrics(runs, 2.0, slo={"ttft": 150, "tpot": 60})["request_goodput"] == approx(0.5)
    # tpot<=60 alone: B counts as TPOT 0 (vLLM), so B and C -> 2 good / 2 s
    assert compute_metrics(runs, 2.0, slo={"tpot": 60})["request_goodput"] == approx(1.0)
    assert compute_metrics(runs, 2.0, slo={"e2el": 250})["request_goodput"] == approx(0.5)


def test_peaks_one_second_buckets(runs):
    # token times: A 0.1, 0.15, 0.2, 0.3; B 0.7 -> second 0 has 5; C 1.3, 1.5 -> second 1 has 2
    # active: A and B in second 0, C in second 1
    assert peaks(runs) == (5.0, 2)


def test_missing_usage_counts_one_token_or_tokenizer():
    r = ok(0.0, 0.1, [0.1], 0.2, 0, 5)
    r.generated_text = "a b c"
    assert compute_metrics([r], 1.0)["total_output_tokens"] == 1
    assert compute_metrics([r], 1.0, count_tokens=lambda t: len(t.split()))["total_output_tokens"] == 3


def test_all_failed_gives_zeros_not_errors():
    m = compute_metrics([RequestResult(error="timeout")], 1.0)
    assert m["completed"] == 0 and m["mean_ttft_ms"] == 0.0 and m["p99_e2el_ms"] == 0.0
    assert all(c["status"] == "n/a" for c in reference_checks(m))


def test_percentile_keys_follow_vllm_spelling(runs):
    m = compute_metrics(runs, 2.0, percentiles=[25, 99.9])
    assert "p25_ttft_ms" in m and "p99.9_tpot_ms" in m and "p50_ttft_ms" not in m


def test_parse_slo():
    assert parse_slo("ttft:200,tpot:60 e2el:2300") == {"ttft": 200.0, "tpot": 60.0, "e2el": 2300.0}
    for bad in ("ttft", "latency:5", "ttft:x", "ttft:-1"):
        with pytest.raises(ValueError):
            parse_slo(bad)


def test_reference_checks():
    m = {"completed": 1, "median_ttft_ms": 150.0, "median_tpot_ms": 80.0, "tpot_requests": 1,
         "per_request_tokens_per_s": 12.5, "request_throughput": 0.4,
         "median_e2el_ms": 190.0, "p95_e2el_ms": 600.0, "p99_e2el_ms": 2000.0}
    status = {c["key"]: c["status"] for c in reference_checks(m)}
    assert status == {
        "median_ttft_ms": "pass", "median_tpot_ms": "fail", "per_request_tokens_per_s": "fail",
        "request_throughput": "pass", "median_e2el_ms": "pass", "p95_e2el_ms": "fail", "p99_e2el_ms": "pass",
    }


def test_result_document_header_and_detail(runs):
    m = compute_metrics(runs, 2.0)
    doc = result_document(m, runs, {"num_prompts": 4, "request_rate": float("inf"), "max_concurrency": 2, "seed": 7})
    assert doc["request_rate"] == "inf" and doc["num_prompts"] == 4 and doc["max_concurrency"] == 2
    assert "ttfts" not in doc and doc["llmctl"] == {"seed": 7}
    detailed = result_document(m, runs, {}, detailed=True)
    assert detailed["output_lens"] == [4, 1, 5, 0] and detailed["itls"][0] == [0.05, 0.05, 0.1]

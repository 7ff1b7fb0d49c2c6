"""Server /metrics deltas beside the client's counts, with disagreements flagged."""

from __future__ import annotations

import pytest

from llmctl.bench.crosscheck import compare, histogram_quantile

BEFORE = """
# TYPE vllm_requests_total counter
vllm_requests_total{endpoint="/v1/completions",status="success"} 5.0
vllm_requests_total{endpoint="/generate",status="success"} 7.0
# TYPE vllm_tokens_generated_total counter
vllm_tokens_generated_total{endpoint="/v1/completions"} 50.0
# TYPE vllm_time_to_first_token_seconds histogram
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="0.1"} 5.0
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="0.2"} 5.0
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="+Inf"} 5.0
vllm_time_to_first_token_seconds_count{endpoint="/v1/completions"} 5.0
vllm_time_to_first_token_seconds_sum{endpoint="/v1/completions"} 0.25
"""
AFTER = """
# TYPE vllm_requests_total counter
vllm_requests_total{endpoint="/v1/completions",status="success"} 9.0
vllm_requests_total{endpoint="/v1/completions",status="rejected"} 1.0
vllm_requests_total{endpoint="/generate",status="success"} 8.0
# TYPE vllm_tokens_generated_total counter
vllm_tokens_generated_total{endpoint="/v1/completions"} 90.0
# TYPE vllm_time_to_first_token_seconds histogram
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="0.1"} 5.0
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="0.2"} 9.0
vllm_time_to_first_token_seconds_bucket{endpoint="/v1/completions",le="+Inf"} 9.0
vllm_time_to_first_token_seconds_count{endpoint="/v1/completions"} 9.0
vllm_time_to_first_token_seconds_sum{endpoint="/v1/completions"} 0.85
"""


def test_deltas_for_the_benchmarked_endpoint_only():
    check = compare(BEFORE, AFTER, {"completed": 4, "total_output_tokens": 40}, "/v1/completions")
    assert check.server_requests == {"success": 4.0, "rejected": 1.0}
    assert check.server_completed == 4.0 and check.server_output_tokens == 40.0
    assert check.server_ttft.count == 4 and check.server_ttft.mean_ms == pytest.approx(150.0)
    assert check.server_ttft.median_ms == pytest.approx(150.0)  # all four in (0.1, 0.2]: midpoint
    assert check.disagreements == []


def test_disagreement_is_flagged():
    check = compare(BEFORE, AFTER, {"completed": 3, "total_output_tokens": 40}, "/v1/completions")
    assert check.disagreements == ["completed requests: client counted 3, server counted 4"]


def test_histogram_quantile_like_prometheus():
    buckets = [(0.1, 2.0), (0.5, 6.0), (float("inf"), 8.0)]
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.3)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.5)  # +Inf bucket: the lower bound
    assert histogram_quantile(0.5, []) is None

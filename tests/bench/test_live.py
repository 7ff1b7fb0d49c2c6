"""Against the real server on the tiny model (the session's `live_server`): vLLM-named JSON whose
counts match the server's own /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _vllm_result_keys() -> set[str]:
    """The keys `vllm bench serve` writes for a generation run, read from vLLM's own source."""
    try:
        import vllm
    except ImportError:
        pytest.skip("vllm is not installed")
    source = (Path(vllm.__file__).parent / "benchmarks" / "serve.py").read_text()
    keys = set(re.findall(r'"(\w+)": metrics\.\w+', source))
    keys -= {"total_input_sequences", "input_sequence_throughput"}  # pooling (embedding) runs only
    keys |= {"duration", "date", "backend", "model_id", "num_prompts", "request_rate", "burstiness", "max_concurrency"}
    for metric in ("ttft", "tpot", "itl", "e2el"):
        keys |= {f"mean_{metric}_ms", f"median_{metric}_ms", f"std_{metric}_ms"} | {f"p{p}_{metric}_ms" for p in (50, 90, 95, 99)}
    return keys


def test_live_run_json_has_vllm_keys_and_server_counts_agree(llmctl, live_server):
    key_names = _vllm_result_keys()
    assert {"request_throughput", "output_throughput", "total_token_throughput", "completed", "max_output_tokens_per_s"} <= key_names

    def success_count() -> float:
        return live_server.metric("vllm_requests_total", status="success", endpoint="/v1/completions")

    before_success = success_count()
    done = llmctl(
        "bench", "--url", live_server.base_url, "--metrics-url", live_server.metrics_url, "--api-key", live_server.api_key, "-n", "8", "--concurrency", "4",
        "--input-len", "16", "--output-len", "8", "--tokenizer", str(live_server.model_dir), "--output-json", "live.json",
        "--percentiles", "50,90,95,99", timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads((llmctl.cwd / "live.json").read_text())
    assert key_names <= set(doc), key_names - set(doc)
    assert doc["completed"] == 8 and doc["failed"] == 0
    assert doc["total_output_tokens"] == 8 * 8  # ignore_eos: exactly --output-len each
    assert doc["model_id"] == live_server.model_name
    assert doc["mean_ttft_ms"] > 0 and doc["mean_itl_ms"] > 0
    # TPOT only from requests that streamed in 2+ reads; a starved client is told so instead of a 0 ms TPOT
    assert doc["median_tpot_ms"] > 0 if doc["tpot_requests"] else "cannot be measured" in " ".join(done.stderr.split())
    check = doc["llmctl"]["crosscheck"]
    assert check["status"] == "ok", check
    assert check["server_completed"] == 8 and check["server_output_tokens"] == 64
    assert check["server_prompt_tokens"] == doc["total_input_tokens"]
    assert check["disagreements"] == []
    assert check["server_ttft"]["count"] == 8
    # and independently of our scraper: the server counted the warm-up plus our eight
    assert success_count() - before_success == 8 + 1
    assert "Client vs server" in done.stdout


def test_live_generate_endpoint_streams(live_server):
    from llmctl.actions.bench import BenchOptions, run_bench
    from llmctl.actions.bench_target import ResolvedTarget

    doc = run_bench(
        BenchOptions(endpoint="/generate", num_prompts=4, concurrency=2, input_len=8, output_len=6, warmup=0),
        ResolvedTarget(live_server.base_url, live_server.api_key, "flag", metrics_url=live_server.metrics_url),
    )
    assert doc["completed"] == 4 and doc["total_output_tokens"] == 24
    assert doc["llmctl"]["crosscheck"]["disagreements"] == []

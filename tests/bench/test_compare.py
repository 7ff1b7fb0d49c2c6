"""`llmctl bench --compare base,NAME` against the fake server (the real LoRA engine: tests/server/test_second_engine.py)."""

from __future__ import annotations

import json

from tests.bench.fakeserver import FakeServer, Script


def test_compare_runs_both_models_and_prints_the_ratios(llmctl):
    with FakeServer(Script(tokens=4)) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "4", "--hourly-price", "0.526",
                      "--compare", "base,sql", "-o", "json", timeout=120)
        text = llmctl("bench", "--url", srv.url, "-n", "2", "--output-len", "4", "--compare", "base,sql", timeout=120)
        refused = llmctl("bench", "--url", srv.url, "--compare", "sql")
    assert done.returncode == 0, done.stderr
    compare = json.loads(done.stdout)["compare"]
    assert compare["models"] == ["fake-model", "sql"]  # `base`: the /v1/models entry without a parent
    assert all(run["completed"] == 4 and run["usd_per_million_output_tokens"] > 0 for run in compare["runs"].values())
    assert compare["ratios"]["median_ttft_ms"] > 0 and compare["ratios"]["usd_per_million_output_tokens"] > 0
    assert text.returncode == 0 and "sql against fake-model" in text.stdout and "ratio" in text.stdout
    assert refused.returncode == 2 and "must name two models" in refused.stderr

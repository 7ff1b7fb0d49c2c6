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


def test_a_side_without_tpot_has_no_tpot_ratio_and_the_compare_says_which_and_why(llmctl):
    # The adapter's responses each come in one write: what a client starved of CPU reads (the engine test
    # sees it on 2 loaded cores). vLLM's 0 for an empty TPOT list made the ratio 0 ("no cost per token").
    with FakeServer(Script(tokens=8, itl_s=0.01, one_write_models=("sql",))) as srv:
        done = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "8", "--warmup", "0",
                      "--compare", "base,sql", "-o", "json", timeout=120)
        text = llmctl("bench", "--url", srv.url, "-n", "4", "--output-len", "8", "--warmup", "0",
                      "--compare", "base,sql", timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    compare = document["compare"]
    base, sql = compare["runs"]["fake-model"], compare["runs"]["sql"]
    assert base["tpot_requests"] == 4 and base["median_tpot_ms"] >= 9
    assert sql["tpot_requests"] == 0 and sql["median_tpot_ms"] is None
    assert compare["ratios"]["median_tpot_ms"] is None and compare["tpot_unmeasured"] == ["sql"]
    assert compare["ratios"]["median_e2el_ms"] > 0
    assert sql["client_starved"] is document["llmctl"]["runs"]["sql"]["llmctl"]["client_starved"]

    assert text.returncode == 0, text.stderr
    warning = " ".join(text.stderr.split())
    assert "sql: no request streamed its tokens in two or more reads, so its TPOT and the TPOT ratio cannot be measured" in warning
    assert "fake-model: no request" not in warning
    row = [cell.strip() for cell in next(line for line in text.stdout.splitlines() if "TPOT p50 ms" in line).split("│")]
    assert float(row[2]) >= 9 and row[3:5] == ["-", "-"]  # fake-model's TPOT; sql's and the ratio unmeasured

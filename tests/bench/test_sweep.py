"""The sweep rises until the SLO breaks, bisects to the known knee, and writes plots and HTML."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from llmctl.actions.bench import BenchOptions, run_bench
from llmctl.actions.bench_target import ResolvedTarget
from llmctl.bench.sweep import SweepPoint, is_saturated, run_sweep
from tests.bench.fakeserver import FakeServer, Script


def test_concurrency_sweep_finds_the_knee(tmp_path):
    """TTFT = 30 ms * (1 + 2 * (active - 4)): concurrency 5 gives 90 ms, 6 gives 150 ms; SLO 120 ms."""
    out = tmp_path / "sweep.json"
    with FakeServer(Script(tokens=4, ttft_s=0.03, itl_s=0.002, knee=4, knee_slope=2.0)) as srv:
        doc = run_bench(
            BenchOptions(
                num_prompts=24, output_len=4, warmup=0, sweep="concurrency", sweep_start=1, sweep_factor=2,
                sweep_steps=5, bisect_steps=3, slo={"ttft": 120.0}, slo_attainment=0.75, output_json=out, html=True,
            ),
            ResolvedTarget(srv.url, None, "flag"),
        )
    sweep = doc["llmctl"]["sweep"]
    levels = [(p["phase"], p["level"], p["meets"]) for p in sweep["points"]]
    assert levels[:4] == [("ramp", 1.0, True), ("ramp", 2.0, True), ("ramp", 4.0, True), ("ramp", 8.0, False)]
    assert sweep["best"] == 5.0, levels
    assert doc["max_concurrency"] == 5  # the summary is the best level's run
    written = json.loads(out.read_text())["llmctl"]["files"]
    assert [Path(p).name for p in written] == [
        "sweep.json", "sweep.latency_vs_throughput.png", "sweep.ttft_vs_concurrency.png", "sweep.html",
    ]
    assert (tmp_path / "sweep.latency_vs_throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert "data:image/png;base64," in (tmp_path / "sweep.html").read_text()


def test_rate_sweep_stops_at_over_saturation():
    """A synthetic server: capacity 10 req/s; beyond it TTFT and queue grow."""

    async def measure(rate: float) -> dict:
        over = max(0.0, rate - 10.0)
        return {
            "completed": 20, "failed": 0, "duration": 20 / min(rate, 10.0), "request_throughput": min(rate, 10.0),
            "median_ttft_ms": 50.0 + 40.0 * over, "mean_client_queue_time_ms": 5.0 * over, "request_goodput": None,
        }

    result = asyncio.run(run_sweep(measure, kind="rate", start=2.0, factor=2.0, max_steps=6, bisect_steps=2))
    assert [p.level for p in result.points if p.phase == "ramp"] == [2.0, 4.0, 8.0, 16.0]
    assert result.saturated_at == 16.0
    assert result.best == 10.0  # bisect (8, 16): 12 fails (throughput 10 < 90% of 12), 10 passes


def test_saturation_needs_both_ttft_and_queue_rising():
    def p(level, ttft, queue):
        return SweepPoint(level, {"median_ttft_ms": ttft, "mean_client_queue_time_ms": queue, "request_throughput": level}, True, 1.0, "ramp")

    assert not is_saturated([p(1, 10, 0), p(2, 30, 0)])  # TTFT up, queue flat
    assert not is_saturated([p(1, 10, 0), p(2, 15, 5)])  # queue up, TTFT not doubled
    assert is_saturated([p(1, 10, 0), p(2, 30, 5)])

"""Arrivals have the right rate and shape; the load loop honours concurrency, warm-up, stop rules."""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from llmctl.bench.client import RequestInput, RequestResult, Target
from llmctl.bench.load import STARVED_SHARE, LoadRun, LoadSpec, arrival_offsets, open_arrivals, run_load


def test_poisson_offsets_mean_rate_and_exponential_gaps():
    offsets = arrival_offsets(4000, rate=20.0, burstiness=1.0, seed=1)
    assert offsets[-1] == pytest.approx(4000 / 20.0)  # vLLM's normalisation
    gaps = np.diff([0.0, *offsets])
    assert gaps.mean() == pytest.approx(1 / 20.0, rel=1e-9)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.08)  # exponential: CV 1


def test_open_schedule_mean_rate_unnormalised():
    gen = open_arrivals(10.0, 1.0, seed=3)
    times = [next(gen) for _ in range(5001)]
    assert 5000 / times[-1] == pytest.approx(10.0, rel=0.05)


def test_gamma_burstiness_changes_spread_not_mean():
    gaps = np.diff([0.0, *arrival_offsets(4000, rate=10.0, burstiness=4.0, seed=2)])
    assert gaps.mean() == pytest.approx(0.1, rel=1e-9)
    assert gaps.std() / gaps.mean() == pytest.approx(0.5, abs=0.05)  # CV = 1/sqrt(shape)


def test_infinite_rate_sends_at_once_and_seed_repeats():
    assert arrival_offsets(3, math.inf) == [0.0, 0.0, 0.0]
    assert arrival_offsets(10, 5.0, seed=9) == arrival_offsets(10, 5.0, seed=9)
    assert arrival_offsets(10, 5.0, seed=9) != arrival_offsets(10, 5.0, seed=8)


class Recorder:
    """A request function that records send times and in-flight count; no network."""

    def __init__(self, service_s: float = 0.0):
        self.service_s, self.sent, self.active, self.max_active = service_s, [], 0, 0

    async def __call__(self, session, target, req):
        start = time.perf_counter()
        self.sent.append(start)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        await asyncio.sleep(self.service_s)
        self.active -= 1
        return RequestResult(success=True, start_time=start, ttft=self.service_s, latency=self.service_s, output_tokens=1)


def _inputs(n: int) -> list[RequestInput]:
    return [RequestInput("p", 1, 1) for _ in range(n)]


def test_measured_send_rate_matches_poisson_rate():
    rec = Recorder()
    run = asyncio.run(run_load(_inputs(100), Target("http://x"), LoadSpec(request_rate=100.0, warmup=0, seed=5), request_func=rec))
    span = rec.sent[-1] - rec.sent[0]
    assert len(run.results) == 100
    assert 99 / span == pytest.approx(100.0, rel=0.15)


def test_concurrency_cap_and_warmup_not_counted():
    rec = Recorder(service_s=0.02)
    seen = []
    run = asyncio.run(run_load(_inputs(12), Target("http://x"), LoadSpec(concurrency=3, warmup=2), request_func=rec, on_result=seen.append))
    assert rec.max_active == 3
    assert len(run.results) == 12 and len(run.warmup) == 2 and len(seen) == 12
    assert max(r.client_queue_time for r in run.results) > 0.02  # later requests waited for a slot


def test_duration_stops_sending():
    rec = Recorder(service_s=0.01)
    t0 = time.perf_counter()
    run = asyncio.run(run_load(_inputs(3), Target("http://x"), LoadSpec(concurrency=2, duration_s=0.3, warmup=0), request_func=rec))
    assert 0.25 < time.perf_counter() - t0 < 1.0
    assert len(run.results) > 3  # prompts reused in turn
    assert not run.interrupted


def test_stop_event_returns_partial_results():
    rec = Recorder(service_s=0.05)

    async def main():
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stop.set)
        return await run_load(_inputs(1000), Target("http://x"), LoadSpec(request_rate=50.0, warmup=0), request_func=rec, stop=stop)

    run = asyncio.run(main())
    assert run.interrupted
    assert 3 <= len(run.results) < 1000


class Spinner(Recorder):
    """A request that keeps the client's CPU busy for `service_s` of wall time (parsing, on a real client)."""

    async def __call__(self, session, target, req):
        start = time.perf_counter()
        while time.perf_counter() - start < self.service_s:
            pass
        return RequestResult(success=True, start_time=start, ttft=self.service_s, latency=self.service_s, output_tokens=1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the run-queue wait is Linux's accounting")
def test_a_client_sharing_its_cpu_with_busy_processes_is_measured_as_starved():
    """The loop's thread pinned to one CPU with two busy processes gets about a third of it: it waits for the
    CPU about two thirds of the run, which the run reports (the bench's starved client, made on purpose)."""
    cpu = min(os.sched_getaffinity(0))
    hog = f"import os; os.sched_setaffinity(0, {{{cpu}}}); print('pinned', flush=True)\nwhile True: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    allowed = os.sched_getaffinity(0)
    try:
        assert [h.stdout.readline().strip() for h in hogs] == ["pinned", "pinned"]
        os.sched_setaffinity(0, {cpu})
        run = asyncio.run(run_load(_inputs(6), Target("http://x"), LoadSpec(concurrency=1, warmup=0),
                                   request_func=Spinner(service_s=0.05)))
    finally:
        os.sched_setaffinity(0, allowed)
        for h in hogs:
            h.kill()
            h.wait()
    assert len(run.results) == 6 and run.starved is True
    assert STARVED_SHARE * run.duration <= run.cpu_wait_s <= run.duration


def test_starved_is_the_cpu_waits_share_of_the_run_and_unknown_without_it():
    assert LoadRun([], duration=2.0, cpu_wait_s=0.5).starved is True
    assert LoadRun([], duration=2.0, cpu_wait_s=0.4).starved is False
    assert LoadRun([], duration=2.0).starved is None

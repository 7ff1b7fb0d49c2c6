"""Arrivals and the load loop: Poisson or gamma arrivals, a concurrency cap, warm-up, stop rules.

Arrivals follow `vllm bench serve`'s `get_request`: gaps drawn from a gamma distribution with
shape `burstiness` and mean 1/rate (burstiness 1 is a Poisson process), and for a fixed number
of prompts the cumulative schedule is rescaled so the last arrival lands at n/rate. A request
that waits for a concurrency slot records that wait as `client_queue_time`; its `start_time` is
when it was actually sent.

The run also records how long the loop's thread was runnable but waiting for a CPU (`cpu_wait_s`).
On a loaded machine (2 shared cores running the engine, its API process and other work) the bench
client can spend most of a run on the run queue: the server streams each token on time, the
kernel buffers them, and the client reads a whole response in one go. Its latencies are then its
own lateness, and only this figure tells that apart from a proxy that buffers the stream.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field

from llmctl.bench.client import RequestFunc, RequestInput, RequestResult, Target, make_session, send_request


def arrival_offsets(n: int, rate: float, burstiness: float = 1.0, seed: int | None = 0) -> list[float]:
    """Send times (seconds from the start) of `n` requests, as vLLM schedules them."""
    import numpy as np

    if burstiness <= 0:
        raise ValueError("burstiness must be positive")
    if n <= 0:
        return []
    if math.isinf(rate):
        return [0.0] * n
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    offsets = np.cumsum(gaps)
    offsets *= (n / rate) / offsets[-1]  # vLLM's normalisation: exactly n/rate in total
    return offsets.tolist()


def open_arrivals(rate: float, burstiness: float = 1.0, seed: int | None = 0) -> Iterator[float]:
    """An endless arrival schedule for `--duration` runs (no normalisation: the end is unknown)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = 0.0
    while True:
        yield t
        if not math.isinf(rate):
            t += float(rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness)))


@dataclass
class LoadSpec:
    request_rate: float = math.inf
    burstiness: float = 1.0
    concurrency: int | None = None
    duration_s: float | None = None  # stop sending after this long (prompts are reused in turn)
    warmup: int = 1
    seed: int = 0


# A client that waited for a CPU this share of the run or more read its streams late: its
# latencies overstate the server's. (Measured on 2 shared cores against the CPU engine: runs whose
# streams came in one read waited 70-99% of the run, runs that streamed about 10%.)
STARVED_SHARE = 0.25


def cpu_wait_s() -> float | None:
    """Seconds the calling thread has been runnable but waiting for a CPU, since it started: Linux's
    scheduler accounting (/proc/thread-self/schedstat, its second field, in ns). None where the
    kernel does not keep it (not Linux, or a kernel without CONFIG_SCHED_INFO)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class LoadRun:
    results: list[RequestResult]
    duration: float  # from the first send to the last completion, as vLLM measures it
    warmup: list[RequestResult] = field(default_factory=list)
    interrupted: bool = False
    cpu_wait_s: float | None = None  # of the loop's thread over `duration`; None: the kernel does not say

    @property
    def starved(self) -> bool | None:
        """The client waited for a CPU for STARVED_SHARE of the run or more (None: unknown)."""
        return None if self.cpu_wait_s is None else self.cpu_wait_s >= STARVED_SHARE * self.duration


async def run_load(
    inputs: Sequence[RequestInput],
    target: Target,
    spec: LoadSpec,
    *,
    request_func: RequestFunc = send_request,
    on_result: Callable[[RequestResult], None] | None = None,
    stop: asyncio.Event | None = None,
    on_start: Callable[[], Awaitable[None]] | None = None,
) -> LoadRun:
    """Warm up (not counted), then send `inputs` on the arrival schedule; `stop` ends it early.

    On `stop`, no new request is sent, in-flight ones are cancelled and not counted, and the
    run is returned as `interrupted` with what completed. `on_start` runs between the warm-up
    and the first timed request (the cross-check's first scrape).
    """
    stop = stop or asyncio.Event()
    session = make_session(spec.concurrency)
    try:
        slots = asyncio.Semaphore(spec.concurrency) if spec.concurrency else None
        warmup = []
        if spec.warmup > 0 and inputs:
            warm = [inputs[i % len(inputs)] for i in range(spec.warmup)]
            warmup = await asyncio.gather(*(_limited(slots, request_func, session, target, r, time.perf_counter()) for r in warm))

        if on_start is not None:
            await on_start()
        if spec.duration_s is not None:
            schedule: Iterator[float] = open_arrivals(spec.request_rate, spec.burstiness, spec.seed)
            prompts: Iterator[RequestInput] = _cycle(inputs)
        else:
            schedule = iter(arrival_offsets(len(inputs), spec.request_rate, spec.burstiness, spec.seed))
            prompts = iter(inputs)

        tasks: list[asyncio.Task] = []

        def done(task: asyncio.Task) -> None:
            if on_result is not None and not task.cancelled() and task.exception() is None:
                on_result(task.result())

        closed_loop = spec.duration_s is not None and slots is not None and math.isinf(spec.request_rate)
        if spec.duration_s is not None and slots is None and math.isinf(spec.request_rate):
            raise ValueError("a --duration run needs a request rate or a concurrency limit")
        begin = time.perf_counter()
        waited_before = cpu_wait_s()
        for offset, req in zip(schedule, prompts):
            if spec.duration_s is not None and offset >= spec.duration_s:
                break
            delay = begin + offset - time.perf_counter()
            if delay > 0 and await _stopped_within(stop, delay):
                break
            if stop.is_set():
                break
            if spec.duration_s is not None and time.perf_counter() - begin >= spec.duration_s:
                break
            if closed_loop:
                # An open-ended `--duration` run with no rate limit: take the slot here, so
                # the loop waits for a free one instead of queueing unbounded tasks.
                left = spec.duration_s - (time.perf_counter() - begin)
                if not await _acquire_within(slots, stop, left):
                    break
                task = asyncio.create_task(_holding(slots, request_func, session, target, req))
            else:
                task = asyncio.create_task(_limited(slots, request_func, session, target, req, time.perf_counter()))
            task.add_done_callback(done)
            tasks.append(task)

        pending = {t for t in tasks if not t.done()}
        while pending and not stop.is_set():
            waiter = asyncio.ensure_future(stop.wait())
            finished, pending = await asyncio.wait(pending | {waiter}, return_when=asyncio.FIRST_COMPLETED)
            pending.discard(waiter)
            waiter.cancel()
        interrupted = stop.is_set()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        results = [t.result() for t in tasks if t.done() and not t.cancelled()]
        if results:
            end = max(r.start_time + (r.latency if r.success else 0.0) for r in results)
            end = max(end, max(r.start_time for r in results))
        else:
            end = time.perf_counter()
        duration = (time.perf_counter() if not interrupted else end) - begin
        waited_after = cpu_wait_s()
        waited = None if waited_before is None or waited_after is None else waited_after - waited_before
        return LoadRun(results=results, duration=max(duration, 1e-9), warmup=list(warmup), interrupted=interrupted,
                       cpu_wait_s=waited)
    finally:
        await session.close()


async def _limited(slots, request_func, session, target, req, arrival: float) -> RequestResult:
    if slots is None:
        result = await request_func(session, target, req)
    else:
        async with slots:
            result = await request_func(session, target, req)
    result.client_queue_time = max(0.0, result.start_time - arrival)
    return result


async def _acquire_within(slots: asyncio.Semaphore, stop: asyncio.Event, seconds: float) -> bool:
    """Take a concurrency slot unless `stop` is set or `seconds` pass first."""
    acquire = asyncio.ensure_future(slots.acquire())
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({acquire, waiter}, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if acquire.done() and not acquire.cancelled():
        if stop.is_set():
            slots.release()
            return False
        return True
    acquire.cancel()
    return False


async def _holding(slots, request_func, session, target, req) -> RequestResult:
    try:
        return await request_func(session, target, req)
    finally:
        slots.release()


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep until the next arrival in short slices, so Ctrl-C is seen within 0.2 s."""
    deadline = time.perf_counter() + seconds
    while not stop.is_set():
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, 0.2))
    return True


def _cycle(inputs: Sequence[RequestInput]) -> Iterator[RequestInput]:
    while True:
        yield from inputs

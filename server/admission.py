"""Backpressure: at most N requests in flight and M waiting; beyond that a 429 with Retry-After."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from server import metrics
from server.errors import ApiError


class Admission:
    def __init__(self, max_concurrent: int, max_queued: int, retry_after_s: int):
        self._slots = asyncio.Semaphore(max_concurrent)
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.retry_after_s = retry_after_s
        self.active = 0
        self.waiting = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def acquire(self):
        """Wait for an in-flight slot (or 429 when the queue is full); return an idempotent release."""
        if self._slots.locked() and self.waiting >= self.max_queued:
            raise ApiError(
                429,
                f"server is at capacity ({self.active} in flight, {self.waiting} queued); retry later",
                type="rate_limit_error",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.waiting += 1
        metrics.QUEUED.set(self.waiting)
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
            metrics.QUEUED.set(self.waiting)
        self.active += 1
        self.idle.clear()
        metrics.ACTIVE.set(self.active)
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self.active -= 1
            metrics.ACTIVE.set(self.active)
            self._slots.release()
            if self.active == 0 and self.waiting == 0:
                self.idle.set()

        return release

    @asynccontextmanager
    async def slot(self):
        """Hold one in-flight slot for the body of the `async with`."""
        release = await self.acquire()
        try:
            yield
        finally:
            release()

    async def wait_idle(self, timeout: float) -> bool:
        """True when nothing is in flight or queued within `timeout` seconds (used by the drain)."""
        if self.active == 0 and self.waiting == 0:
            return True
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

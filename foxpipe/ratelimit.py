"""A process-wide sliding-window rate limiter with a concurrency cap and round-robin
fairness between jobs.

``WindowScheduler`` is the pure decision logic, driven by an explicit clock, so it is
tested without sleeping. ``RateLimiter`` wraps it for asyncio: a request starts the moment
the window, the concurrency cap and any Retry-After pause all allow it. No batches, no
fixed sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any

log = logging.getLogger(__name__)


class WindowScheduler:
    def __init__(self, rate: float, max_concurrent: int, period: float = 60.0):
        self.max_concurrent = max(1, int(max_concurrent))
        self.base_period = period
        self.set_rate(rate)
        self.starts: deque[float] = deque()
        self.in_flight = 0
        self.paused_until = 0.0
        self.queues: dict[Hashable, deque[Any]] = {}
        self.order: deque[Hashable] = deque()  # round-robin order of jobs with waiters

    def set_rate(self, rate: float) -> None:
        """``rate`` requests per ``base_period``. A fractional rate stretches the window:
        0.5/min allows 1 start per 120 s."""
        rate = max(rate, 1e-6)
        self.rate = rate
        self.capacity = max(1, math.floor(rate))
        self.period = self.base_period * self.capacity / rate

    # -- queue
    def enqueue(self, key: Hashable, token: Any) -> None:
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = deque()
            self.order.append(key)
        q.append(token)

    def remove(self, key: Hashable, token: Any) -> bool:
        q = self.queues.get(key)
        if not q or token not in q:
            return False
        q.remove(token)
        if not q:
            del self.queues[key]
            self.order.remove(key)
        return True

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # -- decisions
    def _prune(self, now: float) -> None:
        while self.starts and self.starts[0] <= now - self.period:
            self.starts.popleft()

    def poll(self, now: float) -> tuple[list[tuple[Hashable, Any]], float | None]:
        """Grant every request allowed at ``now``; return them and when to look again."""
        self._prune(now)
        granted: list[tuple[Hashable, Any]] = []
        while (
            self.order
            and self.in_flight < self.max_concurrent
            and len(self.starts) < self.capacity
            and now >= self.paused_until
        ):
            key = self.order[0]
            q = self.queues[key]
            token = q.popleft()
            if q:
                self.order.rotate(-1)
            else:
                self.order.popleft()
                del self.queues[key]
            self.starts.append(now)
            self.in_flight += 1
            granted.append((key, token))
        return granted, self.next_wake(now)

    def next_wake(self, now: float) -> float | None:
        if not self.order or self.in_flight >= self.max_concurrent:
            return None  # a release will wake us
        wake = now
        if now < self.paused_until:
            wake = self.paused_until
        if len(self.starts) >= self.capacity:
            wake = max(wake, self.starts[0] + self.period)
        return wake if wake > now else None

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def pause_until(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def hint(self, now: float, remaining: float | None, reset_seconds: float | None) -> None:
        """Use x-ratelimit-* headers as hints: nothing left means wait for the reset."""
        if remaining is not None and remaining <= 0 and reset_seconds:
            self.pause_until(now + reset_seconds)


class RateLimiter:
    """Asyncio front of ``WindowScheduler``. Lives on one event loop (the worker's)."""

    def __init__(
        self,
        rate: float,
        max_concurrent: int,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sched = WindowScheduler(rate, max_concurrent, period)
        self.clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self.total_started = 0
        self.pauses = 0

    @property
    def in_flight(self) -> int:
        return self.sched.in_flight

    @property
    def waiting(self) -> int:
        return self.sched.waiting

    def _pump(self) -> None:
        now = self.clock()
        while True:
            granted, wake = self.sched.poll(now)
            gave_back = False
            for _key, fut in granted:
                if fut.done():  # cancelled while waiting: give the start back
                    self.sched.release()
                    self.sched.starts.pop()
                    gave_back = True
                    continue
                self.total_started += 1
                fut.set_result(None)
            if not gave_back:
                break
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wake is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, wake - now), self._pump)

    async def acquire(self, key: Hashable) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sched.enqueue(key, fut)
        self._pump()
        try:
            await fut
        except asyncio.CancelledError:
            if not self.sched.remove(key, fut) and fut.done() and not fut.cancelled():
                self.release()  # granted just as we were cancelled
            raise

    def release(self) -> None:
        self.sched.release()
        self._pump()

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[None]:
        await self.acquire(key)
        try:
            yield
        finally:
            self.release()

    def pause_for(self, seconds: float) -> None:
        """A 429 with Retry-After pauses every job until then."""
        if seconds and seconds > 0:
            self.pauses += 1
            log.info("[RATE] pausing all image requests for %.1fs", seconds)
            self.sched.pause_until(self.clock() + seconds)

    def hint(self, remaining: float | None, reset_seconds: float | None) -> None:
        self.sched.hint(self.clock(), remaining, reset_seconds)

    def set_rate(self, rate: float) -> None:
        self.sched.set_rate(rate)


def lower_bound(n: int, rate: float, latency: float, period: float = 60.0, max_concurrent: int = 10**9) -> float:
    """The best possible makespan for n requests: when the last may start, plus its latency."""
    s = WindowScheduler(rate, max_concurrent, period)
    now, started, running = 0.0, 0, []
    for i in range(n):
        s.enqueue("j", i)
    while started < n:
        running = [t for t in running if t > now]
        s.in_flight = len(running)
        granted, wake = s.poll(now)
        for _ in granted:
            running.append(now + latency)
        started += len(granted)
        if started >= n:
            break
        nxt = [w for w in ([wake] if wake else []) + running if w > now]
        now = min(nxt)
    return now + latency


def job_deadline(n: int, rate: float, timeout: float, queued_ahead: int = 0, margin: float = 60.0) -> float:
    """Seconds a job of n images may take: its place in the shared queue at R/min, one
    request timeout for the last image, and a margin for retries."""
    return (queued_ahead + n) / max(rate, 1e-6) * 60.0 + timeout + margin

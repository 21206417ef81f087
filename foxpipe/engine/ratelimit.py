"""A process-wide sliding-window rate limiter with a concurrency cap and round-robin
fairness between jobs.

``WindowScheduler`` is the pure decision logic, driven by an explicit clock, so it is
tested without sleeping. ``RateLimiter`` wraps it for asyncio: a request starts the moment
the window, the concurrency cap and any Retry-After pause all allow it. No batches, no
fixed sleeps.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

log = logging.getLogger(__name__)

# Guard added to every window: what may pass between the moment the request is handed to the
# network (the stamp) and its arrival at the server, on a loaded machine.
SEND_GUARD_SECONDS = 0.5

# ------------------------------------------------------------------ the send stamp
# A request is counted in the window from the moment the HTTP client hands it to the network
# (the provider's request hook calls ``mark_sent``), not from when the limiter let it go: on a
# loaded machine the event loop may take a second to get there, and the server counts arrivals.
_ON_SEND: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "foxpipe_on_send", default=None
)


def mark_sent() -> None:
    """Called by a provider right before the request's bytes leave (an httpx request hook):
    restamps the running request's place in the window to now."""
    fn = _ON_SEND.get()
    if fn is not None:
        fn()


# Set by ``RateLimiter.slot`` for the request it holds: ``sending`` marks it as really sent, so
# a probe that was granted but never sent (a stopped scene) proves nothing.
_SLOT_SENT: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "foxpipe_slot_sent", default=None
)


@contextmanager
def sending(limiter: RateLimiter, stamp: float) -> Iterator[list[float]]:
    """While the block runs, ``mark_sent`` moves the request granted at ``stamp`` to the
    moment it is really sent (every retry of the HTTP client included). Yields a one-item
    list holding the stamp as it is now."""
    box = [stamp]
    if (was_sent := _SLOT_SENT.get()) is not None:
        was_sent[0] = True

    def restamp() -> None:
        box[0] = limiter.sent(box[0])

    restamp()  # a provider without a hook is still counted from here
    token = _ON_SEND.set(restamp)
    try:
        yield box
    finally:
        _ON_SEND.reset(token)


class WindowScheduler:
    def __init__(self, rate: float, max_concurrent: int, period: float = 60.0, guard: float = 0.0):
        self.max_concurrent = max(1, int(max_concurrent))
        self.base_period = period
        self.guard = max(0.0, guard)  # added to the window, so arrival jitter never makes R+1
        self.set_rate(rate)
        self.starts: deque[float] = deque()
        self.in_flight = 0
        self.paused_until = 0.0
        self.queues: dict[Hashable, deque[Any]] = {}
        self.order: deque[Hashable] = deque()  # round-robin order of jobs with waiters
        # Probing a rate nobody has confirmed (see ``probe_from``): the most starts in one
        # window the server accepted (None: the setting is trusted as it is, no probing),
        # the token of the one request sent beyond it, and how many starts the window held
        # when that request went.
        self.proven: int | None = None
        self.probe: Any = None
        self.probe_count = 0

    def probe_from(self, free: int) -> None:
        """Trust the setting only as far as the server has shown it: the first ``free``
        starts of a window go freely (a burst the concurrency cap allows anyway); beyond
        the most starts ever accepted in one window, requests go one at a time, each sent
        only when the one before it came back. A setting above the account's real limit
        then costs one refused request, however slowly the refusal arrives, instead of
        every request started while it was on its way. Each accepted probe raises the
        proven count, so a right setting reaches its full rate within the first window."""
        self.proven = max(0, int(free))

    def prove(self, count: int) -> None:
        """The server has shown it accepts ``count`` starts per window (its rate headers,
        a rate learned from its 429s): no probing up to there."""
        if self.proven is not None:
            self.proven = max(self.proven, int(count))

    def end_probe(self, token: Any, accepted: bool) -> None:
        if self.probe is None or token is not self.probe:
            return
        self.probe = None
        if accepted:
            self.prove(self.probe_count)

    def set_rate(self, rate: float) -> None:
        """``rate`` requests per ``base_period``, as a window of ``capacity`` starts per
        ``period``. A whole or fractional rate of at least 1 rounds down (7.5/min allows 7
        per minute: a shorter window would let a burst straddle two of the server's
        minutes). Below 1 the window stretches: 0.5/min allows 1 start per 120 s."""
        rate = max(rate, 1e-6)
        self.rate = rate
        if rate >= 1:
            self.capacity = math.floor(rate)
            self.period = self.base_period
        else:
            self.capacity = 1
            self.period = self.base_period / rate

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
    @property
    def window(self) -> float:
        return self.period + self.guard

    def _prune(self, now: float) -> None:
        # Same expression as next_wake's (start + window), so waking at that instant always
        # frees the place: ``now - window`` may round differently and stall the queue.
        while self.starts and self.starts[0] + self.window <= now:
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
            beyond = self.proven is not None and len(self.starts) >= self.proven
            if beyond and self.probe is not None:
                break  # a probe is on its way: wait for its answer (a release wakes us)
            key = self.order[0]
            q = self.queues[key]
            token = q.popleft()
            if beyond:
                self.probe, self.probe_count = token, len(self.starts) + 1
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
        if self.probe is not None and self.proven is not None:
            # A probe is on its way: the next start waits for its answer (a release wakes
            # us) or for the window to fall below the proven count.
            self._prune(now)
            leave = len(self.starts) - self.proven + 1  # starts that must leave the window
            if leave > 0:
                if self.proven == 0 or leave > len(self.starts):
                    return None
                return max(now, self.paused_until, self.starts[leave - 1] + self.window)
        wake = now
        if now < self.paused_until:
            wake = self.paused_until
        if len(self.starts) >= self.capacity:
            wake = max(wake, self.starts[0] + self.window)
        return wake if wake > now else None

    def release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    def pause_until(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)

    def hint(
        self,
        now: float,
        remaining: float | None,
        reset_seconds: float | None,
        limit: float | None = None,
    ) -> None:
        """Use x-ratelimit-* headers as hints. A lower limit than configured is adopted (a
        higher one is not: 429 + Retry-After stays authoritative); nothing remaining means
        wait for the reset."""
        if limit is not None and 0 < limit < self.rate:
            log.info(
                "[RATE] the server reports %g requests per window; lowering from %g",
                limit,
                self.rate,
            )
            self.set_rate(limit)
        if limit is not None and limit >= 1:
            self.prove(math.floor(limit))  # the server said how many it takes: no probing
        if remaining is not None and remaining <= 0 and reset_seconds and reset_seconds > 0:
            self.pause_until(now + reset_seconds)

    def grant_time(self, n: int, now: float) -> float:
        """When the n-th next start (n >= 1) could happen at the earliest, given the starts
        already in the window and any pause (ignoring the concurrency cap)."""
        starts = [t for t in list(self.starts) if t + self.window > now]  # list(): atomic copy
        t = max(now, self.paused_until)
        for _ in range(max(0, n)):
            t = max(now, self.paused_until)
            if len(starts) >= self.capacity:
                t = max(t, starts[-self.capacity] + self.window)
            starts.append(t)
        return t


class RateLimiter:
    """Asyncio front of ``WindowScheduler``. Lives on one event loop (the worker's); the
    read-only figures (``in_flight``, ``waiting``, ``estimate_wait``) may be read from
    other threads."""

    def __init__(
        self,
        rate: float,
        max_concurrent: int,
        period: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        guard: float = 0.0,
    ):
        self.sched = WindowScheduler(rate, max_concurrent, period, guard)
        self.clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.total_started = 0
        self.started_by_key: dict[Hashable, int] = {}
        self.pauses = 0
        self._refused: deque[float] = deque()  # send stamps of requests refused with a 429

    @property
    def rate(self) -> float:
        return self.sched.rate

    @property
    def period(self) -> float:
        """The window in seconds that ``rate`` is counted over (60 unless scaled)."""
        return self.sched.base_period

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
            for key, fut in granted:
                if fut.done():  # cancelled while waiting: give the start back
                    self.sched.release()
                    self.sched.starts.pop()
                    self.sched.end_probe(fut, accepted=False)
                    gave_back = True
                    continue
                self.total_started += 1
                self.started_by_key[key] = self.started_by_key.get(key, 0) + 1
                fut.set_result(now)
            if not gave_back:
                break
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wake is not None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(max(0.0, wake - now), self._pump)

    async def acquire(self, key: Hashable) -> float:
        """Wait for this key's turn, a free start in the window and a free in-flight place.
        Returns the start's time stamp (see ``sent``)."""
        return (await self._acquire(key))[0]

    async def _acquire(self, key: Hashable) -> tuple[float, asyncio.Future[float]]:
        self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = self._loop.create_future()
        self.sched.enqueue(key, fut)
        self._pump()
        try:
            return await fut, fut
        except asyncio.CancelledError:
            if not self.sched.remove(key, fut) and fut.done() and not fut.cancelled():
                self.sched.end_probe(fut, accepted=False)
                self.release()  # granted just as we were cancelled
            raise

    def sent(self, stamp: float) -> float:
        """The request granted at ``stamp`` is being sent now: count it in the window from
        now. Requests granted together are sent one after another, and the server counts
        them when they arrive; counting from the grant would let the next window start a
        little early for the last of them. Returns the new stamp."""
        now = self.clock()
        if now > stamp:
            try:
                self.sched.starts.remove(stamp)
            except ValueError:  # already out of the window
                return stamp
            self.sched.starts.append(now)  # every stamp is <= now: the window stays sorted
            return now
        return stamp

    def release(self) -> None:
        self.sched.release()
        self._pump()

    @asynccontextmanager
    async def slot(self, key: Hashable) -> AsyncIterator[float]:
        """One request's place: granted on entry, given back on exit. A request sent as a
        probe (``probe_from``) proves the window's count only when it was really sent
        (``sending``) and its block ended normally with no 429 meanwhile: a refusal that
        escapes the block, a cancelled or never sent request prove nothing."""
        stamp, fut = await self._acquire(key)
        refusals = self.refusals
        was_sent = [False]
        token = _SLOT_SENT.set(was_sent)
        ended = False
        try:
            yield stamp
            ended = True
        finally:
            _SLOT_SENT.reset(token)
            self.sched.end_probe(fut, accepted=ended and was_sent[0] and self.refusals == refusals)
            self.release()

    def probe_from(self, free: int) -> None:
        """See ``WindowScheduler.probe_from``: for an account whose limit is not known yet."""
        self.sched.probe_from(free)

    refusals = 0  # 429s seen (``rejected``)

    def pause_for(self, seconds: float) -> None:
        """A 429 with Retry-After pauses every job until then."""
        if seconds and seconds > 0:
            self.pauses += 1
            log.info("[RATE] pausing all image requests for %.1fs", seconds)
            self.sched.pause_until(self.clock() + seconds)
            self._rearm()

    def rejected(self, retry_after: float | None, stamp: float | None = None) -> None:
        """The server refused a request this limiter let through (429 rate_limit_exceeded).

        When fewer requests than our limit had gone out in the window before it (``stamp``,
        when it was sent), the account allows fewer than configured: adopt that many per
        window (``learned_rate``, reported through ``on_learned``). Otherwise its clock or
        the network put that request inside the previous window: widen the guard by how
        early it was (the Retry-After), up to 1/20 of the window. Either way, pause everyone
        until the server has room."""
        self.refusals += 1
        if stamp is not None:
            self._learn(stamp, retry_after)
        if retry_after and retry_after > 0:
            cap = self.sched.period / 20
            if self.sched.guard < cap:
                self.sched.guard = min(cap, self.sched.guard + retry_after)
                log.info(
                    "[RATE] the server refused a request: guard now %.2fs per window",
                    self.sched.guard,
                )
            self.pause_for(retry_after)

    # -- the rate the account really allows, learned from its 429s
    learned_rate: float | None = None
    on_learned: Callable[[float], None] | None = None

    def _learn(self, stamp: float, retry_after: float | None) -> None:
        """Requests the server accepted in the window before the refused one = its limit.

        Only when the 429 looks like a full window of ours: its Retry-After must roughly match
        when the oldest of those requests leaves the window. A 429 for other reasons (a storm,
        another app on the account, a short Retry-After) teaches nothing."""
        window = self.sched.period
        refused_before = [t for t in self._refused if stamp - window <= t < stamp]
        ours = [t for t in list(self.sched.starts) if stamp - window <= t < stamp]
        self._refused.append(stamp)
        while self._refused and self._refused[0] < stamp - 2 * window:
            self._refused.popleft()
        accepted = [t for t in ours if t not in refused_before]
        if not accepted or retry_after is None:
            return
        expected = accepted[0] + window - self.clock()  # when the oldest accepted one leaves
        if retry_after < expected / 2 - 1.0:
            return
        if len(accepted) < self.sched.capacity and self.sched.rate >= 1:
            accepted_n = len(accepted)
            allowed = float(accepted_n) * self.sched.base_period / self.sched.period
            log.warning(
                "[RATE] the account allows about %g requests per window, not %g: lowering the limit",
                allowed,
                self.sched.rate,
            )
            self.learned_rate = allowed
            self.sched.set_rate(allowed)
            self.sched.prove(self.sched.capacity)
            if self.on_learned is not None:
                try:
                    self.on_learned(allowed)
                except Exception as e:  # remembering it is a nicety; the lower rate applies now
                    log.warning("[RATE] the learned rate could not be stored: %s", type(e).__name__)

    def adopt(self, rate: float) -> None:
        """Start at a rate learned earlier (the store remembered it across a restart)."""
        if 0 < rate < self.sched.rate:
            self.learned_rate = rate
            self.set_rate(rate)
            self.sched.prove(self.sched.capacity)

    def hint(
        self,
        remaining: float | None,
        reset_seconds: float | None,
        limit: float | None = None,
        age: float = 0.0,
    ) -> None:
        """x-ratelimit-* figures from a response. They describe the window when the server
        received the request, ``age`` seconds ago (the request's duration), so the reset
        counts from then, not from when the image came back."""
        self.sched.hint(self.clock() - max(0.0, age), remaining, reset_seconds, limit)
        self._rearm()

    def set_rate(self, rate: float) -> None:
        self.sched.set_rate(rate)
        self._rearm()

    def _rearm(self) -> None:
        """Re-plan the next wake-up after the rules changed (only from the loop's thread)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop is self._loop:
            self._pump()

    def estimate_wait(self, grants: int) -> float:
        """Seconds from now until ``grants`` more requests could have started."""
        if grants <= 0:
            return 0.0
        now = self.clock()
        return max(0.0, self.sched.grant_time(grants, now) - now)


def lower_bound(
    n: int, rate: float, latency: float, period: float = 60.0, max_concurrent: int = 10**9
) -> float:
    """The best possible makespan for n requests of ``latency`` seconds each, started at
    time 0 through the same window rules: when the last may start, plus its latency."""
    if n <= 0:
        return 0.0
    s = WindowScheduler(rate, max_concurrent, period)
    now, started = 0.0, 0
    running: list[float] = []
    for i in range(n):
        s.enqueue("j", i)
    while True:
        running = [t for t in running if t > now]
        s.in_flight = len(running)
        granted, wake = s.poll(now)
        running += [now + latency] * len(granted)
        started += len(granted)
        if started >= n:
            return now + latency
        now = min(w for w in ([wake] if wake else []) + running if w > now)


def job_deadline(
    n: int,
    rate: float,
    timeout: float,
    queued_ahead: int = 0,
    period: float = 60.0,
    retries: int = 3,
    wait: float = 0.0,
) -> float:
    """Seconds a job of n images may take before its unfinished images are failed.

    Its images and those queued ahead of it start at ``rate`` per ``period`` (after
    ``wait``, the time until the window or a pause frees up); a quarter more starts are
    allowed for retries (bounded by the retries per image), then one request timeout for
    the last image and one more window as a margin."""
    extra = min(n * retries, math.ceil(n / 4)) if retries else 0
    starts = queued_ahead + n + extra
    s = WindowScheduler(rate, 1, period)
    return wait + math.ceil(starts / s.capacity) * s.period + timeout + period

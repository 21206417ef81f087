"""The limiter on a fake clock: the pure WindowScheduler driven by a discrete-event
simulation, and the asyncio RateLimiter on a virtual-time loop. No test sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxpipe.engine.ratelimit import (
    RateLimiter,
    WindowScheduler,
    job_deadline,
    lower_bound,
    sending,
)
from tests.virtualclock import run_virtual


def max_in_window(times: list[float], window: float) -> int:
    """The most starts inside any half-open window [t, t + window)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] + window <= t:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def simulate(
    sched: WindowScheduler,
    arrivals: list[tuple[float, str]],
    latency: float | list[float] = 1.0,
    pauses: list[tuple[float, float]] = (),
) -> list[tuple[float, str, int]]:
    """Drive the scheduler on a fake clock. Returns every grant as (time, key, request no.)
    and checks after each decision that nothing allowed was left waiting."""
    events: list[tuple[float, int, str, object]] = []
    seq = itertools.count()
    for i, (t, key) in enumerate(arrivals):
        heapq.heappush(events, (t, next(seq), "arrive", (key, i)))
    for at, seconds in pauses:
        heapq.heappush(events, (at, next(seq), "pause", seconds))
    lat = itertools.cycle(latency if isinstance(latency, list) else [latency])
    grants: list[tuple[float, str, int]] = []
    wake: float | None = None
    while events or wake is not None:
        if events and (wake is None or events[0][0] <= wake):
            now, _, kind, data = heapq.heappop(events)
            if kind == "arrive":
                sched.enqueue(*data)
            elif kind == "done":
                sched.release()
            elif kind == "pause":
                sched.pause_until(now + data)
        else:
            now, wake = wake, None
        granted, wake = sched.poll(now)
        for key, i in granted:
            grants.append((now, key, i))
            heapq.heappush(events, (now + next(lat), next(seq), "done", None))
        assert sched.in_flight <= sched.max_concurrent
        # Work-conserving: a request waits only for the cap, the window or a pause.
        blocked = (
            sched.in_flight >= sched.max_concurrent
            or len(sched.starts) >= sched.capacity
            or now < sched.paused_until
        )
        assert not sched.order or blocked
    return grants


arrivals_strategy = st.lists(
    st.tuples(st.floats(0, 300, allow_nan=False), st.sampled_from("abc")), min_size=1, max_size=60
)


@settings(max_examples=150, deadline=None)
@given(
    arrivals=arrivals_strategy,
    rate=st.sampled_from([0.5, 1, 2.5, 5, 7.5, 15, 50]),
    cap=st.integers(1, 12),
    latencies=st.lists(st.floats(0.01, 200, allow_nan=False), min_size=1, max_size=7),
)
def test_window_and_cap_are_never_exceeded(arrivals, rate, cap, latencies):
    sched = WindowScheduler(rate, cap, period=60.0)
    grants = simulate(sched, sorted(arrivals), latencies)
    times = [t for t, _, _ in grants]
    assert len(grants) == len(arrivals)  # every request is served
    assert sorted(i for _, _, i in grants) == list(range(len(arrivals)))
    # Never more than R starts in any 60 s window (R rounded down; below 1 per minute,
    # never more than one start per 60 / R seconds).
    allowed_per_minute = math.floor(rate) if rate >= 1 else 1
    assert max_in_window(times, 60.0) <= allowed_per_minute
    if rate < 1:
        assert max_in_window(times, 60.0 / rate) <= 1
    # And each request starts no earlier than it arrived.
    arrival_time = {i: t for i, (t, _) in enumerate(sorted(arrivals))}
    assert all(t >= arrival_time[i] for t, _, i in grants)


def test_requests_start_the_moment_the_window_allows():
    """No batches and no fixed sleeps: 20 requests at 5/min start 5 at 0, 60, 120, 180."""
    sched = WindowScheduler(5, 10, period=60.0)
    grants = simulate(sched, [(0.0, "a")] * 20, latency=2.0)
    assert [t for t, _, _ in grants] == [0.0] * 5 + [60.0] * 5 + [120.0] * 5 + [180.0] * 5


def test_concurrency_cap_starts_the_next_on_release():
    sched = WindowScheduler(100, 3, period=60.0)
    grants = simulate(sched, [(0.0, "a")] * 7, latency=10.0)
    assert [t for t, _, _ in grants] == [0, 0, 0, 10, 10, 10, 20]


def test_fractional_rates():
    assert (WindowScheduler(7.5, 10).capacity, WindowScheduler(7.5, 10).period) == (7, 60.0)
    slow = WindowScheduler(0.5, 10)
    grants = simulate(slow, [(0.0, "a")] * 3)
    assert [t for t, _, _ in grants] == [0.0, 120.0, 240.0]


def test_guard_widens_the_window():
    sched = WindowScheduler(2, 10, period=60.0, guard=0.5)
    grants = simulate(sched, [(0.0, "a")] * 3)
    assert [t for t, _, _ in grants] == [0.0, 0.0, 60.5]


def test_round_robin_between_jobs():
    """A regeneration is not starved by another job's 20 new images."""
    sched = WindowScheduler(5, 10, period=60.0)
    arrivals = [(0.0, "big")] * 20 + [(1.0, "regen")]
    grants = simulate(sched, arrivals, latency=2.0)
    regen = next(t for t, key, _ in grants if key == "regen")
    assert regen == 60.0  # the very next start after it arrived
    assert sum(1 for t, key, _ in grants if key == "big" and t <= 60.0) == 9


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), jobs=st.integers(2, 4), rate=st.sampled_from([1, 3, 5, 15]))
def test_equal_jobs_share_within_one_image(n, jobs, rate):
    sched = WindowScheduler(rate, 10, period=60.0)
    arrivals = [(0.0, k) for _ in range(n) for k in "abcd"[:jobs]]
    grants = simulate(sched, arrivals, latency=5.0)
    counts = dict.fromkeys("abcd"[:jobs], 0)
    for _, key, _ in grants:
        counts[key] += 1
        assert max(counts.values()) - min(counts.values()) <= 1


def test_pause_holds_every_job_until_it_ends():
    sched = WindowScheduler(100, 10, period=60.0)
    grants = simulate(sched, [(0.0, "a"), (5.0, "b"), (6.0, "a")], pauses=[(1.0, 30.0)])
    assert [t for t, _, _ in grants] == [0.0, 31.0, 31.0]


def test_hints_tune_the_window():
    sched = WindowScheduler(50, 10, period=60.0)
    sched.hint(0.0, remaining=3, reset_seconds=10.0)
    assert sched.paused_until == 0.0  # places left: nothing to do
    sched.hint(0.0, remaining=0, reset_seconds=10.0)
    assert sched.paused_until == 10.0
    sched.hint(0.0, remaining=None, reset_seconds=None, limit=80)
    assert sched.rate == 50  # a higher limit is not trusted
    sched.hint(0.0, remaining=None, reset_seconds=None, limit=20)
    assert (sched.rate, sched.capacity) == (20, 20)


def test_grant_time_matches_the_schedule():
    sched = WindowScheduler(5, 100, period=60.0)
    grants = simulate(sched, [(0.0, "a")] * 7)  # leaves 5 starts at 0 and 2 at 60 in the window
    assert [t for t, _, _ in grants][-2:] == [60.0, 60.0]
    # At t=70, three more can start now (window of [60, 120) has 2), the 4th at 120.
    assert sched.grant_time(3, 70.0) == 70.0
    assert sched.grant_time(4, 70.0) == 120.0
    assert sched.grant_time(9, 70.0) == 180.0
    sched.pause_until(100.0)
    assert sched.grant_time(1, 70.0) == 100.0


def test_lower_bound():
    assert lower_bound(20, 15, 60) == 120  # the example: 15 at 0, 5 at 60, + 60 s
    assert lower_bound(20, 5, 2) == 182
    assert lower_bound(20, 50, 6) == 6
    assert lower_bound(20, 50, 6, max_concurrent=10) == 12
    assert lower_bound(60, 5, 6, period=3.0) == pytest.approx(11 * 3 + 6)
    assert lower_bound(0, 5, 6) == 0


def test_job_deadline_covers_the_queue_and_scales_with_the_window():
    alone = job_deadline(20, 5, timeout=180)
    assert alone > lower_bound(20, 5, 180)
    behind = job_deadline(20, 5, timeout=180, queued_ahead=40)
    assert behind >= lower_bound(60, 5, 180)
    # Faster accounts get shorter deadlines: computed, not a fixed 10 minutes.
    assert job_deadline(20, 50, timeout=180) < alone
    assert job_deadline(20, 5, timeout=9, period=3.0) == pytest.approx(alone / 20)


# --------------------------------------------------------------------- asyncio front


def virtual_limiter(rate: float, cap: int, period: float = 60.0) -> RateLimiter:
    return RateLimiter(rate, cap, period=period, clock=asyncio.get_running_loop().time)


async def worker(lim: RateLimiter, key: str, log: list, latency: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    async with lim.slot(key):
        log.append((loop.time(), key))
        await asyncio.sleep(latency)


def test_limiter_rate_and_cap_on_virtual_time():
    async def main():
        lim = virtual_limiter(5, 3)
        log: list = []
        peak = 0

        async def watched(key: str):
            nonlocal peak
            async with lim.slot(key):
                peak = max(peak, lim.in_flight)
                log.append((asyncio.get_running_loop().time(), key))
                await asyncio.sleep(20)

        await asyncio.gather(*(watched("a") for _ in range(12)))
        return log, peak, lim

    log, peak, lim = run_virtual(main())
    times = [t for t, _ in log]
    assert peak == 3
    assert max_in_window(times, 60.0) <= 5
    assert times[:3] == [0, 0, 0] and times[3:5] == [20, 20]  # cap, then the window
    assert lim.in_flight == 0 and lim.waiting == 0 and lim.total_started == 12


def test_retry_after_pauses_everyone():
    async def main():
        lim = virtual_limiter(100, 10)
        log: list = []
        loop = asyncio.get_running_loop()
        first = asyncio.create_task(worker(lim, "a", log))
        await asyncio.sleep(0.5)
        lim.pause_for(30.0)  # a 429 said: retry after 30 s
        others = [asyncio.create_task(worker(lim, k, log)) for k in ("a", "b", "c")]
        await asyncio.gather(first, *others)
        return log, loop.time(), lim.pauses

    log, end, pauses = run_virtual(main())
    assert log[0][0] == 0.0
    assert all(t == pytest.approx(30.5) for t, _ in log[1:])
    assert pauses == 1


def test_hint_with_nothing_remaining_pauses():
    async def main():
        lim = virtual_limiter(100, 10)
        log: list = []
        lim.hint(remaining=0, reset_seconds=12.0)
        await asyncio.gather(worker(lim, "a", log), worker(lim, "b", log))
        return log

    assert [t for t, _ in run_virtual(main())] == [12.0, 12.0]


def test_cancelled_waiters_free_their_place():
    async def main():
        lim = virtual_limiter(2, 10)
        log: list = []
        tasks = [asyncio.create_task(worker(lim, k, log, latency=5)) for k in "aabbb"]
        await asyncio.sleep(1)  # both a started at 0 (first come); the b wait for the next window
        assert lim.waiting == 3
        tasks[2].cancel()  # a queued request: Stop
        await asyncio.sleep(0)
        assert lim.waiting == 2
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return log, results, lim

    log, results, lim = run_virtual(main())
    assert isinstance(results[2], asyncio.CancelledError)
    assert log == [
        (0.0, "a"),
        (0.0, "a"),
        (60.0, "b"),
        (60.0, "b"),
    ]  # the cancelled one took no start
    assert lim.in_flight == 0 and lim.waiting == 0 and lim.total_started == 4


def test_cancelled_in_flight_releases_its_place():
    async def main():
        lim = virtual_limiter(100, 1)
        log: list = []
        hog = asyncio.create_task(worker(lim, "a", log, latency=1000))
        nxt = asyncio.create_task(worker(lim, "b", log, latency=1))
        await asyncio.sleep(5)
        assert lim.in_flight == 1 and lim.waiting == 1
        hog.cancel()
        await asyncio.gather(hog, nxt, return_exceptions=True)
        return log, lim

    log, lim = run_virtual(main())
    assert log == [(0.0, "a"), (5.0, "b")]
    assert lim.in_flight == 0


def test_cancel_after_grant_before_resuming_gives_the_place_back():
    async def main():
        lim = virtual_limiter(100, 1)
        holder = asyncio.create_task(lim.acquire("a"))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(lim.acquire("b"))
        await asyncio.sleep(0)
        await holder
        lim.release()  # grants b's future
        waiter.cancel()  # ... but b is cancelled before it runs
        await asyncio.gather(waiter, return_exceptions=True)
        return lim

    lim = run_virtual(main())
    assert lim.in_flight == 0


def test_round_robin_on_the_asyncio_front():
    async def main():
        lim = virtual_limiter(3, 10)
        log: list = []
        big = [asyncio.create_task(worker(lim, "big", log)) for _ in range(9)]
        await asyncio.sleep(1)
        small = asyncio.create_task(worker(lim, "small", log))
        await asyncio.gather(*big, small)
        return log, lim

    log, lim = run_virtual(main())
    small_at = next(t for t, k in log if k == "small")
    assert small_at == 60.0
    assert lim.started_by_key == {"big": 9, "small": 1}


def test_estimate_wait_reads_the_window():
    async def main():
        lim = virtual_limiter(5, 10)
        log: list = []
        await asyncio.gather(*(worker(lim, "a", log) for _ in range(5)))  # window full at 0
        return lim.estimate_wait(1), lim.estimate_wait(6)

    first, sixth = run_virtual(main())
    assert first == pytest.approx(59.0)  # the loop is at t=1 when the 5 finish
    assert sixth == pytest.approx(119.0)


def test_window_counts_a_request_from_when_it_is_sent():
    async def main():
        loop = asyncio.get_running_loop()
        lim = virtual_limiter(2, 10)
        stamps = [await lim.acquire("a"), await lim.acquire("a")]
        await asyncio.sleep(5)  # the second was only sent 5 s after its grant
        lim.sent(stamps[1])
        lim.release()
        lim.release()
        await lim.acquire("a")
        third = loop.time()
        await lim.acquire("a")
        return stamps, third, loop.time()

    stamps, third, fourth = run_virtual(main())
    assert stamps == [0.0, 0.0]
    assert third == 60.0  # the first left the window at 60
    assert fourth == 65.0  # the second only at 65


def test_a_refused_request_widens_the_guard_and_pauses():
    async def main():
        loop = asyncio.get_running_loop()
        lim = virtual_limiter(10, 10)
        lim.rejected(0.4)
        assert lim.sched.guard == pytest.approx(0.4)
        await lim.acquire("a")
        at = loop.time()
        for _ in range(10):
            lim.rejected(5.0)  # never more than 1/20 of the window
        return at, lim.sched.guard

    at, guard = run_virtual(main())
    assert at == pytest.approx(0.4)
    assert guard == pytest.approx(3.0)


# ------------------------------------------------------------------ probing an unconfirmed rate


def account_run(setting: float, account: int, refusal_seconds: float, n: int = 20):
    """``n`` images through a limiter set to ``setting`` per minute (10 at once, probing beyond
    one burst) against an account that accepts ``account`` per minute. Images take 0.5-1.5 s;
    a refusal takes ``refusal_seconds`` to come back (a slow network, a loaded machine)."""

    async def main():
        lim = virtual_limiter(setting, 10)
        lim.probe_from(10)
        loop = asyncio.get_running_loop()
        accepted: list[float] = []
        refused: list[float] = []
        starts: list[float] = []

        async def image(i: int) -> None:
            while True:
                async with lim.slot("job") as stamp:
                    with sending(lim, stamp):
                        now = loop.time()
                        starts.append(now)
                        recent = [t for t in accepted if t > now - 60.0]
                        if len(recent) >= account:  # the server's own window is full: 429
                            refused.append(now)
                            await asyncio.sleep(refusal_seconds)
                            lim.rejected(recent[0] + 60.0 - loop.time(), stamp)
                            continue
                        accepted.append(now)
                        await asyncio.sleep(0.5 + (i * 7 % 11) / 10)
                        return

        await asyncio.gather(*(image(i) for i in range(n)))
        return starts, accepted, refused, lim

    return run_virtual(main())


def test_a_setting_above_the_account_costs_one_429_however_slowly_it_comes_back():
    # Without probing, every start while the first refusal travels back is refused too.
    starts, accepted, refused, lim = account_run(20, 10, refusal_seconds=3.0)
    assert len(accepted) == 20
    assert len(refused) == 1, f"{len(refused)} x 429"
    assert lim.learned_rate == 10


def test_a_right_setting_reaches_its_full_rate_within_the_first_window():
    starts, accepted, refused, lim = account_run(20, 30, refusal_seconds=3.0)
    assert refused == [] and len(accepted) == 20
    assert starts[:10] == [0.0] * 10  # one burst, as the concurrency cap allows
    # Beyond it, one probe at a time, each sent when the one before it came back: all 20
    # started in the first quarter of the window, and the window is proven for next time.
    assert max(starts) < 15.0 and lim.sched.proven == 20


def test_the_servers_own_figure_ends_probing():
    async def main():
        lim = virtual_limiter(50, 20)
        lim.probe_from(2)
        lim.hint(remaining=49, reset_seconds=60.0, limit=50)
        log: list = []
        await asyncio.gather(*(worker(lim, str(i), log) for i in range(12)))
        return log

    assert [t for t, _ in run_virtual(main())] == [0.0] * 12


def test_a_cancelled_probe_lets_the_next_request_probe():
    s = WindowScheduler(10, 10)
    s.probe_from(1)
    for i in range(3):
        s.enqueue("a", i)
    granted, _ = s.poll(0.0)
    assert [t for _, t in granted] == [0, 1] and s.probe == 1  # one free, one probe
    assert s.poll(0.0)[0] == []  # the probe is out: the third waits
    s.end_probe(1, accepted=False)
    s.release()
    granted, _ = s.poll(0.0)
    assert [t for _, t in granted] == [2] and s.proven == 1  # a refused probe proves nothing
    s.end_probe(2, accepted=True)
    assert s.proven == 3


def test_a_probe_proves_nothing_unless_it_was_sent_and_ended_well():
    """A probe granted to a request that was stopped before sending, or whose refusal escaped
    its block (a hero sheet's 429), or that was cancelled, leaves the proven count as it was;
    the next request probes again."""

    async def main():
        lim = virtual_limiter(20, 10)
        lim.probe_from(1)
        async with lim.slot("a"):
            pass  # the first start is free
        proven = lim.sched.proven
        async with lim.slot("a"):
            pass  # granted as the probe, never sent
        after_unsent = lim.sched.proven
        with pytest.raises(RuntimeError):
            async with lim.slot("a") as stamp:
                with sending(lim, stamp):
                    raise RuntimeError("429 handled outside the slot")
        after_error = lim.sched.proven
        task = asyncio.create_task(_sent_forever(lim))
        await asyncio.sleep(1.0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after_cancel = lim.sched.proven
        async with lim.slot("a") as stamp:
            with sending(lim, stamp):
                pass
        return proven, after_unsent, after_error, after_cancel, lim.sched.proven, lim.sched.probe

    proven, unsent, error, cancelled, last, probe = run_virtual(main())
    assert proven == unsent == error == cancelled == 1
    assert last > 1 and probe is None  # a sent probe that ended well proves its count


async def _sent_forever(lim: RateLimiter) -> None:
    async with lim.slot("a") as stamp:
        with sending(lim, stamp):
            await asyncio.sleep(3600)

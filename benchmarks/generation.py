"""Image generation against the account's rate limit: measured makespan vs the best possible.

Runs the real pipeline (JobRegistry -> run_slot -> the OpenAI image provider -> the real
AsyncOpenAI client) against the loopback fake OpenAI server, which enforces R images per
(scaled) minute with 429 + Retry-After, takes L (scaled) seconds per image and fails a given
fraction of admitted requests with HTTP 500. For each case it prints, in one table:

- ``makespan``: from creating the job(s) to the last image stored, in unscaled seconds
- ``bound``: the best possible makespan for that case: when the last request may start under
  R per minute (and 10 in flight), plus L. With failures, the larger of that and the same bound
  for every request the server admitted (images + failed attempts, without the cap, since a
  failed request returns at once); the backoff before a retry is not in it, so it is the bound
  for the work that was actually done.
- ``ratio`` = makespan / bound
- ``old``: the previous service's strategy on the same server: batches of 5 images sent
  together, a 40 s sleep between batches, the same client and retry policy, no shared limiter
  (one such loop per job); ``speedup`` = old / makespan
- ``429s`` sent by the server to the new pipeline (and to the old strategy)
- ``first``: time to the first stored image
- ``reqs``: requests the server admitted for the new pipeline; ``lost``: images that failed
  after every retry (new / old)
- ``share`` (3 jobs): within each stretch of time when all jobs had requests waiting, the
  largest difference between the numbers of requests two jobs had started (fair: 0 or 1)

The fake server runs in a process of its own (no interpreter lock shared with the pipeline).
Each case runs on its own scaled clock: every duration (window, L, timeouts, backoff, the old
strategy's 40 s) is multiplied by the case's scale, chosen so the case takes a few seconds;
figures are printed divided by it again. ``--quick`` runs a subset in under a minute.
The last line is ``worst makespan/bound: X.XX`` over the cases without failures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.managers import BaseManager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from foxpipe.config import Settings  # noqa: E402
from foxpipe.domain.models import Scene, Story, new_id  # noqa: E402
from foxpipe.engine.generation import Pipeline  # noqa: E402
from foxpipe.engine.jobs import JobRegistry  # noqa: E402
from foxpipe.engine.ratelimit import RateLimiter, lower_bound  # noqa: E402
from foxpipe.engine.retry import backoff_delay  # noqa: E402
from foxpipe.providers.base import ProviderError  # noqa: E402
from foxpipe.providers.csvlog import CsvLog  # noqa: E402
from foxpipe.providers.localstore import LocalStore  # noqa: E402
from foxpipe.providers.openai import OpenAIImages  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI  # noqa: E402

CAP = 10  # MAX_CONCURRENT_IMAGES
RETRIES = 3
MIN_SCALE = 1 / 40  # a 60 s window never shorter than 1.5 s, so fixed costs stay small
# Real seconds added to each window: the jitter between the limiter's grant and the request's
# arrival at the server (building the request in the SDK, other images being stored) does not
# shrink with the scale. The app uses 0.5 s per minute (1/120 of the window).
MIN_GUARD = 0.04


class ServerProcess:
    """The fake OpenAI server in a process of its own, so its threads do not share this
    process's interpreter lock with the pipeline (on a scaled clock, that contention would
    show up as arrival jitter)."""

    def __init__(self, **options: object) -> None:
        self._fake = FakeOpenAI(**options)

    def start(self) -> str:
        return self._fake.start().base_url

    def stop(self) -> None:
        self._fake.stop()

    def set(self, **options: object) -> None:
        for k, v in options.items():
            setattr(self._fake, k, v)

    def reset(self) -> None:
        self._fake.reset()

    def rate_limited(self) -> int:
        return self._fake.rate_limited

    def reasons(self) -> list[str]:
        return [r.reason for r in self._fake.of("images")]

    def arrivals(self) -> list[tuple[float, str, str]]:
        """(time.monotonic() on arrival, reason, prompt) per image request."""
        return [(r.t, r.reason, r.prompt) for r in self._fake.of("images")]


class _Manager(BaseManager):
    pass


_Manager.register("Server", ServerProcess)


@contextmanager
def fake_server(**options: object) -> Iterator[tuple[object, str]]:
    with _Manager() as manager:
        server = manager.Server(**options)  # type: ignore[attr-defined]
        url = server.start()
        try:
            yield server, url
        finally:
            server.stop()


@dataclass(frozen=True)
class Case:
    n: int
    rate: float
    latency: float
    failure: float
    jobs: int

    @property
    def label(self) -> str:
        return f"{self.n:>3} {self.rate:>3g} {self.latency:>2g} {self.failure:>4.0%} {self.jobs:>4}"


@dataclass
class Result:
    case: Case
    scale: float
    makespan: float
    bound: float
    admitted: int
    rejected: int
    first: float
    share: int | None
    failed_slots: int
    old: float
    old_rejected: int
    old_failed: int

    @property
    def ratio(self) -> float:
        return self.makespan / self.bound


class RecordingLimiter(RateLimiter):
    """The real limiter, also noting each start and which jobs had requests waiting when
    it was granted."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.grants: list[tuple[str, frozenset[str]]] = []
        poll = self.sched.poll

        def recording_poll(now: float):  # noqa: ANN202
            waiting = frozenset(self.sched.queues)
            granted, wake = poll(now)
            self.grants += [(key, waiting | {key}) for key, fut in granted if not fut.done()]
            return granted, wake

        self.sched.poll = recording_poll  # type: ignore[method-assign]


def share_spread(grants: list[tuple[str, frozenset[str]]], keys: list[str]) -> int:
    """Within each stretch of starts made while every job had requests waiting, the most
    starts any job got beyond another's (round-robin keeps this at 0 or 1)."""
    counts = dict.fromkeys(keys, 0)
    spread = 0
    for key, waiting in grants:
        if not all(k in waiting for k in keys):
            counts = dict.fromkeys(keys, 0)  # a job ran dry: fairness restarts from even
            continue
        counts[key] += 1
        spread = max(spread, max(counts.values()) - min(counts.values()))
    return spread


def settle() -> None:
    """Collect garbage now and exempt what exists from later collections: a full collection
    pauses the process for tens of milliseconds, which the scaled clock would magnify into
    seconds (in the app such a pause is a rounding error next to a 60 s window)."""
    gc.collect()
    gc.freeze()


async def warm_up(images: OpenAIImages, connections: int, pipe: Pipeline | None = None) -> None:
    """Open the client's connections and load what the first image needs (store, log)
    before the clock starts, as in an app that has been running."""
    results = await asyncio.gather(
        *(images.generate("warm-up", "1024x1536") for _ in range(connections))
    )
    if pipe is not None:
        await asyncio.to_thread(pipe.store.save, new_id(), 0, 1, results[0].data, tags=[])
        await asyncio.to_thread(pipe.log.log_image, {"status": "warm-up"})


def make_story(n: int) -> tuple[Story, list[str]]:
    scenes = [
        Scene(i + 1, "Beat", f"Scene {i + 1}: the small fox runs through the forest.")
        for i in range(n)
    ]
    story = Story(title="Benchmark", scenes=scenes, answers={})
    return story, [f"A small red fox, scene {s.number}, watercolor." for s in scenes]


def scaled_pipeline(data: Path, scale: float) -> Callable[[Settings, RateLimiter], Pipeline]:
    """The app's image pipeline on the fake server, its backoff scaled with the clock."""

    def factory(s: Settings, lim: RateLimiter) -> Pipeline:
        return Pipeline(
            images=OpenAIImages(s),
            store=LocalStore(data),
            log=CsvLog(data),
            limiter=lim,
            settings=s,
            backoff_base=1.0 * scale,
            backoff_cap=30.0 * scale,
        )

    return factory


def settings_for(base_url: str, case: Case, scale: float, data: Path) -> Settings:
    return Settings(
        openai_api_key="sk-benchmark",
        openai_base_url=base_url,
        openai_use_reference=False,
        images_per_minute=case.rate,
        max_concurrent_images=CAP,
        image_timeout=180.0 * scale,
        image_retries=RETRIES,
        max_images_per_story=10_000,
        daily_image_budget=1_000_000,
        data_dir=str(data),
    )


def run_new(case: Case, scale: float, data: Path) -> dict:
    period = 60.0 * scale
    with fake_server(
        rate_limit=case.rate,
        time_scale=1 / scale,
        latency=case.latency * scale,
        failure_rate=case.failure,
        seed=case.n * 7 + case.jobs,
    ) as (fake, url):
        settings = settings_for(url, case, scale, data)
        limiter = RecordingLimiter(
            case.rate, CAP, period=period, guard=max(period / 120, MIN_GUARD)
        )

        reg = JobRegistry(settings, scaled_pipeline(data, scale), limiter=limiter, period=period)
        try:
            # Warm up the worker and the client (first-call costs of the SDK are not the
            # limiter's doing), then clear the server's window and records.
            fake.set(rate_limit=None, failure_rate=0.0)
            reg.run_on_worker(lambda pipe: warm_up(pipe.images, CAP * case.jobs, pipe), timeout=30)
            fake.set(rate_limit=case.rate, failure_rate=case.failure)
            fake.reset()
            settle()
            story, prompt_list = make_story(case.n)
            t0 = time.time()
            ids = [reg.create_job(story, prompt_list, owner=f"user{j}") for j in range(case.jobs)]
            deadline = time.monotonic() + 600
            while any(reg.running(i) for i in ids):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"case {case} did not finish")
                time.sleep(0.01)
            jobs = [reg.get(i) for i in ids]
        finally:
            reg.shutdown()
        admitted = sum(1 for r in fake.reasons() if r != "rate_limit")
        return {
            "makespan": max(j.finished_at for j in jobs) - t0,
            "first": min(j.first_image_at for j in jobs if j.first_image_at) - t0,
            "admitted": admitted,
            "rejected": fake.rate_limited(),
            "share": share_spread(limiter.grants, ids) if case.jobs > 1 else None,
            "failed_slots": sum(1 for j in jobs for s in j.slots if s.status.value == "failed"),
        }


async def old_strategy(
    fake, settings: Settings, case: Case, scale: float, data: Path
) -> tuple[float, int]:  # noqa: ANN001
    """Batches of 5 images sent together, 40 s between batches, per job; same retries."""
    images = OpenAIImages(settings)
    fake.set(rate_limit=None, failure_rate=0.0)
    await warm_up(images, 5 * case.jobs)
    fake.set(rate_limit=case.rate, failure_rate=case.failure)
    fake.reset()
    settle()
    store = LocalStore(data)
    _, prompt_list = make_story(case.n)
    failed = 0

    async def one(job_id: str, i: int) -> None:
        nonlocal failed
        for attempt in range(1, RETRIES + 2):
            try:
                async with asyncio.timeout(settings.image_timeout):
                    r = await images.generate(prompt_list[i], "1024x1536", scene_number=i + 1)
                await asyncio.to_thread(store.save, job_id, i, 1, r.data, tags=[])
                return
            except ProviderError as e:
                if e.kind != "retryable" or attempt > RETRIES:
                    break
                await asyncio.sleep(
                    backoff_delay(attempt, 1.0 * scale, 30.0 * scale, e.retry_after)
                )
            except TimeoutError:
                if attempt > RETRIES:
                    break
        failed += 1

    async def job() -> None:
        job_id = new_id()
        for b in range(0, case.n, 5):
            if b:
                await asyncio.sleep(40.0 * scale)
            await asyncio.gather(*(one(job_id, i) for i in range(b, min(b + 5, case.n))))

    t0 = time.time()
    await asyncio.gather(*(job() for _ in range(case.jobs)))
    makespan = time.time() - t0
    await images.aclose()
    return makespan, failed


def run_old(case: Case, scale: float, data: Path) -> dict:
    with fake_server(
        rate_limit=case.rate,
        time_scale=1 / scale,
        latency=case.latency * scale,
        failure_rate=case.failure,
        seed=case.n * 7 + case.jobs,
    ) as (fake, url):
        makespan, failed = asyncio.run(
            old_strategy(fake, settings_for(url, case, scale, data), case, scale, data)
        )
        return {"makespan": makespan, "rejected": fake.rate_limited(), "failed": failed}


def scale_for(seconds: float, target: float) -> float:
    return min(1.0, max(MIN_SCALE, target / seconds))


def run_case(case: Case, target: float) -> Result:
    ideal = lower_bound(case.n * case.jobs, case.rate, case.latency, max_concurrent=CAP)
    scale = scale_for(ideal, target)
    old_est = (math.ceil(case.n / 5) - 1) * (case.latency + 40) + case.latency
    old_scale = scale_for(old_est, target / 3)
    with tempfile.TemporaryDirectory() as tmp:
        new = run_new(case, scale, Path(tmp) / "new")
        old = run_old(case, old_scale, Path(tmp) / "old")
    # With failures the server admitted more requests than images: the bound is the larger of
    # the bound for the images and the bound for every admitted request (the cap left out:
    # a failed request returns at once and holds no place for L seconds).
    bound = max(ideal, lower_bound(new["admitted"], case.rate, case.latency))
    return Result(
        case=case,
        scale=scale,
        makespan=new["makespan"] / scale,
        bound=bound,
        admitted=new["admitted"],
        rejected=new["rejected"],
        first=new["first"] / scale,
        share=new["share"],
        failed_slots=new["failed_slots"],
        old=old["makespan"] / old_scale,
        old_rejected=old["rejected"],
        old_failed=old["failed"],
    )


def grid(quick: bool) -> list[Case]:
    if quick:
        return [
            Case(20, 5, 2, 0.0, 1),
            Case(20, 15, 6, 0.0, 1),
            Case(20, 50, 2, 0.0, 1),
            Case(20, 15, 2, 0.1, 1),
            Case(20, 15, 6, 0.0, 3),
            Case(20, 50, 2, 0.1, 3),
        ]
    return [
        Case(n, r, lat, f, j)
        for n in (20, 60)
        for r in (5, 15, 50)
        for lat in (2, 6)
        for f in (0.0, 0.1)
        for j in (1, 3)
    ]


HEADER = (
    "  N   R  L fail jobs | makespan    bound ratio | old(5+40s) speedup | 429s new/old | first | share | "
    "reqs | lost new/old"
)


def row(r: Result) -> str:
    share = "" if r.share is None else str(r.share)
    return (
        f"{r.case.label} | {r.makespan:8.1f} {r.bound:8.1f} {r.ratio:5.2f} | {r.old:10.1f} {r.old / r.makespan:6.2f}x"
        f" | {r.rejected:4d} / {r.old_rejected:<4d} | {r.first:5.1f} | {share:>5} | {r.admitted:4d} |"
        f" {r.failed_slots:4d} / {r.old_failed:<4d}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a subset of the grid, in under a minute")
    ap.add_argument(
        "--target",
        type=float,
        default=None,
        help="seconds each case should take on the scaled clock (default 5, quick 4)",
    )
    args = ap.parse_args()
    target = args.target or (4.0 if args.quick else 5.0)
    cases = grid(args.quick)
    print(
        f"{len(cases)} cases; times in unscaled seconds; limit R/min, latency L s, cap {CAP} in flight, "
        f"{RETRIES} retries",
        flush=True,
    )
    print(HEADER, flush=True)
    results: list[Result] = []
    started = time.monotonic()
    for case in cases:
        r = run_case(case, target)
        results.append(r)
        print(row(r), flush=True)
    clean = [r for r in results if r.case.failure == 0]
    failing = [r for r in results if r.case.failure > 0]
    multi = [r for r in results if r.case.jobs > 1]
    print(f"ran in {time.monotonic() - started:.0f} s")
    if clean:
        print(
            f"no failures: worst ratio {max(r.ratio for r in clean):.3f} (target <= 1.05); "
            f"429s {sum(r.rejected for r in clean)} (target 0)"
        )
    if failing:
        print(
            f"10% failures: worst ratio {max(r.ratio for r in failing):.3f} (target <= 1.15); "
            f"images failed after retries {sum(r.failed_slots for r in failing)}"
        )
    if multi:
        worst = max(multi, key=lambda r: r.ratio)
        print(
            f"{multi[0].case.jobs} concurrent jobs: worst ratio {worst.ratio:.3f} vs the bound for all their images "
            f"(target <= 1.1); worst share spread {max(r.share or 0 for r in multi)} (target <= 1)"
        )
    print(
        f"old strategy: speed-up {min(r.old / r.makespan for r in results):.2f}x to "
        f"{max(r.old / r.makespan for r in results):.2f}x; its 429s {sum(r.old_rejected for r in results)}, "
        f"images it lost after retries {sum(r.old_failed for r in results)} (new pipeline: "
        f"{sum(r.failed_slots for r in results)})"
    )
    print(f"worst makespan/bound: {max(r.ratio for r in clean) if clean else float('nan'):.2f}")


if __name__ == "__main__":
    main()

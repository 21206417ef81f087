"""The engine: one per process, with one worker thread running one asyncio loop for every
job (so the rate limiter is shared by all users).

Jobs live in the store only (``foxpipe.store``): the UI reads them from it, the worker
changes them through ``mutate`` (one transaction each), and every status change goes
through the lifecycle (``foxpipe.domain.lifecycle``). What the engine keeps in memory is
only what cannot be stored: the running tasks of this process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain import frames, prompts
from foxpipe.domain.continuity import clean_defects, fix_text
from foxpipe.domain.lifecycle import Refused, SlotEvent, slot_event
from foxpipe.domain.models import ImageVersion, Job, Slot, SlotStatus, Story
from foxpipe.engine import checks
from foxpipe.engine.generation import Pipeline, blocking, image_row, run_slot
from foxpipe.engine.ratelimit import SEND_GUARD_SECONDS, RateLimiter, job_deadline
from foxpipe.providers.base import Capability, can
from foxpipe.store import DamagedRecord, Store, StoreError, default_url

log = logging.getLogger(__name__)

PipelineFactory = Callable[[Settings, RateLimiter], Pipeline]

WAITING = (SlotStatus.QUEUED,)  # not started yet (or between retries)

INTERRUPTED = "Interrupted when the app restarted. Press Retry to make this image."


def storage_message(e: OSError) -> str:
    """What a reviewer reads when the server could not store a file."""
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is used up",
        errno.EACCES: "the data folder is not writable",
        errno.EPERM: "the data folder is not writable",
        errno.EROFS: "the data folder is read-only",
    }.get(e.errno or 0, type(e).__name__)
    return (
        f"Storage failed: the image could not be saved on the server ({why}). "
        "Ask whoever runs the app to free space or fix the data folder, then press Retry."
    )


class GuardError(Exception):
    """The cost guard refused: nothing was spent."""


@dataclass
class Progress:
    """The gallery's live figures for one job."""

    done: int  # slots with an image (ready or approved)
    total: int
    approved: int
    made: int  # images this job made, regenerations included
    rate: float  # images per minute achieved since its first request started
    limit: float  # the account's images per minute, shared by every job
    elapsed: float  # seconds since the job was created (until it finished)
    eta: float | None  # estimated seconds left, None when nothing is in flight
    other_jobs: int  # other jobs waiting on the same limiter
    learned: float | None = None  # the rate the account really allows, learned from its 429s


def _extend_deadline(j: Job, until: float) -> None:
    """Deadlines only ever move later."""
    j.deadline = max(j.deadline, until)


def _same_bytes(path: str, data: bytes) -> bool:
    try:
        p = Path(path)
        return p.stat().st_size == len(data) and p.read_bytes() == data
    except OSError:
        return False


class JobRegistry:
    def __init__(
        self,
        settings: Settings,
        pipeline_factory: PipelineFactory | None = None,
        *,
        limiter: RateLimiter | None = None,
        period: float = 60.0,
        store: Store | None = None,
    ):
        """``limiter`` replaces the one built from the settings; ``period`` is the length
        of the rate window in seconds (60; benchmarks scale it); ``store`` replaces the one
        named by the settings (DATABASE_URL, else a SQLite file in the data folder)."""
        self.settings = settings
        self._factory = pipeline_factory
        self._period = period
        self.store_problem = ""  # DATABASE_URL could not be used: said in the sidebar
        if store is None:
            try:
                store = Store(
                    settings.database_url or default_url(settings.data_path),
                    data_path=settings.data_path,
                )
            except StoreError as e:
                if not settings.database_url:
                    raise
                self.store_problem = (
                    f"{e.message} Using a local file instead, which Streamlit Community Cloud "
                    "wipes on every restart: fix DATABASE_URL."
                )
                log.warning("[STORE] %s", self.store_problem)
                store = Store(default_url(settings.data_path), data_path=settings.data_path)
        self.store = store
        self._lock = threading.RLock()
        self._tasks: dict[str, dict[int, concurrent.futures.Future[None]]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._work: dict[
            tuple[str, str], concurrent.futures.Future[Any]
        ] = {}  # other background work
        self._uploads: dict[tuple[str, int], concurrent.futures.Future[bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pipeline: Pipeline | None = None
        self.limiter: RateLimiter | None = limiter
        self.closing = False  # shutting down: no new request is sent
        self.problem = ""  # the last storage failure, for the page

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._loop is not None:
                return self._loop
            if self.closing:
                raise RuntimeError("the app is shutting down")
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            setup_error: list[BaseException] = []
            first_start = self._thread is None

            def run() -> None:
                asyncio.set_event_loop(loop)
                try:
                    from foxpipe.providers.registry import image_limits

                    if self.limiter is None:
                        rate, cap = image_limits(self.settings)
                        # The guard absorbs what passes between the send stamp and the arrival
                        # at the server on a loaded machine (seconds, not a share of the window).
                        self.limiter = RateLimiter(
                            rate,
                            cap,
                            period=self._period,
                            guard=min(SEND_GUARD_SECONDS, self._period / 20),
                        )
                        if not self._pipeline_is_offline():
                            # Until the server shows the account takes more, what goes
                            # beyond one burst is probed one request at a time.
                            self.limiter.probe_from(cap)
                    self._seed_limiter()
                    self._learned_rate_hook()
                    self._pipeline = self._build_pipeline()
                    io = self._pipeline.io = ThreadPoolExecutor(16, thread_name_prefix="foxpipe-io")
                    loop.create_task(self._watchdog())
                except BaseException as e:  # the caller raises it; nothing runs on this loop
                    setup_error.append(e)
                    loop.close()
                    return
                finally:
                    ready.set()
                try:
                    loop.run_forever()
                except BaseException:  # the loop died: fail what was in flight, say so
                    log.exception("[IMAGE] the background worker stopped unexpectedly")
                    with self._lock:
                        for job_id in self._tasks:
                            self._cancel_reason[job_id] = (
                                "Interrupted: the background worker stopped. Press Retry."
                            )
                    checks.release_interrupted(self)  # continuity: its checks end as "not checked"
                finally:
                    # Let every task (the watchdog, cancelled work) finish before closing.
                    pending = asyncio.all_tasks(loop)
                    for task in pending:
                        task.cancel()
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()
                    io.shutdown(wait=False, cancel_futures=True)

            self._loop = loop
            self._thread = threading.Thread(target=run, name="foxpipe-worker", daemon=True)
            self._thread.start()
            # No time limit: on a loaded machine the first start (imports, clients) can take
            # long, and the pipeline must exist before anything uses it.
            ready.wait()
            if setup_error:
                self._thread = None
                raise RuntimeError(
                    f"the background worker could not start: {setup_error[0]}"
                ) from setup_error[0]
        if first_start:
            self.recover()
        return loop

    def _seed_limiter(self) -> None:
        """The starts of the last window, from the store: a restart sends no burst."""
        assert self.limiter is not None
        if self._pipeline_is_offline():
            return
        now = time.time()
        try:
            starts = self.store.recent_starts("images", now - self.limiter.period)
        except StoreError:
            return
        mono = time.monotonic()
        for t in starts:
            self.limiter.sched.starts.append(mono - (now - t))
        if starts:
            log.info("[RATE] %d requests of the last minute remembered from the store", len(starts))

    # ------------------------------------------------------------------ the account's real rate
    # Learned from 429s (RateLimiter.rejected) and kept in the store under the setting it was
    # learned against, so a restart starts at it; a changed setting is believed again.
    def _learned_key(self) -> str:
        return f"learned_images_per_minute:{self.settings.images_per_minute:g}"

    def _learned_rate_hook(self) -> None:
        assert self.limiter is not None
        if self._pipeline_is_offline():
            return
        key = self._learned_key()
        try:
            stored = self.store.get_value(key)
            if stored:
                self.limiter.adopt(float(stored))
                log.info("[RATE] the account allows about %s per minute (learned earlier)", stored)
        except (StoreError, ValueError) as e:
            log.warning("[RATE] the learned rate could not be read: %s", type(e).__name__)

        def remember(rate: float) -> None:
            self.store.set_value(key, f"{rate:g}")

        self.limiter.on_learned = remember

    def _pipeline_is_offline(self) -> bool:
        from foxpipe.providers.registry import image_limits

        return (
            not self.settings.openai_live
            and self._factory is None
            and image_limits(self.settings)[0] > 1000
        )

    def started_request(self) -> None:
        """A paid request was sent: remember it in the store's rate window."""
        if can(self.pipeline.images, Capability.FREE):
            return
        try:
            self.store.record_start("images", time.time())
        except StoreError as e:
            self.problem = e.message

    def start(self) -> None:
        """Start the worker now (the app does at its first visit): after a restart, queued
        images and clips the vendor already accepted are picked up without a click."""
        self._ensure_worker()

    def recover(self) -> None:
        """After a restart: images that were queued start again by themselves (they were
        never sent); requests that were cut off are marked interrupted, with Retry; clips a
        vendor accepted are polled again, never resubmitted."""
        from foxpipe.engine import videojobs

        try:
            videojobs.resume_all(self)
        except StoreError as e:
            self.problem = e.message
        try:
            unfinished = self.store.jobs_where(done=False)
        except StoreError as e:
            self.problem = e.message
            return
        for job in unfinished:
            if job.cancelled:
                continue
            resume: list[tuple[int, int]] = []

            def fn(j: Job, resume: list[tuple[int, int]] = resume) -> None:
                for s in j.slots:
                    if s.status is SlotStatus.GENERATING:
                        slot_event(s, SlotEvent.FAIL, run=s.generations)
                        s.error = INTERRUPTED
                    elif (
                        s.status is SlotStatus.QUEUED and s.generations
                    ):  # queued by a run, never sent
                        resume.append((s.index, s.generations))

            with self._lock:
                if self._tasks.get(job.id):
                    continue  # this process is running it
                self.mutate(job.id, fn)
                if resume:
                    log.info(
                        "[IMAGE] job %s: %d queued images start again", job.id[:6], len(resume)
                    )
                    self._launch(job.id, resume)
        with self._lock:
            if self._tasks:
                self._extend_deadlines()
        try:  # continuity checks cut off by the restart run again
            checks.recover(self)
        except StoreError as e:
            self.problem = e.message

    def _build_pipeline(self) -> Pipeline:
        assert self.limiter is not None
        if self._factory is not None:
            return self._factory(self.settings, self.limiter)
        from foxpipe.providers.registry import build_pipeline

        return build_pipeline(self.settings, self.limiter)

    @property
    def pipeline(self) -> Pipeline:
        self._ensure_worker()
        assert self._pipeline is not None
        return self._pipeline

    def shutdown(self, timeout: float = 5.0, grace: float = 0.0) -> None:
        """Stop. With ``grace`` (the app shutting down): send nothing new, wait up to
        ``grace`` seconds for requests already sent and store what they return; queued
        images stay queued and start again after the restart. Then cancel the rest."""
        with self._lock:
            self.closing = True
        if grace > 0:
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self._generating():
                time.sleep(0.05)
        with self._lock:
            for job_id in list(self._tasks):
                self._cancel_tasks(job_id, INTERRUPTED)
            for fut in self._work.values():
                fut.cancel()
            loop, thread = self._loop, self._thread
            self._loop = None
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._stop_loop(), loop)
            except RuntimeError:  # the loop is already closed
                pass
            else:
                thread.join(timeout)

    def _generating(self) -> int:
        """Requests of this process that were sent and have not answered yet."""
        n = 0
        with self._lock:
            for job_id, tasks in self._tasks.items():
                live = [i for i, f in tasks.items() if not f.done()]
                if not live:
                    continue
                job = self.get(job_id)
                if job is not None:
                    n += sum(1 for i in live if job.slots[i].status is SlotStatus.GENERATING)
        return n

    async def _stop_loop(self) -> None:
        """Let every task end (no task is destroyed pending), close the image client, stop."""
        me = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        close = getattr(self._pipeline.images, "aclose", None) if self._pipeline else None
        if close is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), 2.0)
        asyncio.get_running_loop().stop()

    async def _watchdog(self) -> None:
        """Enforce job deadlines."""
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            with self._lock:
                active = [jid for jid in list(self._tasks) if self._active(jid)]
            for job_id in active:
                deadline = self.read(job_id, lambda j: j.deadline)
                if deadline and now > deadline:
                    log.info("[IMAGE] job %s ran past its deadline", job_id[:6])
                    with self._lock:
                        self._cancel_tasks(
                            job_id, "The job ran past its deadline. Press Retry to try again."
                        )

    def _active(self, job_id: str) -> bool:
        """Whether any of this job's work is still queued or running (forgets finished work)."""
        tasks = self._tasks.get(job_id)
        if not tasks:
            return False
        for i in [i for i, f in tasks.items() if f.done()]:
            del tasks[i]
        return bool(tasks)

    # ------------------------------------------------------------------ reading
    def load(self, job_id: str) -> Job | None:
        """The job as stored now; None for an unknown id; StoreError when unreadable."""
        return self.store.get_job(job_id)

    def get(self, job_id: str) -> Job | None:
        """The job as stored now, or None for an unknown, malformed or unreadable id. A
        damaged job is not a storage failure: only its own page says so (``load``)."""
        try:
            return self.store.get_job(job_id)
        except DamagedRecord:
            return None
        except StoreError as e:
            self.problem = e.message
            return None

    def read(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        """``fn(job)`` of the job as stored now; None for an unknown id."""
        job = self.get(job_id)
        return None if job is None else fn(job)

    def jobs_of(self, owner: str) -> list[Job]:
        return [j for j in self.store.jobs_where() if j.owner == owner]

    def running(self, job_id: str) -> int:
        with self._lock:
            return sum(1 for f in self._tasks.get(job_id, {}).values() if not f.done())

    def _progress_inputs(self, job_id: str) -> tuple[Job | None, list[int]]:
        job = self.get(job_id)
        with self._lock:
            active = [jid for jid in list(self._tasks) if jid != job_id and self._active(jid)]
        others = []
        for jid in active:
            other = self.get(jid)
            if other is not None:
                others.append(sum(1 for s in other.slots if s.status in WAITING))
        return job, others

    def progress(self, job_id: str, now: float | None = None) -> Progress | None:
        """Live figures: images done, images per minute achieved against the limit, elapsed
        time and an estimate of the time left that counts the queue shared with other jobs."""
        now = time.time() if now is None else now
        job, others = self._progress_inputs(job_id)
        if job is None:
            return None
        slots = [(s.status, s.started, [v.seconds for v in s.versions]) for s in job.slots]
        created, started_at, finished_at = job.created, job.started_at, job.finished_at
        seen = [v.seconds for s in job.slots for v in s.versions]
        limiter = self.limiter
        rate_limit = limiter.rate if limiter else self.settings.images_per_minute
        period = limiter.period if limiter else self._period
        statuses = [st for st, _, _ in slots]
        done = sum(1 for st in statuses if st.has_image)
        made = sum(len(v) for _, _, v in slots)
        end = finished_at or now
        # Achieved rate: images made over the time since the first request started, counted
        # to at least one window after the last one started: n starts under a limit of R per
        # window span at least (n / R - 1) windows, so the figure never reads above the limit.
        last_start = max((t for st_, t, v in slots if v and t), default=started_at)
        span = max(end - started_at, max(0.0, last_start - started_at) + period)
        rate = made * period / span if started_at and made else 0.0
        latency = sum(seen) / len(seen) if seen else self._default_latency()
        waiting = sum(1 for st in statuses if st in WAITING)
        generating = [t for st, t, _ in slots if st is SlotStatus.GENERATING]
        eta: float | None = None
        if waiting or generating:
            eta = 0.0
            if generating:
                eta = max(max(0.0, latency - (now - t)) for t in generating)
            if waiting:
                # Round-robin: each other job's waiting images interleave with ours, one each.
                grants = waiting + sum(min(o, waiting) for o in others)
                wait = (
                    limiter.estimate_wait(grants)
                    if limiter
                    else grants / max(rate_limit, 1e-6) * period
                )
                cap = (
                    limiter.sched.max_concurrent if limiter else self.settings.max_concurrent_images
                )
                wait = max(wait, (grants / cap - 1) * latency)
                eta = max(eta, wait + latency)
        return Progress(
            done=done,
            total=len(slots),
            approved=sum(1 for st in statuses if st is SlotStatus.APPROVED),
            made=made,
            rate=rate,
            limit=rate_limit,
            elapsed=end - created,
            eta=eta,
            other_jobs=sum(1 for o in others if o),
            learned=limiter.learned_rate if limiter else None,
        )

    def _default_latency(self) -> float:
        """Seconds per image before any was measured."""
        if self._pipeline is not None and can(self._pipeline.images, Capability.FREE):
            return self.settings.offline_delay
        return min(60.0, self.settings.image_timeout)

    # ------------------------------------------------------------------ writing
    def mutate(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        """Change the job in one store transaction; what ``fn`` returned (None for an
        unknown job). A storage failure is remembered for the page and raised."""
        try:
            res = self.store.update_job(job_id, fn)
        except DamagedRecord:  # that job's own failure (its page says so), not the store's
            raise
        except StoreError as e:
            self.problem = e.message
            raise
        self.problem = ""
        return None if res is None else res[0]

    def abort(self, job_id: str, message: str) -> None:
        """Stop a job whose remaining images cannot succeed (no credit, bad key)."""
        self.mutate(job_id, lambda j: setattr(j, "notice", message))
        with self._lock:
            self._cancel_tasks(job_id, message)

    # ------------------------------------------------------------------ cost guard
    def _paid(self) -> bool:
        return not can(self.pipeline.images, Capability.FREE)

    def images_today(self) -> int:
        return self.store.spent("images")[0]

    def story_images(self, story_id: str) -> int:
        """Images made (or being made) for this story, over every job of it, hero reference
        images included: approving the same story again starts no fresh allowance."""
        jobs = self.store.jobs_where(story_id=story_id)
        return sum(s.generations for j in jobs for s in j.slots) + sum(
            j.reference_count for j in jobs
        )

    def _check_story(self, job: Job, n: int, *, per_image: list[int] | None = None) -> None:
        s = self.settings
        used = self.story_images(job.story.id)
        if used + n > s.max_images_per_story:
            raise GuardError(
                f"This story has used {used} of its {s.max_images_per_story} images "
                "(MAX_IMAGES_PER_STORY); nothing more will be generated."
            )
        for i in per_image or []:
            if job.slots[i].generations > s.max_regenerations_per_image:
                raise GuardError(
                    f"Scene {i + 1} was regenerated {s.max_regenerations_per_image} times "
                    "(MAX_REGENERATIONS_PER_IMAGE); edit its prompt or approve a version."
                )

    def charge(self, kind: str, n: int, usd: float = 0.0, *, limit: int | None = None) -> None:
        """Count ``n`` paid items of ``kind`` against today's budget, or raise GuardError
        (nothing counted). The daily image budget also covers hero reference images."""
        if n <= 0:
            return
        if limit is None and kind == "images":
            limit = self.settings.daily_image_budget
        try:
            ok, before = self.store.spend_if(kind, n, usd, limit)
        except StoreError as e:
            raise GuardError(f"{e.message} Nothing was spent.") from e
        if not ok:
            raise GuardError(
                f"Today's {kind} budget is spent ({before} of {limit}"
                + (", DAILY_IMAGE_BUDGET" if kind == "images" else "")
                + "). It resets at midnight."
            )

    def give_back(self, kind: str, n: int, usd: float = 0.0) -> None:
        """Undo ``charge`` for ``n`` items counted but never sent (best effort: a storage
        failure keeps them counted, which errs on the side of the budget)."""
        if n > 0:
            with contextlib.suppress(StoreError):
                self.store.spend_if(kind, -n, -usd, None)

    def budget_left(self, job: Job) -> dict[str, int]:
        s = self.settings
        return {
            "story": max(0, s.max_images_per_story - self.story_images(job.story.id)),
            "today": max(0, s.daily_image_budget - self.images_today()),
        }

    # ------------------------------------------------------------------ scheduling
    def create_job(
        self,
        story: Story,
        prompt_list: list[str],
        owner: str,
        *,
        character_sheet: str = "",
        size: str = "",
        references: dict[str, str] | None = None,
        start: bool = True,
        continuity: str = "",
        continuity_threshold: int = -1,
    ) -> str:
        """A new job of these scenes and prompts (started unless start=False). Without a size,
        the settings' SCENE_IMAGE_SIZE, else the portrait size every image model accepts."""
        slots = [
            Slot(index=i, scene=sc, prompt=p)
            for i, (sc, p) in enumerate(zip(story.scenes, prompt_list, strict=True))
        ]
        job = Job(
            story=story,
            slots=slots,
            owner=owner,
            character_sheet=character_sheet,
            image_model=self.pipeline.images.name,
            size=size or self.settings.scene_image_size or frames.FIXED["portrait"],
            references=dict(references or {}),
            continuity=continuity,
            continuity_threshold=continuity_threshold,
        )
        if self._paid():
            self._check_story(job, len(slots))
        self.store.add_job(job)
        if start:
            self.schedule(job.id, list(range(len(slots))))
        return job.id

    def schedule(self, job_id: str, indexes: list[int]) -> list[int]:
        """Start a new run of these slots (first try, regenerate, retry) through the shared
        limiter, after the cost guard; the indexes started (a slot already running, or one
        the lifecycle refuses, is left alone). Raises GuardError when it would overspend."""
        loop = self._ensure_worker()
        with self._lock:
            job = self.get(job_id)
            if job is None:
                return []
            running = self._tasks.setdefault(job_id, {})
            # A run whose slot is no longer in flight only has its log row and check request left.
            indexes = [
                i
                for i in indexes
                if 0 <= i < len(job.slots)
                and (i not in running or running[i].done() or not job.slots[i].status.in_flight)
            ]
            if not indexes:
                return []
            paid = self._paid()
            if paid:
                self._check_story(job, len(indexes), per_image=indexes)
                self.charge("images", len(indexes), len(indexes) * self.pipeline.cost_per_image())
            started: list[tuple[int, int]] = []

            def fn(j: Job) -> None:
                j.cancelled = False
                j.finished_at = 0.0
                for i in indexes:
                    try:
                        slot_event(j.slots[i], SlotEvent.QUEUE)
                    except Refused:
                        continue
                    started.append((i, j.slots[i].generations))

            self.mutate(job_id, fn)
            if paid and len(started) < len(indexes):  # refused ones were counted: give them back
                self.give_back("images", len(indexes) - len(started))
            self._launch(job_id, started, loop)
            self._extend_deadlines()
            return [i for i, _ in started]

    def _launch(
        self,
        job_id: str,
        runs: list[tuple[int, int]],
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        loop = loop or self._ensure_worker()
        with self._lock:
            running = self._tasks.setdefault(job_id, {})
            for i, gen in runs:
                running[i] = asyncio.run_coroutine_threadsafe(self._run(job_id, i, gen), loop)

    def _extend_deadlines(self) -> None:
        """Give every active job enough time for its unfinished images, with the work of
        every other job sharing the limiter counted ahead of it (a new job slows the
        others down: they share the account's rate). Deadlines only ever move later."""
        limiter = self.limiter
        assert limiter is not None
        now = time.time()
        wait = limiter.estimate_wait(1)
        jobs = {jid: self.get(jid) for jid in list(self._tasks) if self._active(jid)}
        left = {
            jid: sum(1 for s in j.slots if s.status.in_flight)
            for jid, j in jobs.items()
            if j is not None
        }
        total = sum(left.values())
        for jid, n in left.items():
            budget = job_deadline(
                n,
                limiter.rate,
                self.settings.image_timeout,
                queued_ahead=total - n,
                period=limiter.period,
                retries=self.settings.image_retries,
                wait=wait,
            )
            job = jobs[jid]
            if job is not None and now + budget > job.deadline:
                self.mutate(jid, functools.partial(_extend_deadline, until=now + budget))

    async def _run(self, job_id: str, index: int, gen: int) -> None:
        try:
            await run_slot(self, self.pipeline, job_id, index, gen)
        except asyncio.CancelledError:
            reason = self._cancel_reason.get(job_id, "Stopped.")
            self._fail(job_id, index, reason, gen)
            raise
        except StoreError as e:  # the store failed: say so, never leave the slot hanging
            log.warning("[IMAGE] scene %d: %s", index + 1, e.message)
            self._fail(job_id, index, f"{e.message} Press Retry.", gen)
        except OSError as e:  # the data folder is read-only or full: say so
            log.warning("[IMAGE] scene %d: storage failed (%s)", index + 1, type(e).__name__)
            self._fail(job_id, index, storage_message(e), gen)
        except Exception as e:  # never leave a slot hanging
            log.exception("[IMAGE] scene %d crashed", index + 1)
            self._fail(job_id, index, f"Internal error ({type(e).__name__}). Press Retry.", gen)

    def _fail(self, job_id: str, index: int, reason: str, gen: int | None = None) -> None:
        """Fail a slot that is still in flight (on run ``gen``, when given). When the app is
        shutting down, a slot that was never sent stays queued: it starts after the restart."""

        def fn(j: Job) -> None:
            s = j.slots[index]
            if self.closing and s.status is SlotStatus.QUEUED:
                return
            with contextlib.suppress(Refused):
                slot_event(s, SlotEvent.FAIL, run=gen if gen is not None else s.generations)
                s.error = reason

        try:
            self.mutate(job_id, fn)
        except StoreError:
            log.warning(
                "[IMAGE] scene %d could not be marked failed: the store is unavailable", index + 1
            )

    def _cancel_tasks(self, job_id: str, reason: str) -> None:
        with self._lock:
            self._cancel_reason[job_id] = reason
            tasks = self._tasks.get(job_id, {})
            job = self.get(job_id)

            def generating(i: int) -> bool:
                return job is not None and job.slots[i].status is SlotStatus.GENERATING

            # Queued work first: a cancelled request that frees its place must not hand it
            # to a request of this same job that is about to be cancelled too.
            for i in sorted(tasks, key=generating):
                fut = tasks[i]
                if not fut.done():
                    fut.cancel()
                    self._fail(job_id, i, reason)

    def cancel(self, job_id: str) -> None:
        """The gallery's Stop button: cancel queued and in-flight work of this job."""
        self.mutate(job_id, lambda j: setattr(j, "cancelled", True))
        with self._lock:
            self._cancel_tasks(job_id, "Stopped by you. Press Retry to make this image.")

    def run_on_worker(self, fn: Callable[[Pipeline], Any], timeout: float) -> Any:
        """Run ``fn(pipeline)`` (a coroutine) on the worker loop, so it shares the rate limiter
        and the image client with the jobs; block until it ends or ``timeout`` passes."""
        loop = self._ensure_worker()
        fut = asyncio.run_coroutine_threadsafe(fn(self.pipeline), loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError(f"no answer within {timeout:.0f} s") from None

    def submit(
        self,
        job_id: str,
        key: str,
        factory: Callable[[], Coroutine[Any, Any, Any]],
        *,
        after: bool = False,
    ) -> bool:
        """Run other background work of a job (its video, its hero sheet) on the worker loop,
        at most one per (job, key). Returns False when that work is already running, unless
        ``after``: then the new work runs as soon as the running one ends. (A caller that has
        already stored the new work as queued needs ``after``: the last run's task can still be
        finishing after it stored its own end, and refusing would leave the work queued with
        nothing to run it.)"""
        loop = self._ensure_worker()
        with self._lock:
            fut = self._work.get((job_id, key))
            if fut is not None and not fut.done():
                if not after:
                    return False
                self._work[(job_id, key)] = asyncio.run_coroutine_threadsafe(
                    _after(fut, factory), loop
                )
                return True
            self._work[(job_id, key)] = asyncio.run_coroutine_threadsafe(factory(), loop)
            return True

    def working(self, job_id: str | None = None, prefix: str = "") -> bool:
        """Whether anything is in flight in this process: an image, an upload or other
        background work (a hero drawing, a check, a video, the queue); with ``job_id``, only
        that job's other work whose key starts with ``prefix``. (The tests wait on it.)"""
        with self._lock:
            work = list(self._work.items())
            if job_id is not None:
                return any(
                    jid == job_id and key.startswith(prefix) and not f.done()
                    for (jid, key), f in work
                )
            futures = [f for _, f in work] + list(self._uploads.values())
            for tasks in list(self._tasks.values()):
                futures += list(tasks.values())
        return not all(f.done() for f in futures)

    def decision(self) -> contextlib.AbstractContextManager[Any]:
        """The engine's lock, held for one decision made outside this class: what is running
        and the change that follows from it are seen and made together (work of a job is
        started under it). Reentrant: ``get``, ``mutate``, ``busy`` and ``submit`` may be
        called inside."""
        return self._lock

    def work_in_flight(self, prefix: str) -> list[tuple[str, str]]:
        """The (job, key) of every other background work not yet ended whose key starts with
        ``prefix`` (``"check:"``: the continuity checks)."""
        with self._lock:
            return [
                (jid, k)
                for (jid, k), f in self._work.items()
                if k.startswith(prefix) and not f.done()
            ]

    def busy(self, job_id: str, key: str) -> bool:
        with self._lock:
            fut = self._work.get((job_id, key))
            return fut is not None and not fut.done()

    def stop_work(self, job_id: str, key: str) -> None:
        with self._lock:
            fut = self._work.get((job_id, key))
            if fut is not None:
                fut.cancel()

    # ------------------------------------------------------------------ review
    def approve(
        self,
        job_id: str,
        indexes: list[int],
        *,
        seen: dict[int, int] | None = None,
        refused: list[str] | None = None,
    ) -> int:
        """Approve these images. ``seen`` maps a scene index to the version the reviewer
        saw: an image that changed since (regenerated, restored by a teammate) is not
        approved. Returns how many were approved; why the others were not is appended to
        ``refused`` (the caller's own list: two reviewers never read each other's reasons)."""
        refused = [] if refused is None else refused
        done: list[int] = []

        def fn(j: Job) -> int:
            for i in indexes:
                s = j.slots[i]
                if seen is not None and i in seen and seen[i] != s.current:
                    refused.append(f"scene {i + 1} changed since you looked at it")
                    continue
                if s.status is SlotStatus.APPROVED:
                    continue
                try:
                    slot_event(s, SlotEvent.APPROVE)
                except Refused as e:
                    if s.status is not SlotStatus.QUEUED or len(indexes) == 1:
                        refused.append(e.reason)
                    continue
                done.append(i)
            return len(done)

        n = self.mutate(job_id, fn) or 0
        if done:
            self._log_review(job_id, done, "approved")
            self._after_approval(job_id)
        return n

    # ---------------------------------------------------------------- the finished Short
    def _after_approval(self, job_id: str) -> None:
        """Approved images are final: pre-render their Short segments in the background."""
        from foxpipe.engine import shortjobs

        shortjobs.prerender_soon(self, job_id)

    def approve_all(self, job_id: str) -> int:
        job = self.get(job_id)
        return (
            self.approve(
                job_id, [s.index for s in job.slots if s.status is not SlotStatus.APPROVED]
            )
            if job
            else 0
        )

    def reject(
        self,
        job_id: str,
        index: int,
        reasons: list[str] | None = None,
        note: str = "",
        *,
        seen: int | None = None,
    ) -> None:
        """Reject an image: its feedback becomes a prompt change, and it is regenerated.
        Raises Refused when the image changed since the reviewer saw it (a teammate
        approved or regenerated it), GuardError when it would overspend."""
        job = self.get(job_id)
        if job is None:
            return
        s = job.slots[index]
        if s.checking:
            raise Refused(
                f"Scene {index + 1} is being checked against the hero; reject it when the check ends."
            )
        if s.status is not SlotStatus.READY or (seen is not None and seen != s.current):
            what = {
                SlotStatus.APPROVED: "was approved",
                SlotStatus.QUEUED: "is being regenerated",
                SlotStatus.GENERATING: "is being regenerated",
            }.get(s.status, "changed")
            raise Refused(
                f"Scene {index + 1} {what} by someone else since you opened it; nothing was changed."
            )
        feedback = prompts.feedback_text(reasons or [], note)
        if defects := clean_defects(reasons or []):  # continuity defects chosen as reasons
            feedback = " ".join(p for p in (feedback, fix_text(defects)) if p)

        def fn(j: Job) -> None:
            j.slots[index].feedback = feedback
            j.slots[index].rejections.append(  # what the reviews say (the Insights page)
                {"reasons": list(reasons or []), "note": note, "time": time.time()}
            )

        self.mutate(job_id, fn)
        self.schedule(job_id, [index])
        self._log_review(job_id, [index], "rejected")

    def retry(self, job_id: str, index: int, prompt: str | None = None) -> None:
        if prompt is not None and prompt.strip():
            # The edited prompt is the whole prompt (the review's fix was shown in it and may have
            # been removed): nothing hidden is added to it, and it is sent exactly as written.
            def edit(j: Job, text: str = prompt.strip()) -> None:
                s = j.slots[index]
                s.prompt, s.feedback, s.prompt_edited = text, "", True

            self.mutate(job_id, edit)
        self.schedule(job_id, [index])

    def retry_failed(self, job_id: str) -> None:
        job = self.get(job_id)
        if job:
            self.schedule(job_id, [s.index for s in job.slots if s.status is SlotStatus.FAILED])

    def restore_version(self, job_id: str, index: int, version: int) -> None:
        def fn(j: Job) -> None:
            s = j.slots[index]
            if 0 <= version < len(s.versions) and not s.status.in_flight:
                s.current = version
                with contextlib.suppress(Refused):
                    slot_event(s, SlotEvent.RESTORE)

        self.mutate(job_id, fn)

    # ------------------------------------------------------------------ the user's own image
    def use_own_image(self, job_id: str, index: int, data: bytes) -> None:
        """A scene image of the user's own, already checked (foxpipe.uploads.validate_upload),
        stored as a new version of the scene through the pipeline's image store and shown at
        once (lifecycle RESTORE): a scene no prompt can make still gets finished. Raises Refused
        while the scene is being made, OSError when the file cannot be stored, StoreError when
        the job cannot be."""
        job = self.get(job_id)
        if job is None:
            raise Refused("This gallery could not be read; nothing was changed.")
        slot = job.slots[index]
        if slot.status.in_flight:
            raise Refused(
                f"Scene {index + 1} is being made right now; wait for it or press Stop first."
            )
        latest = slot.versions[-1] if slot.versions else None
        if latest is not None and latest.path == "upload" and _same_bytes(latest.local_path, data):
            # The same file again (a second click, a browser sending the upload twice): it is
            # this scene's image already; at most it becomes the shown version again.
            again = len(slot.versions) - 1
            if slot.current != again or slot.status is SlotStatus.FAILED:
                self.restore_version(job_id, index, again)
            return
        version = len(slot.versions) + 1
        stored = self.pipeline.store.save(job_id, index, version, data, tags=[job.story.id])
        record = ImageVersion(
            url=stored.url,
            local_path=stored.local_path,
            thumb_path=stored.thumb_path,
            prompt="(an image of your own)",
            model="your upload",
            path="upload",
            uploaded=stored.uploaded,
        )

        def fn(j: Job) -> None:
            s = j.slots[index]
            if s.status.in_flight:
                raise Refused(f"Scene {index + 1} started again meanwhile; nothing was changed.")
            s.versions.append(record)
            s.current = len(s.versions) - 1
            s.upload_error = stored.error
            slot_event(s, SlotEvent.RESTORE)

        self.mutate(job_id, fn)
        log.info(
            "[IMAGE] job %s scene %d: the reviewer's own image is version %d",
            job_id[:6],
            index + 1,
            version,
        )

    def _log_review(self, job_id: str, indexes: list[int], status: str) -> None:
        job = self.get(job_id)
        if job is None:
            return
        pipe = self.pipeline
        for i in indexes:
            try:
                pipe.log.log_image(image_row(job, i, status, 0.0))
            except Exception as e:
                log.warning("[APPROVAL] could not log: %s", type(e).__name__)

    # ------------------------------------------------------------------ continuity
    def wants_check(self, job: Job) -> bool:
        """Whether a new image of this job is checked (and held until its verdict is in)."""
        return checks.mode_of(self.settings, job) != "off"

    def after_image(
        self, job_id: str, index: int, gen: int, status: str = "", cost: float = 0.0
    ) -> bool:
        """An image was stored (run ``gen`` of slot ``index``): check it in the background.
        True when a check started: it writes the image's log row (``status``, ``cost``) with
        the verdict when it ends."""
        return checks.start(self, job_id, index, gen, log_status=status, log_cost=cost)

    def check_again(self, job_id: str, index: int) -> bool:
        """The reviewer's "Check again" on the shown image of a slot."""
        return checks.check_again(self, job_id, index)

    def checks_running(self, job_id: str) -> list[int]:
        """Slots of this job whose continuity check is running in this process."""
        with self._lock:
            return sorted(
                {
                    int(k.split(":")[1])
                    for (jid, k), f in self._work.items()
                    if jid == job_id and k.startswith("check:") and not f.done()
                }
            )

    def slot_running(self, job_id: str, index: int) -> bool:
        with self._lock:
            fut = self._tasks.get(job_id, {}).get(index)
            return fut is not None and not fut.done()

    # ------------------------------------------------------------------ uploads
    def retry_upload(self, job_id: str, index: int) -> concurrent.futures.Future[bool] | None:
        """Upload again the shown image of a slot whose upload failed (it was kept locally).
        Runs on the worker loop, the SDK call in a thread; the future says if it went up."""
        job = self.get(job_id)
        if job is None or not 0 <= index < len(job.slots):
            return None
        slot = job.slots[index]
        img = slot.image
        store = self.pipeline.store
        if img is None or img.uploaded or not can(store, Capability.REUPLOAD):
            return None
        loop = self._ensure_worker()
        key = (job_id, index)
        with self._lock:
            running = self._uploads.get(key)
            if running is not None and not running.done():
                return running
            fut = asyncio.run_coroutine_threadsafe(
                self._reupload(job_id, index, slot.current, img.local_path, job.story.id), loop
            )
            self._uploads[key] = fut
        return fut

    def uploads_running(self, job_id: str) -> list[int]:
        with self._lock:
            return [i for (jid, i), f in self._uploads.items() if jid == job_id and not f.done()]

    async def _reupload(
        self, job_id: str, index: int, current: int, local_path: str, story_id: str
    ) -> bool:
        store: Any = self.pipeline.store
        try:
            stored = await blocking(
                self.pipeline,
                store.reupload,
                job_id,
                index,
                current + 1,
                local_path,
                tags=[story_id],
            )
        except OSError as e:  # the local copy is gone
            stored = None
            error = f"The local copy could not be read ({type(e).__name__})."

        def fn(j: Job) -> None:
            s = j.slots[index]
            if not 0 <= current < len(s.versions) or s.versions[current].local_path != local_path:
                return
            v = s.versions[current]
            if stored is not None and stored.uploaded:
                v.url, v.uploaded = stored.url, True
                if s.current == current:
                    s.upload_error = ""
            elif s.current == current:
                s.upload_error = stored.error if stored is not None else error

        self.mutate(job_id, fn)
        ok = bool(stored and stored.uploaded)
        log.info(
            "[UPLOAD] job %s scene %d re-upload %s",
            job_id[:6],
            index + 1,
            "done" if ok else "failed",
        )
        return ok


async def _after(
    previous: concurrent.futures.Future[Any], factory: Callable[[], Coroutine[Any, Any, Any]]
) -> Any:
    """Wait for ``previous`` to end (however it ends: its outcome is its own), then run.
    Cancelled while waiting (``stop_work``, shutdown): the work before it is cancelled too, as
    it is no longer tracked on its own."""
    waiting = asyncio.wrap_future(previous)
    try:
        await asyncio.wait([waiting])
    except asyncio.CancelledError:
        previous.cancel()
        raise
    if not waiting.cancelled():
        waiting.exception()  # read: its own task logged it; not "never retrieved"
    return await factory()

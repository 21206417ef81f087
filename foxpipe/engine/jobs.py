"""The process-wide job registry and its worker thread.

The registry is the only shared state: the UI reads deep-copied snapshots under the lock;
the worker (one thread running one asyncio loop for every job, so the rate limiter is
shared by all users) writes slot updates through ``mutate``. Every change is also written
to ``<data>/jobs/<id>.json`` atomically, so a restart of the app loses no finished image.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain import prompts
from foxpipe.domain.models import Job, Slot, SlotStatus, Story
from foxpipe.engine.generation import Pipeline, blocking, image_row, run_slot, set_slot
from foxpipe.engine.ratelimit import RateLimiter, job_deadline
from foxpipe.providers.localstore import safe_id

log = logging.getLogger(__name__)

PipelineFactory = Callable[[Settings, RateLimiter], Pipeline]

PERSIST_EVERY = 0.2  # seconds between writes of a changing job

WAITING = (SlotStatus.QUEUED, SlotStatus.REJECTED)  # not started yet (or between retries)


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


class JobRegistry:
    def __init__(
        self,
        settings: Settings,
        pipeline_factory: PipelineFactory | None = None,
        *,
        limiter: RateLimiter | None = None,
        period: float = 60.0,
    ):
        """``limiter`` replaces the one built from the settings; ``period`` is the length
        of the rate window in seconds (60; benchmarks scale it)."""
        self.settings = settings
        self._factory = pipeline_factory
        self._period = period
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, dict[int, concurrent.futures.Future[None]]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._work: dict[tuple[str, str], concurrent.futures.Future[Any]] = {}  # other background work
        self._uploads: dict[tuple[str, int], concurrent.futures.Future[bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pipeline: Pipeline | None = None
        self.limiter: RateLimiter | None = limiter
        self._dirty: set[str] = set()  # jobs changed since they were last written
        self._dirty_event = threading.Event()
        self._write_lock = threading.Lock()  # one writer at a time, so files never go back in time
        self._persister: threading.Thread | None = None
        self.jobs_dir = settings.data_path / "jobs"
        self._budget_file = settings.data_path / "budget.json"

    # ------------------------------------------------------------------ worker
    def _ensure_worker(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._loop is not None:
                return self._loop
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                from foxpipe.providers.registry import image_limits

                if self.limiter is None:
                    rate, cap = image_limits(self.settings)
                    # A 0.5 s guard per minute absorbs network jitter between the client
                    # and the server's clock, so the server never counts R+1.
                    self.limiter = RateLimiter(rate, cap, period=self._period, guard=self._period / 120)
                self._pipeline = self._build_pipeline()
                io = self._pipeline.io = ThreadPoolExecutor(16, thread_name_prefix="foxpipe-io")
                loop.create_task(self._watchdog())
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
            ready.wait(10)
            return loop

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

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the worker thread."""
        with self._lock:
            for job_id in list(self._tasks):
                self._cancel_tasks(job_id, "The app is shutting down.")
            for fut in self._work.values():
                fut.cancel()
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._stop_loop(), loop)
            except RuntimeError:  # the loop is already closed
                pass
            else:
                thread.join(timeout)
        with self._lock:
            persister, self._persister = self._persister, None
        self._dirty_event.set()
        if persister is not None:
            persister.join(timeout)
        self.flush()

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
        """Enforce job deadlines and evict old finished jobs from memory."""
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            ttl = self.settings.job_ttl_hours * 3600
            with self._lock:
                for job_id, job in list(self._jobs.items()):
                    active = self._active(job_id)
                    if active and job.deadline and now > job.deadline:
                        log.info("[IMAGE] job %s ran past its deadline", job_id[:6])
                        self._cancel_tasks(job_id, "The job ran past its deadline. Press Retry to try again.")
                    elif not active and job.done and now - (job.finished_at or job.created) > ttl:
                        del self._jobs[job_id]  # still on disk
                        self._tasks.pop(job_id, None)
                        self._cancel_reason.pop(job_id, None)

    def _active(self, job_id: str) -> bool:
        """Whether any of this job's work is still queued or running (forgets finished work)."""
        tasks = self._tasks.get(job_id)
        if not tasks:
            return False
        for i in [i for i, f in tasks.items() if f.done()]:
            del tasks[i]
        return bool(tasks)

    # ------------------------------------------------------------------ persistence
    def _job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{safe_id(job_id)}.json"

    def _persist(self, job: Job) -> None:
        """Mark the job for writing. A writer thread saves changed jobs every
        PERSIST_EVERY seconds, so no change ever makes the worker loop wait on the disk."""
        with self._lock:
            self._dirty.add(job.id)
            if self._persister is None or not self._persister.is_alive():
                self._persister = threading.Thread(target=self._persist_loop, name="foxpipe-persist", daemon=True)
                self._persister.start()
        self._dirty_event.set()

    def _persist_loop(self) -> None:
        while True:
            self._dirty_event.wait()
            self._dirty_event.clear()
            self.flush()
            with self._lock:
                if self._persister is not threading.current_thread():
                    return  # shut down
            time.sleep(PERSIST_EVERY)  # gather the next changes into one write

    def flush(self) -> None:
        """Write every changed job now (atomic replace per file)."""
        with self._write_lock:
            with self._lock:
                texts = [
                    (jid, json.dumps(self._jobs[jid].to_dict(), ensure_ascii=False))
                    for jid in self._dirty
                    if jid in self._jobs
                ]
                self._dirty.clear()
            for jid, text in texts:
                try:
                    self.jobs_dir.mkdir(parents=True, exist_ok=True)
                    path = self._job_path(jid)
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(text, encoding="utf-8")
                    tmp.replace(path)
                except OSError as e:
                    log.warning("could not save job %s: %s", jid[:6], e)

    def _load(self, job_id: str) -> Job | None:
        try:
            path = self._job_path(job_id)
        except ValueError:
            return None
        if not path.exists():
            return None
        try:
            job = Job.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("job file %s is unreadable", path.name)
            return None
        # Work that was in flight when the app stopped is lost: say so, offer Retry.
        for s in job.slots:
            if s.status.in_flight:
                s.status = SlotStatus.FAILED
                s.error = "Interrupted when the app restarted. Press Retry to make this image."
        if job.video is not None:
            job.video.interrupt("Interrupted when the app restarted. Start it again.")
        return job

    # ------------------------------------------------------------------ reading
    def get(self, job_id: str) -> Job | None:
        """A snapshot of the job (a deep copy), or None for an unknown or malformed id."""
        if not isinstance(job_id, str):
            return None
        loaded = False
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                job = self._load(job_id)
                if job is None:
                    return None
                self._jobs[job_id] = job
                loaded = True
            snap = job.snapshot()
        if loaded and snap.video is not None:
            # Clips the vendor accepted before a restart are polled again, never resubmitted.
            from foxpipe.engine import videojobs

            if videojobs.resume(self, job_id):
                snap = self.get(job_id) or snap
        return snap

    def read(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        """``fn(job)`` under the lock, without copying the whole job; None for an unknown id."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else fn(job)

    def jobs_of(self, owner: str) -> list[Job]:
        with self._lock:
            return [j.snapshot() for j in self._jobs.values() if j.owner == owner]

    def running(self, job_id: str) -> int:
        with self._lock:
            return sum(1 for f in self._tasks.get(job_id, {}).values() if not f.done())

    def progress(self, job_id: str, now: float | None = None) -> Progress | None:
        """Live figures: images done, images per minute achieved against the limit, elapsed
        time and an estimate of the time left that counts the queue shared with other jobs."""
        now = time.time() if now is None else now
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            others = [
                sum(1 for s in j.slots if s.status in WAITING)
                for jid, j in self._jobs.items()
                if jid != job_id and self._active(jid)
            ]
            slots = [(s.status, s.started, [v.seconds for v in s.versions]) for s in job.slots]
            created, started_at, finished_at = job.created, job.started_at, job.finished_at
            seen = [v.seconds for j in self._jobs.values() for s in j.slots for v in s.versions]
        limiter = self.limiter
        rate_limit = limiter.rate if limiter else self.settings.images_per_minute
        period = limiter.period if limiter else self._period
        statuses = [st for st, _, _ in slots]
        done = sum(1 for st in statuses if st.has_image)
        made = sum(len(v) for _, _, v in slots)
        end = finished_at or now
        # Achieved rate: images made over the time since the first request started (at
        # least one window, so a first burst does not read as a rate above the limit).
        rate = made * period / max(end - started_at, period) if started_at and made else 0.0
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
                wait = limiter.estimate_wait(grants) if limiter else grants / max(rate_limit, 1e-6) * period
                cap = limiter.sched.max_concurrent if limiter else self.settings.max_concurrent_images
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
        )

    def _default_latency(self) -> float:
        """Seconds per image before any was measured."""
        if self._pipeline is not None and self._pipeline.images.name == "offline":
            return self.settings.offline_delay
        return min(60.0, self.settings.image_timeout)

    # ------------------------------------------------------------------ writing
    def mutate(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            out = fn(job)
            job.revision += 1
            if job.done and not job.finished_at:
                job.finished_at = time.time()
            self._persist(job)
            return out

    def abort(self, job_id: str, message: str) -> None:
        """Stop a job whose remaining images cannot succeed (no credit, bad key)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.notice = message
            self._cancel_tasks(job_id, message)

    # ------------------------------------------------------------------ cost guard
    def _budget(self) -> dict[str, int]:
        try:
            data = json.loads(self._budget_file.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def images_today(self) -> int:
        with self._lock:
            return int(self._budget().get(date.today().isoformat(), 0))

    def _spend(self, n: int) -> None:
        today = date.today().isoformat()
        data = {today: self.images_today() + n}
        self._budget_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._budget_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._budget_file)

    def _check_guard(self, job: Job, indexes: list[int]) -> None:
        s = self.settings
        if self.pipeline.images.name == "offline":
            return  # the embedded renderer costs nothing
        used = sum(sl.generations for sl in job.slots)
        if used + len(indexes) > s.max_images_per_story:
            raise GuardError(
                f"This story has used {used} of its {s.max_images_per_story} images "
                "(MAX_IMAGES_PER_STORY); nothing more will be generated."
            )
        for i in indexes:
            if job.slots[i].generations > s.max_regenerations_per_image:
                raise GuardError(
                    f"Scene {i + 1} was regenerated {s.max_regenerations_per_image} times "
                    "(MAX_REGENERATIONS_PER_IMAGE); edit its prompt or approve a version."
                )
        today = self.images_today()
        if today + len(indexes) > s.daily_image_budget:
            raise GuardError(
                f"Today's image budget is spent ({today} of {s.daily_image_budget}, DAILY_IMAGE_BUDGET). "
                "It resets at midnight."
            )

    def budget_left(self, job: Job) -> dict[str, int]:
        s = self.settings
        return {
            "story": max(0, s.max_images_per_story - sum(sl.generations for sl in job.slots)),
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
        size: str = "1024x1536",
        references: dict[str, str] | None = None,
        start: bool = True,
    ) -> str:
        slots = [Slot(index=i, scene=sc, prompt=p) for i, (sc, p) in enumerate(zip(story.scenes, prompt_list, strict=True))]
        job = Job(
            story=story,
            slots=slots,
            owner=owner,
            character_sheet=character_sheet,
            image_model=self.pipeline.images.name,
            size=size,
            references=dict(references or {}),
        )
        with self._lock:
            self._check_guard(job, list(range(len(slots))))
            self._jobs[job.id] = job
            self._persist(job)
        if start:
            self.schedule(job.id, list(range(len(slots))))
        return job.id

    def schedule(self, job_id: str, indexes: list[int]) -> None:
        """Queue these slots for (re)generation through the shared limiter."""
        loop = self._ensure_worker()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return
            running = self._tasks.setdefault(job_id, {})
            indexes = [i for i in indexes if i not in running or running[i].done()]
            if not indexes:
                return
            self._check_guard(job, indexes)
            if self.pipeline.images.name != "offline":
                self._spend(len(indexes))
            job.cancelled = False
            job.finished_at = 0.0
            for i in indexes:
                slot = job.slots[i]
                slot.status = SlotStatus.QUEUED
                slot.error = ""
                slot.generations += 1
                running[i] = asyncio.run_coroutine_threadsafe(self._run(job_id, i, slot.generations), loop)
            job.revision += 1
            self._persist(job)
            self._extend_deadlines()

    def _extend_deadlines(self) -> None:
        """Give every active job enough time for its unfinished images, with the work of
        every other job sharing the limiter counted ahead of it (a new job slows the
        others down: they share the account's rate). Deadlines only ever move later."""
        limiter = self.limiter
        assert limiter is not None
        now = time.time()
        wait = limiter.estimate_wait(1)
        left = {
            jid: sum(1 for s in j.slots if s.status.in_flight)
            for jid, j in self._jobs.items()
            if self._active(jid)
        }
        total = sum(left.values())
        for jid, n in left.items():
            budget = job_deadline(n, limiter.rate, self.settings.image_timeout, queued_ahead=total - n,
                                  period=limiter.period, retries=self.settings.image_retries, wait=wait)
            job = self._jobs[jid]
            if now + budget > job.deadline:
                job.deadline = now + budget
                self._persist(job)

    async def _run(self, job_id: str, index: int, gen: int) -> None:
        try:
            await run_slot(self, self.pipeline, job_id, index)
        except asyncio.CancelledError:
            reason = self._cancel_reason.get(job_id, "Stopped.")
            self._fail(job_id, index, reason, gen)
            raise
        except Exception as e:  # never leave a slot hanging
            log.exception("[IMAGE] scene %d crashed", index + 1)
            self._fail(job_id, index, f"Internal error ({type(e).__name__}). Press Retry.", gen)

    def _fail(self, job_id: str, index: int, reason: str, gen: int | None = None) -> None:
        """Fail a slot that is still in flight (on run ``gen``, when given)."""
        set_slot(self, job_id, index, gen, status=SlotStatus.FAILED, error=reason, finished=time.time())

    def _cancel_tasks(self, job_id: str, reason: str) -> None:
        with self._lock:
            self._cancel_reason[job_id] = reason
            tasks = self._tasks.get(job_id, {})
            job = self._jobs.get(job_id)

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
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job.cancelled = True
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

    def submit(self, job_id: str, key: str, factory: Callable[[], Coroutine[Any, Any, Any]]) -> bool:
        """Run other background work of a job (e.g. its video) on the worker loop, at most
        one per (job, key). Returns False when that work is already running."""
        loop = self._ensure_worker()
        with self._lock:
            fut = self._work.get((job_id, key))
            if fut is not None and not fut.done():
                return False
            self._work[(job_id, key)] = asyncio.run_coroutine_threadsafe(factory(), loop)
            return True

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
    def approve(self, job_id: str, indexes: list[int]) -> int:
        def fn(j: Job) -> int:
            n = 0
            for i in indexes:
                if j.slots[i].status is SlotStatus.READY:
                    j.slots[i].status = SlotStatus.APPROVED
                    n += 1
            return n

        n = self.mutate(job_id, fn) or 0
        self._log_review(job_id, indexes, "approved")
        return n

    def approve_all(self, job_id: str) -> int:
        job = self.get(job_id)
        return self.approve(job_id, list(range(len(job.slots)))) if job else 0

    def reject(self, job_id: str, index: int, reasons: list[str] | None = None, note: str = "") -> None:
        """Reject an image: its feedback becomes a prompt change, and it is regenerated."""
        job = self.get(job_id)
        if job is None:
            return
        self._log_review(job_id, [index], "rejected")

        def fn(j: Job) -> None:
            s = j.slots[index]
            s.feedback = prompts.feedback_text(reasons or [], note)
            s.status = SlotStatus.REJECTED

        self.mutate(job_id, fn)
        try:
            self.schedule(job_id, [index])
        except GuardError:
            self.mutate(job_id, lambda j: setattr(j.slots[index], "status", SlotStatus.READY))
            raise

    def retry(self, job_id: str, index: int, prompt: str | None = None) -> None:
        if prompt is not None and prompt.strip():
            self.mutate(job_id, lambda j: setattr(j.slots[index], "prompt", prompt.strip()))
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
                s.status = SlotStatus.READY

        self.mutate(job_id, fn)

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
        if img is None or img.uploaded or not hasattr(store, "reupload"):
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

    async def _reupload(self, job_id: str, index: int, current: int, local_path: str, story_id: str) -> bool:
        store: Any = self.pipeline.store
        try:
            stored = await blocking(
                self.pipeline, store.reupload, job_id, index, current + 1, local_path, tags=[story_id]
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
        log.info("[UPLOAD] job %s scene %d re-upload %s", job_id[:6], index + 1, "done" if ok else "failed")
        return ok

"""The process-wide job registry and its worker thread.

The registry is the only shared state: the UI reads deep-copied snapshots under the lock;
the worker (one thread running one asyncio loop for every job, so the rate limiter is
shared by all users) writes slot updates through ``mutate``. Every change is also written
to ``<data>/jobs/<id>.json`` atomically, so a restart of the app loses no finished image.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from foxpipe import prompts
from foxpipe.config import Settings
from foxpipe.generation import Pipeline, blocking, image_row, run_slot, set_slot
from foxpipe.models import Job, Slot, SlotStatus, Story
from foxpipe.providers.localstore import safe_id
from foxpipe.ratelimit import RateLimiter, job_deadline

log = logging.getLogger(__name__)

PipelineFactory = Callable[[Settings, RateLimiter], Pipeline]


class GuardError(Exception):
    """The cost guard refused: nothing was spent."""


class JobRegistry:
    def __init__(self, settings: Settings, pipeline_factory: PipelineFactory | None = None):
        self.settings = settings
        self._factory = pipeline_factory
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._tasks: dict[str, dict[int, concurrent.futures.Future[None]]] = {}
        self._cancel_reason: dict[str, str] = {}
        self._work: dict[tuple[str, str], concurrent.futures.Future[Any]] = {}  # other background work
        self._uploads: dict[tuple[str, int], concurrent.futures.Future[bool]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pipeline: Pipeline | None = None
        self.limiter: RateLimiter | None = None
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
                from foxpipe.services import image_limits

                self.limiter = RateLimiter(*image_limits(self.settings))
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
        from foxpipe.services import build_pipeline

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
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    async def _watchdog(self) -> None:
        """Enforce job deadlines and evict old finished jobs from memory."""
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            ttl = self.settings.job_ttl_hours * 3600
            with self._lock:
                for job_id, job in list(self._jobs.items()):
                    busy = self.running(job_id) > 0
                    if busy and job.deadline and now > job.deadline:
                        self._cancel_tasks(job_id, "The job ran past its deadline. Press Retry to try again.")
                    elif not busy and job.done and now - (job.finished_at or job.created) > ttl:
                        del self._jobs[job_id]  # still on disk
                        self._tasks.pop(job_id, None)
                        self._cancel_reason.pop(job_id, None)

    # ------------------------------------------------------------------ persistence
    def _job_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{safe_id(job_id)}.json"

    def _persist(self, job: Job) -> None:
        try:
            self.jobs_dir.mkdir(parents=True, exist_ok=True)
            path = self._job_path(job.id)
            tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(job.to_dict(), ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
        except OSError as e:
            log.warning("could not save job %s: %s", job.id[:6], e)

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
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                job = self._load(job_id)
                if job is None:
                    return None
                self._jobs[job_id] = job
            return job.snapshot()

    peek = get

    def jobs_of(self, owner: str) -> list[Job]:
        with self._lock:
            return [j.snapshot() for j in self._jobs.values() if j.owner == owner]

    def running(self, job_id: str) -> int:
        with self._lock:
            return sum(1 for f in self._tasks.get(job_id, {}).values() if not f.done())

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
            queued_ahead = self.limiter.waiting if self.limiter else 0
            job.deadline = max(
                job.deadline,
                time.time()
                + job_deadline(len(indexes), self.limiter.sched.rate, self.settings.image_timeout, queued_ahead),
            )
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
            for i, fut in tasks.items():
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

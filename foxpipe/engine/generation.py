"""Async generation of one slot: limiter, timeout, retries with backoff and jitter,
progressively safer prompts after policy blocks, storage off the event loop."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from foxpipe.config import Settings
from foxpipe.domain import prompts, structures
from foxpipe.domain.lifecycle import Refused, SlotEvent, slot_event
from foxpipe.domain.models import ImageVersion, Job
from foxpipe.engine.ratelimit import RateLimiter, sending
from foxpipe.engine.retry import MAX_RETRY_AFTER, backoff_delay
from foxpipe.providers.base import Capability, ImageModel, ImageStore, PromptLog, ProviderError, can

log = logging.getLogger(__name__)

# Errors that make every other image of the job pointless: stop the job, say why.
ABORT_CODES = {"insufficient_quota", "invalid_api_key", "no_model_access"}

# Rough US$ per image by quality (portrait), for the cost estimate.
COST_PER_IMAGE = {"low": 0.013, "medium": 0.05, "high": 0.2, "auto": 0.05}


@dataclass
class Pipeline:
    images: ImageModel
    store: ImageStore
    log: PromptLog
    limiter: RateLimiter
    settings: Settings
    backoff_base: float = 1.0
    io: Executor | None = None  # threads for slow blocking I/O (uploads, log writes)
    backoff_cap: float = 30.0
    vision: Any = None  # the continuity checker (a VisionCheck); None: chosen from the settings

    def cost_per_image(self) -> float:
        if can(self.images, Capability.FREE):
            return 0.0
        return COST_PER_IMAGE.get(self.settings.openai_image_quality, 0.05)


async def blocking(pipe: Pipeline, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run slow blocking I/O on the pipeline's own threads. Uploads retrying against a service
    that is down must never fill the event loop's default executor, which new connections
    need for their DNS lookups."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pipe.io, functools.partial(fn, *args, **kwargs))


class JobBook(Protocol):
    """What generation needs from the engine."""

    closing: bool  # shutting down: send nothing new

    def read(self, job_id: str, fn: Callable[[Job], Any]) -> Any: ...

    def mutate(self, job_id: str, fn: Callable[[Job], Any]) -> Any: ...

    def abort(self, job_id: str, message: str) -> None: ...

    def started_request(self) -> None: ...


def slot_step(
    book: JobBook, job_id: str, index: int, event: SlotEvent, run: int | None, **changes: Any
) -> bool:
    """Apply one lifecycle event of this slot's run (and ``changes`` with it) through the
    store; False when the lifecycle refused it (the run was stopped or replaced)."""

    def fn(j: Job) -> bool:
        s = j.slots[index]
        try:
            slot_event(s, event, run=run)
        except Refused:
            return False
        for k, v in changes.items():
            setattr(s, k, v)
        if event is SlotEvent.START and not j.started_at:
            j.started_at = s.started
        return True

    return bool(book.mutate(job_id, fn))


def _record_image(
    job: Job, index: int, run: int, version: ImageVersion, upload_error: str, checking: bool = False
) -> bool:
    s = job.slots[index]
    try:
        slot_event(s, SlotEvent.IMAGE, run=run)
    except Refused:
        # Stopped or replaced while the image was being made: keep the paid-for image as a
        # version the reviewer can restore, without changing the slot's status.
        s.versions.append(version)
        return False
    s.versions.append(version)
    s.current = len(s.versions) - 1
    s.upload_error = upload_error
    s.checking = checking  # continuity: not approvable until its check ends
    if not job.first_image_at:
        job.first_image_at = s.finished
    return True


def image_row(job: Job, index: int, status: str, cost: float) -> dict[str, Any]:
    slot = job.slots[index]
    img = slot.image
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "story_id": job.story.id,
        "job_id": job.id,
        "scene": index + 1,
        "scene_text": slot.scene.text,
        "prompt": img.prompt if img else slot.prompt,
        "model": img.model if img else job.image_model,
        "image_url": img.url if img else "",
        "status": status,
        "attempts": slot.attempts,
        "seconds": round(img.seconds, 2) if img else "",
        "cost_usd": round(cost, 4),
        "path": img.path if img else "",
        **_verdict_fields(img),
    }


def _verdict_fields(img: ImageVersion | None) -> dict[str, Any]:
    """The continuity verdict's columns (empty until the image is checked)."""
    from foxpipe.domain.continuity import Verdict
    from foxpipe.engine.continuity import log_fields

    fields = log_fields(Verdict.from_dict(img.verdict) if img is not None and img.verdict else None)
    fields["auto_fix"] = bool(img.auto_fix) if img is not None else ""
    return fields


async def log_safely(pipe: Pipeline, row: dict[str, Any]) -> None:
    """Write one image row. The slot already shows its outcome when this runs, so an engine
    that stops at that moment (its tasks are cancelled) still waits for the row: a paid
    image is never left out of the log."""
    loop = asyncio.get_running_loop()
    write = loop.run_in_executor(pipe.io, functools.partial(pipe.log.log_image, row))
    cancelled = False
    while not write.done():  # a stop can cancel the task more than once (the job, then the loop)
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            cancelled = True  # the row goes in first, then the task stops as asked
        except Exception:
            break
    if cancelled:
        raise asyncio.CancelledError
    try:
        write.result()
    except Exception as e:  # the log never breaks the flow
        log.warning("[SHEETS] could not log image row: %s", type(e).__name__)


def _reference_path(job: Job, scene_number: int) -> str:
    form = structures.form_for(job.story.answers, scene_number)
    return job.references.get(form) or job.references.get("base") or ""


def _read_reference(path: str) -> list[bytes] | None:
    try:
        return [Path(path).read_bytes()]
    except OSError:
        return None


async def run_slot(
    book: JobBook, pipe: Pipeline, job_id: str, index: int, run: int | None = None
) -> None:
    """One run of one slot. ``run`` is the run number the engine gave it when it was queued
    (read from the slot when not given): every update it makes carries it, so a run that
    was stopped or replaced can never change the slot again."""
    # Only what this slot needs, read under the registry's lock (no copy of the whole job).
    facts = book.read(
        job_id,
        lambda j: (
            copy.deepcopy(j.slots[index]),
            j.character_sheet,
            j.size,
            j.story.id,
            _reference_path(j, index + 1) if can(pipe.images, Capability.REFERENCES) else "",
        ),
    )
    if facts is None:
        return
    slot, sheet, size, story_id, ref_path = facts
    gen = slot.generations if run is None else run  # updates from older runs are refused
    settings = pipe.settings
    refs = await asyncio.to_thread(_read_reference, ref_path) if ref_path else None
    base_prompt = prompts.with_feedback(slot.prompt, slot.feedback)
    level = 0
    max_attempts = 1 + max(0, settings.image_retries)  # the first try, then the retries
    message = ""
    for attempt in range(1, max_attempts + 1):
        sent = prompts.sanitize_prompt(
            base_prompt, level, sheet, slot.scene.text, edited=slot.prompt_edited
        )
        if (
            level >= 2 and slot.feedback and not slot.prompt_edited
        ):  # the shortest prompt keeps the fix
            sent = prompts.with_feedback(sent, prompts.sanitize(slot.feedback))
        err: ProviderError | None = None
        async with pipe.limiter.slot(job_id) as stamp:
            if book.closing:
                return  # the app is shutting down: this image stays queued and starts after the restart
            if not slot_step(
                book, job_id, index, SlotEvent.START, gen, attempts=attempt, policy_level=level
            ):
                return  # stopped (Stop, deadline) or replaced while it waited: send nothing
            book.started_request()
            t0 = time.monotonic()
            try:
                # Counted in the window from when the request really leaves (see ratelimit.sending).
                with sending(pipe.limiter, stamp) as sent_at:
                    async with asyncio.timeout(settings.image_timeout):
                        result = await pipe.images.generate(
                            sent, size, scene_number=index + 1, references=refs
                        )
            except TimeoutError:
                err = ProviderError(
                    f"The image request timed out after {settings.image_timeout:.0f} s."
                )
            except ProviderError as e:
                err = e
                # Pause everyone before this place is handed to the next request.
                wait = min(e.retry_after, MAX_RETRY_AFTER) if e.retry_after else e.retry_after
                if e.code == "rate_limit_exceeded":
                    pipe.limiter.rejected(wait, sent_at[0])
                elif wait:
                    pipe.limiter.pause_for(wait)
            except Exception as e:  # an SDK surprise: retry, but say what it was
                err = ProviderError(
                    f"Unexpected error from the image service ({type(e).__name__})."
                )
            seconds = time.monotonic() - t0
        if err is None:
            if result.rate_hint:
                h = result.rate_hint
                pipe.limiter.hint(h.get("remaining"), h.get("reset"), h.get("limit"), age=seconds)
            version = len(slot.versions) + 1
            stored = await blocking(
                pipe, pipe.store.save, job_id, index, version, result.data, tags=[story_id]
            )

            version_record = ImageVersion(
                url=stored.url,
                local_path=stored.local_path,
                thumb_path=stored.thumb_path,
                prompt=sent,
                model=result.model,
                path=result.path,
                seconds=seconds,
                usage=result.usage,
                uploaded=stored.uploaded,
                auto_fix=bool(gen and slot.auto_fix_run == gen),
            )
            wants = getattr(book, "wants_check", None)  # continuity: fn(job) -> bool

            def record(
                j: Job, v: ImageVersion = version_record, e: str = stored.error, w: Any = wants
            ) -> bool:
                return _record_image(j, index, gen, v, e, checking=w is not None and w(j))

            recorded = book.mutate(job_id, record)
            log.info(
                "[IMAGE] job %s scene %d ready in %.1fs (attempt %d)",
                job_id[:6],
                index + 1,
                seconds,
                attempt,
            )
            status = "regenerated" if version > 1 else "ready"
            # Continuity: the check starts in the background (never delaying other images) and
            # writes this image's log row, with its verdict, when it ends.
            after_image = getattr(book, "after_image", None)
            if not (
                recorded
                and after_image is not None
                and after_image(job_id, index, gen, status, pipe.cost_per_image())
            ):
                await _log_row(book, pipe, job_id, index, status, pipe.cost_per_image())
            return

        message = settings.redact(err.message)
        log.info(
            "[IMAGE] job %s scene %d attempt %d failed: %s", job_id[:6], index + 1, attempt, message
        )
        if err.kind == "fatal":
            if err.code in ABORT_CODES:
                book.abort(job_id, message)
            break
        if err.kind == "policy":
            if slot.prompt_edited:  # never reworded behind the reviewer's back: they decide
                message = (
                    "Blocked by the content policy as written. Edit the prompt again, "
                    f"or use an image of your own: {message}"
                )
                break
            if level >= prompts.POLICY_LEVELS - 1:
                message = f"Blocked by the content policy even with the safest prompt: {message}"
                break
            level += 1
        if attempt < max_attempts:
            slot_step(
                book,
                job_id,
                index,
                SlotEvent.WAIT,
                gen,
                error=f"Attempt {attempt} failed ({message}); trying again.",
            )
            if err.kind != "policy":
                await asyncio.sleep(
                    backoff_delay(attempt, pipe.backoff_base, pipe.backoff_cap, err.retry_after)
                )
    else:
        message = f"Gave up after {max_attempts} attempts: {message}"

    slot_step(book, job_id, index, SlotEvent.FAIL, gen, error=message)
    await _log_row(book, pipe, job_id, index, "failed", 0.0)


async def _log_row(
    book: JobBook, pipe: Pipeline, job_id: str, index: int, status: str, cost: float
) -> None:
    row = book.read(job_id, lambda j: image_row(j, index, status, cost))
    if row is not None:
        await log_safely(pipe, row)


def cost_estimate(job: Job, per_image: float) -> tuple[int, float]:
    """(images made for this story, estimated US$): every version of every scene plus the
    approved reference images."""
    made = sum(len(s.versions) for s in job.slots) + max(job.reference_count, len(job.references))
    return made, made * per_image

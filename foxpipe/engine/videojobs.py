"""The story video of a job, made in the background on the registry's worker loop.

- Local slideshow (always available): the approved images, each with a slow pan/zoom,
  crossfades, optional burned-in captions, and an ``.srt``.
- Kling or Hailuo (when keyed): each chosen scene becomes a clip (submit -> poll ->
  collect) through a rate limiter of its own; clips appear as they finish; a failed clip
  can be retried alone. When no clip is in flight, the story video is assembled: clips
  where they exist, pan/zoom stills for the other scenes.
- Never paid twice: the vendor's task id is stored on the clip the moment the vendor
  returns it; after that the clip is only polled (after a restart too: ``resume``), an
  expired download link is fetched again from the task, and only Retry on a failed clip
  submits it again. Each accepted task adds its price to ``Video.spent_usd``.

The UI calls ``start``/``retry_clip`` and reads ``job.video`` from registry snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from foxpipe import export
from foxpipe.config import Settings
from foxpipe.domain import structures
from foxpipe.domain.lifecycle import Refused, VideoStatus, clip_event, video_event
from foxpipe.domain.models import Clip, ClipStatus, Job, Video
from foxpipe.engine import shortjobs
from foxpipe.engine.generation import blocking, image_row, log_safely
from foxpipe.engine.jobs import JobRegistry, storage_message
from foxpipe.engine.ratelimit import RateLimiter
from foxpipe.engine.retry import backoff_delay
from foxpipe.media.motion import clip_prompt_hint
from foxpipe.providers import slideshow
from foxpipe.providers.base import ProviderError
from foxpipe.providers.hailuo import HailuoClient
from foxpipe.providers.kling import KlingClient
from foxpipe.providers.video_prices import PRICES_CHECKED
from foxpipe.providers.videobase import (
    ClipMaker,
    ClipStore,
    HostedClipStore,
    ImageInput,
    LocalClipStore,
    collect,
    image_input,
)
from foxpipe.store import StoreError

log = logging.getLogger(__name__)

SLIDESHOW = "slideshow"
INTERRUPTED = "Interrupted when the app restarted. Start it again."
VIDEO_KEY = "video"
AMBIGUOUS = {
    "timeout",
    "network",
}  # a submission that may have reached the vendor is not sent again


@dataclass
class ProviderChoice:
    key: str
    label: str
    cost_per_clip: float
    clip_seconds: float
    model: str = ""
    references: bool = False  # the model takes the hero sheet with the frame
    price_note: str = ""  # where the price comes from, with the date it was checked


def providers(settings: Settings) -> list[ProviderChoice]:
    """The local slideshow always; Kling and Hailuo when their keys are set."""
    out = [ProviderChoice(SLIDESHOW, "Local slideshow (free, made on this machine)", 0.0, 0.0)]
    for live, cls, override in (
        (settings.kling_live, KlingClient, settings.kling_cost_per_clip),
        (settings.hailuo_live, HailuoClient, settings.hailuo_cost_per_clip),
    ):
        if live:
            m = cls(settings)  # opens no connection until it is used
            note = (
                "your price setting"
                if override
                else f"price table checked {PRICES_CHECKED}{', an estimate' if m.quote.estimate else ''}"
            )
            out.append(
                ProviderChoice(
                    m.name,
                    f"{m.label} · {m.model}",
                    m.cost_per_clip,
                    m.clip_seconds,
                    m.model,
                    m.takes_references,
                    note,
                )
            )
    return out


def clip_cost(settings: Settings, provider: str) -> float:
    """US$ one clip of this provider costs (what a Retry charges)."""
    return next((p.cost_per_clip for p in providers(settings) if p.key == provider), 0.0)


def clip_maker(settings: Settings, name: str) -> ClipMaker:
    if name == "kling":
        return KlingClient(settings)
    if name == "hailuo":
        return HailuoClient(settings)
    raise ValueError(f"unknown video provider {name!r}")


def clip_store(settings: Settings) -> ClipStore:
    """Where clips and videos are kept: local files, and Cloudinary too when it is set."""
    if settings.cloudinary_live:
        from foxpipe.providers.registry import image_store

        return HostedClipStore(settings.data_path, image_store(settings))
    return LocalClipStore(settings.data_path)


def host_video(reg: JobRegistry, job_id: str) -> str:
    """Upload the finished story video (and its subtitles) when a host is set; '' or why
    not. The local file stays; the job records the hosted URL."""
    store = clip_store(reg.settings)
    job = reg.get(job_id)
    if (
        not isinstance(store, HostedClipStore)
        or job is None
        or job.video is None
        or not job.video.path
    ):
        return ""
    path = job.video.path
    url, error = store.host_video(job_id, path)

    def fn(j: Job) -> None:
        if j.video is not None and j.video.path == path:
            if url:
                j.video.url, j.video.uploaded, j.video.upload_error = url, True, ""
            else:
                j.video.upload_error = error

    reg.mutate(job_id, fn)
    return error


def estimate(settings: Settings, provider: str, n_scenes: int) -> float:
    """US$ the provider would charge for n clips (0 for the slideshow)."""
    for p in providers(settings):
        if p.key == provider:
            return round(p.cost_per_clip * n_scenes, 2)
    return 0.0


# ---------------------------------------------------------------- starting work
def start(
    reg: JobRegistry,
    job_id: str,
    provider: str = SLIDESHOW,
    scenes: list[int] | None = None,
    seconds_per_scene: float = 4.0,
    captions: bool = True,
) -> str:
    """Start the story video. Returns '' or why it did not start."""
    job = reg.get(job_id)
    if job is None:
        return "This gallery no longer exists."
    if not job.all_approved:
        return "Approve all the images first."
    if job.video is not None and job.video.running:
        return "The video is already being made."
    if provider != SLIDESHOW and provider not in {p.key for p in providers(reg.settings)}:
        return "That video service is not configured."
    chosen = sorted(
        {
            i
            for i in (scenes if scenes is not None else range(len(job.slots)))
            if 0 <= i < len(job.slots)
        }
    )
    if provider != SLIDESHOW and not chosen:
        return "Pick at least one scene to animate."
    video = Video(
        provider=provider,
        scenes=chosen if provider != SLIDESHOW else [],
        seconds_per_scene=max(0.2, float(seconds_per_scene)),
        captions=bool(captions),
        stage="Starting…",
        started=time.time(),
        estimate_usd=estimate(reg.settings, provider, len(chosen))
        if provider != SLIDESHOW
        else 0.0,
        clips=[Clip(index=i) for i in chosen] if provider != SLIDESHOW else [],
    )
    video_event(video, VideoStatus.RUNNING)  # every status change through the lifecycle

    def begin(j: Job) -> bool:  # checked again in the transaction: two clicks, one video
        if j.video is not None and j.video.running:
            return False
        j.video = video
        return True

    try:
        if not reg.mutate(job_id, begin):
            return "The video is already being made."
    except StoreError as e:  # never marked as started: nothing can hang at "Starting…"
        return f"The video could not be started: {e.message}"
    log.info("[VIDEO] job %s: %s, %d scenes to animate", job_id[:6], provider, len(video.clips))
    if provider == SLIDESHOW:
        reg.submit(job_id, VIDEO_KEY, lambda: _assemble(reg, job_id), after=True)
    else:
        # ``after``: the last video's tasks may still be finishing after storing their end.
        for i in chosen:
            reg.submit(
                job_id, f"clip{i}", functools.partial(_clip_task, reg, job_id, i), after=True
            )
    return ""


def retry_clip(reg: JobRegistry, job_id: str, index: int) -> str:
    job = reg.get(job_id)
    if job is None or job.video is None or job.video.provider == SLIDESHOW:
        return "There is no clip to retry."
    clip = job.video.clip(index)
    if clip is None or clip.status is not ClipStatus.FAILED:
        return "Only a failed clip can be retried."

    def fn(j: Job) -> bool:
        if j.video is None:
            return False
        c = j.video.clip(index)
        if c is None or c.status is not ClipStatus.FAILED:
            return False  # a teammate's Retry came first: one submission, not two
        try:
            clip_event(c, ClipStatus.QUEUED)  # Retry: the only way to submit it again
        except Refused:
            return False
        j.video.error = ""
        return True

    if not reg.mutate(job_id, fn):
        return "This clip is being made again already."
    # The failed attempt's task may still be finishing (it stored its end first): run after it.
    reg.submit(job_id, f"clip{index}", lambda: _clip_task(reg, job_id, index), after=True)
    return ""


# ---------------------------------------------------------------- clips
_limiters: weakref.WeakKeyDictionary[JobRegistry, dict[str, RateLimiter]] = (
    weakref.WeakKeyDictionary()
)
_assembly_locks: weakref.WeakKeyDictionary[JobRegistry, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)
_made_from: weakref.WeakKeyDictionary[JobRegistry, dict[str, tuple[tuple[int, str], ...]]] = (
    weakref.WeakKeyDictionary()
)


def _limiter(reg: JobRegistry, maker: ClipMaker) -> RateLimiter:
    """One limiter per provider for the whole app, like the image limiter."""
    per = _limiters.setdefault(reg, {})
    if maker.name not in per:
        per[maker.name] = RateLimiter(maker.creates_per_minute, maker.max_concurrent)
    return per[maker.name]


def _set_clip(
    reg: JobRegistry, job_id: str, index: int, status: ClipStatus | None = None, **changes: Any
) -> None:
    """Change a clip; a new status goes through the lifecycle (a refused one changes nothing)."""

    def fn(j: Job) -> None:
        c = j.video.clip(index) if j.video else None
        if c is not None:
            if status is not None and status is not c.status or status is ClipStatus.QUEUED:
                try:
                    clip_event(c, status)
                except Refused as e:
                    log.info("[VIDEO] %s", e.reason)
                    return
            for k, v in changes.items():
                setattr(c, k, v)
            _update_progress(j.video)

    reg.mutate(job_id, fn)


def _update_progress(v: Video | None) -> None:
    if v is None or not v.clips:
        return
    done = sum(1 for c in v.clips if not c.status.in_flight)
    v.progress = 0.9 * done / len(v.clips)
    v.stage = (
        f"{sum(1 for c in v.clips if c.status is ClipStatus.READY)} of {len(v.clips)} clips ready"
    )


def clip_prompt(job: Job, index: int, references: bool = False) -> str:
    scene = job.slots[index].scene
    hint = clip_prompt_hint(scene.beat)  # the same beat grammar as the slideshow's camera
    if references:
        return (
            f"Gentle cinematic motion for this illustrated story scene. {scene.text} {hint} "
            "The first image is the scene: keep its composition. The other image is the hero's reference "
            "sheet: keep the hero exactly on-model (look, colours, markings) and the art style; smooth camera movement."
        )
    return (
        f"Gentle cinematic motion for this illustrated story scene. {scene.text} {hint} "
        "Keep the character's look, colours and art style exactly as in the image; smooth camera movement."
    )


def resume(reg: JobRegistry, job_id: str) -> int:
    """Poll again the clips the vendor accepted before a restart (they have a task id);
    nothing is submitted. Returns how many clips are being collected."""
    job = reg.get(job_id)
    if job is None or job.video is None or job.video.provider == SLIDESHOW:
        return 0
    n = 0
    for c in job.video.clips:
        key = f"clip{c.index}"
        if (
            c.status is ClipStatus.SUBMITTED
            and c.task_id
            and not reg.busy(job_id, key)
            and reg.submit(job_id, key, functools.partial(_clip_task, reg, job_id, c.index))
        ):
            n += 1
    if n:
        log.info("[VIDEO] job %s: collecting %d clips submitted before the restart", job_id[:6], n)
    return n


def resume_all(reg: JobRegistry) -> int:
    """At start-up: collect the clips the vendor accepted before the app stopped, for every
    stored job (also those nobody opens). Returns how many clips are being collected."""
    n = 0
    for job in reg.store.jobs_where():
        v = job.video
        if (
            v is None
            or v.provider == SLIDESHOW
            or not any(c.task_id and c.status.in_flight for c in v.clips)
        ):
            continue
        # Clips this process is collecting now are not set back (their READY would be
        # refused): which ones, and the change, under the registry's lock, which work of a
        # job is started under (as the images' recovery does).
        with reg.decision():
            busy = {c.index for c in v.clips if reg.busy(job.id, f"clip{c.index}")}
            reg.mutate(job.id, functools.partial(_interrupt_video, keep=busy))
        n += resume(reg, job.id)
    return n


def _interrupt_video(j: Job, keep: set[int]) -> None:
    if j.video is not None:
        j.video.interrupt(INTERRUPTED, keep)


def hero_references(job: Job, index: int) -> list[str]:
    """The approved hero sheet for this scene (its structure says which form it shows)."""
    form = structures.form_for(job.story.answers, index + 1)
    path = job.references.get(form) or job.references.get("base") or ""
    return [path] if path and Path(path).exists() else []


async def _clip_task(reg: JobRegistry, job_id: str, index: int) -> None:
    try:
        await _make_clip(reg, job_id, index)
    except asyncio.CancelledError:
        # A clip the vendor accepted is still being made (and paid for): keep its task id
        # and status, so the next start of the app collects it. Anything else stopped.
        def fn(j: Job) -> None:
            c = j.video.clip(index) if j.video else None
            if c is None or not c.status.in_flight:
                return
            try:
                if c.task_id:
                    clip_event(c, ClipStatus.SUBMITTED)
                    c.error = ""
                else:
                    clip_event(c, ClipStatus.FAILED)
                    c.error, c.finished = "Stopped.", time.time()
            except Refused:
                return
            _update_progress(j.video)

        reg.mutate(job_id, fn)
        raise
    except Exception as e:  # a clip never hangs
        log.exception("[VIDEO] clip %d crashed", index + 1)
        _set_clip(
            reg,
            job_id,
            index,
            status=ClipStatus.FAILED,
            error=f"Internal error ({type(e).__name__}). Press Retry.",
            finished=time.time(),
        )
    await _after_clip(reg, job_id)


def _submitted(reg: JobRegistry, job_id: str, index: int, task_id: str, cost: float) -> None:
    """Store the vendor's task id at once, and what the task costs."""

    def fn(j: Job) -> None:
        c = j.video.clip(index) if j.video else None
        if c is None or j.video is None:
            return
        try:
            clip_event(c, ClipStatus.SUBMITTED, task_id=task_id)
        except Refused as e:
            log.info("[VIDEO] %s", e.reason)
            return
        c.error = ""
        c.submissions += 1
        c.cost_usd = round(c.cost_usd + cost, 4)
        j.video.spent_usd = round(sum(x.cost_usd for x in j.video.clips), 4)
        _update_progress(j.video)

    reg.mutate(job_id, fn)


async def _make_clip(reg: JobRegistry, job_id: str, index: int) -> None:
    job = reg.get(job_id)
    if job is None or job.video is None:
        return
    settings = reg.settings
    clip = job.video.clip(index)
    task_id = clip.task_id if clip is not None and clip.status.in_flight else ""
    maker = clip_maker(settings, job.video.provider)
    limiter = _limiter(reg, maker)
    attempts = max(1, settings.clip_retries)
    message = ""
    result: tuple[bytes, str] | None = None
    try:
        async with asyncio.timeout(settings.clip_timeout):
            if task_id:  # accepted before a restart: the vendor is making it, only collect it
                try:
                    result = await _poll_collect(reg, maker, job_id, index, task_id)
                except ProviderError as e:
                    message = settings.redact(e.message)
            else:
                result, message = await _submit_and_collect(
                    reg, maker, limiter, job, index, attempts
                )
            if result is not None:
                await _clip_ready(reg, maker, job_id, index, *result)
                return
    except TimeoutError:
        snap = reg.get(job_id)
        c = snap.video.clip(index) if snap is not None and snap.video is not None else None
        message = f"{maker.label} took longer than {settings.clip_timeout:.0f} s for this clip." + (
            " It may still finish there; Retry submits it again and is charged again."
            if c is not None and c.task_id
            else ""
        )
    finally:
        await maker.aclose()
    _set_clip(reg, job_id, index, status=ClipStatus.FAILED, error=message, finished=time.time())
    snap = reg.get(job_id)
    if snap is not None:
        row = image_row(snap, index, "clip failed", 0.0)
        row.update(model=maker.name, path=maker.name, image_url="")
        await log_safely(reg.pipeline, row)


async def _submit_and_collect(
    reg: JobRegistry, maker: ClipMaker, limiter: RateLimiter, job: Job, index: int, attempts: int
) -> tuple[tuple[bytes, str] | None, str]:
    """Submit the clip (retrying only a submission the vendor surely did not accept), store
    the task id at once, then collect the clip while holding the provider's slot (the
    vendor limits tasks running at once). Returns ((bytes, link), '') or (None, why)."""
    settings, job_id = reg.settings, job.id
    img = job.slots[index].image
    if img is None:
        return None, "This scene has no image."
    size = slideshow.output_size(job.size)
    image = await asyncio.to_thread(image_input, img.local_path, img.url, img.uploaded, size)
    refs: list[ImageInput] = []
    if maker.takes_references:
        for path in hero_references(job, index):
            refs.append(await asyncio.to_thread(image_input, path, "", False, _sheet_size(path)))
    aspect = "9:16" if size[1] >= size[0] else "16:9"
    prompt = clip_prompt(job, index, bool(refs))
    message = ""
    for attempt in range(1, attempts + 1):
        _set_clip(
            reg,
            job_id,
            index,
            status=ClipStatus.QUEUED,
            attempts=attempt,
            started=time.time(),
            references=len(refs),
            error=""
            if attempt == 1
            else f"Attempt {attempt - 1} failed ({message}); trying again.",
        )
        try:
            async with limiter.slot(f"{maker.name}:{job_id}"):
                task_id = await maker.submit(
                    image,
                    prompt,
                    external_id=f"{job_id[:16]}-{index + 1}-{int(time.time())}",
                    references=refs,
                    aspect_ratio=aspect,
                )
                _submitted(reg, job_id, index, task_id, maker.cost_per_clip)
                log.info(
                    "[VIDEO] job %s clip %d submitted to %s (%s, %d references)",
                    job_id[:6],
                    index + 1,
                    maker.name,
                    maker.model,
                    len(refs),
                )
                try:
                    return await _poll_collect(reg, maker, job_id, index, task_id), ""
                except ProviderError as e:  # the task is paid for: never submitted again from here
                    return None, settings.redact(e.message)
        except ProviderError as err:  # only a submission that failed arrives here
            message = settings.redact(err.message)
            log.info(
                "[VIDEO] job %s clip %d submission %d failed: %s",
                job_id[:6],
                index + 1,
                attempt,
                message,
            )
            if err.code in AMBIGUOUS:
                # The request may have arrived: sending it again could pay twice.
                return None, (
                    f"{message} {maker.label} may still have accepted it (and charge for it); "
                    "Retry submits it again and is charged again."
                )
            if err.retry_after:
                limiter.pause_for(err.retry_after)
            if err.kind != "retryable":
                return None, message
            if attempt < attempts:
                await asyncio.sleep(
                    backoff_delay(attempt, settings.video_poll_interval, 60.0, err.retry_after)
                )
    return None, f"Gave up after {attempts} attempts: {message}"


def _sheet_size(path: str) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


async def _poll_collect(
    reg: JobRegistry, maker: ClipMaker, job_id: str, index: int, task_id: str
) -> tuple[bytes, str]:
    """Poll the stored task until it ends (passing errors do not lose it; the clip's
    timeout bounds the wait), then download it, refetching an expired link once."""
    settings = reg.settings
    transient = 0
    while True:
        try:
            state = await maker.poll(task_id)
        except ProviderError as e:
            transient += 1
            if e.kind != "retryable" or transient > 20:
                raise
            await asyncio.sleep(max(settings.video_poll_interval, e.retry_after or 0.0))
            continue
        if state.state == "succeed":
            break
        if state.state == "failed":
            raise ProviderError(state.message, "fatal", code="task_failed")
        await asyncio.sleep(settings.video_poll_interval)
    _set_clip(reg, job_id, index, status=ClipStatus.DOWNLOADING)
    return await collect(maker, task_id, state.video_url)


async def _clip_ready(
    reg: JobRegistry, maker: ClipMaker, job_id: str, index: int, data: bytes, url: str
) -> None:
    settings = reg.settings
    snap = reg.get(job_id)
    c = snap.video.clip(index) if snap is not None and snap.video is not None else None
    attempt = c.attempts if c is not None else 1
    store = clip_store(settings)
    stored = await blocking(reg.pipeline, store.save_clip, job_id, index, attempt, data)
    info = await asyncio.to_thread(slideshow.probe, stored.local_path)
    _set_clip(
        reg,
        job_id,
        index,
        status=ClipStatus.READY,
        url=stored.url if stored.uploaded else url,
        local_path=stored.local_path,
        uploaded=stored.uploaded,
        seconds=info.duration,
        error=stored.error,
        finished=time.time(),
    )
    log.info("[VIDEO] job %s clip %d ready (%s)", job_id[:6], index + 1, maker.name)
    snap = reg.get(job_id)
    if snap is not None:
        row = image_row(snap, index, "clip", maker.cost_per_clip)
        row.update(
            model=f"{maker.name}:{maker.model}",
            path=maker.name,
            image_url=stored.url if stored.uploaded else url,
            attempts=attempt,
        )
        await log_safely(reg.pipeline, row)


async def _after_clip(reg: JobRegistry, job_id: str) -> None:
    """When no clip is in flight any more, assemble the story video from what is ready."""
    job = reg.get(job_id)
    if job is None or job.video is None or any(c.status.in_flight for c in job.video.clips):
        return
    if not any(c.status is ClipStatus.READY for c in job.video.clips):

        def fn(j: Job) -> None:
            if j.video is not None and j.video.status != VideoStatus.FAILED:
                video_event(j.video, VideoStatus.FAILED)
                j.video.stage = ""
                j.video.error = "No clip could be made. Retry a clip, or make the local slideshow."

        reg.mutate(job_id, fn)
        return
    await _assemble(reg, job_id, after_clips=True)


# ---------------------------------------------------------------- the story video
async def _assemble(reg: JobRegistry, job_id: str, after_clips: bool = False) -> None:
    """Render the story video. Two clips finishing together both ask for it: the clips a
    finished video was made from are remembered, so the same video is not rendered twice."""
    locks = _assembly_locks.setdefault(reg, {})
    lock = locks.setdefault(job_id, asyncio.Lock())
    async with lock:
        job = reg.get(job_id)
        made_from = _made_from.setdefault(reg, {})
        clips = _clips_used(job)
        if (
            after_clips
            and job is not None
            and job.video is not None
            and job.video.status == "done"
            and made_from.get(job_id) == clips
        ):
            return
        try:
            await _render(reg, job_id)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the video never stays at "Starting…": it ends done or failed
            log.warning(
                "[VIDEO] job %s: the video could not be made: %s", job_id[:6], type(e).__name__
            )
            why = (
                storage_message(e).replace("the image", "the video")
                if isinstance(e, OSError)
                else (f"Internal error ({type(e).__name__}). Press Generate again.")
            )
            try:
                _video_failed(reg, job_id, why)
            except StoreError:
                log.warning("[VIDEO] job %s: its failure could not be stored either", job_id[:6])
            return
        made_from[job_id] = clips


def _clips_used(job: Job | None) -> tuple[tuple[int, str], ...]:
    if job is None or job.video is None:
        return ()
    return tuple((c.index, c.local_path) for c in job.video.clips if c.status is ClipStatus.READY)


async def _render(reg: JobRegistry, job_id: str) -> None:
    job = reg.get(job_id)
    if job is None or job.video is None:
        return
    v = job.video
    base = 0.9 if v.clips else 0.0
    last = [0.0]

    def progress(p: float) -> None:  # called from the render thread; throttled
        if p - last[0] >= 0.05 or p >= 1.0:
            last[0] = p

            def fn(j: Job) -> None:
                if j.video is not None:
                    j.video.progress = base + (1 - base) * p
                    j.video.stage = f"Rendering the video… {p:.0%}"

            reg.mutate(job_id, fn)

    def begin(j: Job) -> None:
        if j.video is not None:
            video_event(j.video, VideoStatus.RUNNING)
            j.video.stage, j.video.error = "Rendering the video…", ""
            j.video.progress = base

    reg.mutate(job_id, begin)
    cancel = threading.Event()
    t0 = time.monotonic()
    try:
        # The finished Short: narration, captions timed to the voice, music, motion by beat
        await shortjobs.settle_prerender(reg, job_id)
        job = reg.get(job_id) or job
        rendered = await asyncio.to_thread(shortjobs.render, reg, job, progress, cancel)
        out, srt = rendered.video, rendered.srt
    except asyncio.CancelledError:
        cancel.set()
        _video_failed(reg, job_id, "Stopped.")
        raise
    except (slideshow.RenderError, OSError, ValueError) as e:
        log.warning("[VIDEO] job %s: rendering failed: %s", job_id[:6], e)
        _video_failed(reg, job_id, f"The video could not be rendered: {e}")
        return
    seconds = time.monotonic() - t0

    def done(j: Job) -> None:
        if j.video is not None:
            video_event(j.video, VideoStatus.DONE)
            j.video.stage, j.video.progress = "", 1.0
            j.video.path = j.video.url = str(out)
            j.video.srt_path = str(srt)
            j.video.duration = rendered.duration
            j.video.render_seconds = seconds
            j.video.finished = time.time()
            j.video.narrated = bool(j.narration_on and j.narration and rendered.scene_audio)
            j.video.music = (
                j.music_path if j.music_path in ("", shortjobs.MUSIC_BUILTIN) else j.music_name
            )
            j.video.music_used, j.video.music_message = rendered.music_used, rendered.music_message
            j.video.narration_path = str(rendered.narration) if j.video.narrated else ""
            j.video.scene_audio = [str(p) for p in rendered.scene_audio] if j.video.narrated else []
            j.video.short = rendered.to_dict()

    reg.mutate(job_id, done)
    await asyncio.to_thread(host_video, reg, job_id)  # hosted too when Cloudinary is set
    log.info("[VIDEO] job %s: %.1f s video in %.1f s", job_id[:6], rendered.duration, seconds)
    snap = reg.get(job_id)
    if snap is not None:
        row = image_row(snap, 0, "video", 0.0)
        row.update(
            scene="",
            scene_text=snap.story.title,
            prompt="",
            model=v.provider,
            image_url=str(out),
            path=v.provider,
            seconds=round(seconds, 2),
            attempts="",
        )
        await log_safely(reg.pipeline, row)


def _video_failed(reg: JobRegistry, job_id: str, message: str) -> None:
    def fn(j: Job) -> None:
        if j.video is not None and j.video.status != VideoStatus.FAILED:
            with contextlib.suppress(Refused):
                video_event(j.video, VideoStatus.FAILED)
            j.video.stage, j.video.error = "", message
            j.video.finished = time.time()

    reg.mutate(job_id, fn)


# ---------------------------------------------------------------- export
def zip_files(job: Job) -> dict[str, Path]:
    """The clips, the story video and its subtitles, for the "download everything" ZIP."""
    out: dict[str, Path] = {}
    v = job.video
    if v is None:
        return out
    for c in v.clips:
        if c.status is ClipStatus.READY and c.local_path:
            out[f"clips/scene_{c.index + 1:02d}.mp4"] = Path(c.local_path)
    if v.status == "done" and v.path:
        out["story.mp4"] = Path(v.path)
        if v.srt_path:
            out["story.srt"] = Path(v.srt_path)
        # the Short's narration: the whole track and one file per scene
        if v.narration_path:
            out["narration.wav"] = Path(v.narration_path)
        for p in v.scene_audio:
            out[f"narration/{Path(p).name}"] = Path(p)
    return out


def everything_zip(job: Job) -> bytes:
    return export.build_zip(job, extra_files=zip_files(job))

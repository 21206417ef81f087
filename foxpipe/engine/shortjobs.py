"""The finished Short of a job: its narration script, the voice, the music, pre-rendered
segments, and what the story video is rendered from.

- ``begin`` (called when the scenes are approved) stores the voice, style, length and music
  and writes the narration lines with the story's text model on the worker; a free voice
  starts speaking them at once, beside the images.
- ``start_synthesis`` speaks the lines on the worker (a paid voice is charged through
  ``registry.charge("narration", n, usd)`` first); ``retry_line`` one failed line alone.
- ``set_line``, ``start_rewrite``, ``set_voice``, ``set_length``, ``set_music`` are what
  the Voice step and the command line change.
- ``prerender_soon`` renders the segments whose image and narration are final, so the
  video is ready seconds after the last approval; ``render`` makes the video itself (the
  story video of ``videojobs``) with ``media.short.render_short``.

Nothing here raises for bad input: functions return '' or a message for the user.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain.models import ClipStatus, Job, SlotStatus
from foxpipe.domain.narration import (
    STYLES,
    LineStatus,
    NarrationLine,
    clean_line,
    offline_script,
    style_of,
)
from foxpipe.engine import narration as speech
from foxpipe.engine.jobs import GuardError, JobRegistry
from foxpipe.media import mix
from foxpipe.media.short import ShortResult, prerender, render_short
from foxpipe.providers import registry as services
from foxpipe.providers.slideshow import output_size
from foxpipe.providers.voice import VoiceChoice, choose_voice
from foxpipe.store import StoreError

log = logging.getLogger(__name__)

LINES_KEY = "narration_lines"
SPEAK_KEY = "narration"
PRERENDER_KEY = "prerender"
MUSIC_NONE, MUSIC_BUILTIN = "", "builtin"
LENGTH_MIN, LENGTH_MAX = 15.0, 180.0
NO_NARRATION_SECONDS = 4.0  # seconds per scene of a Short without narration


@dataclass
class ShortOptions:
    """How the Short is made; None keeps the job's value or the setting."""

    narration: bool = True
    voice: str = ""
    style: str = ""
    seconds: float | None = None
    music: str | None = None  # "" none, "builtin", or a checked file's path


# ---------------------------------------------------------------- the voice
_voices: weakref.WeakKeyDictionary[JobRegistry, VoiceChoice] = weakref.WeakKeyDictionary()


def voice(reg: JobRegistry) -> VoiceChoice:
    """The app's voice (one per engine: its limiter and client are shared)."""
    if reg not in _voices:
        _voices[reg] = choose_voice(reg.settings)
    return _voices[reg]


def voices(reg: JobRegistry) -> list[str]:
    return list(getattr(voice(reg).model, "voices", []) or [voice(reg).default_voice])


def lines_dir(reg: JobRegistry, job_id: str) -> Path:
    from foxpipe.engine.videojobs import clip_store

    d = clip_store(reg.settings).video_dir(job_id) / "narration_lines"
    d.mkdir(parents=True, exist_ok=True)
    return d


def short_dir(reg: JobRegistry, job_id: str) -> Path:
    from foxpipe.engine.videojobs import clip_store

    d = clip_store(reg.settings).video_dir(job_id) / "short"
    d.mkdir(parents=True, exist_ok=True)
    return d


def clamp_length(seconds: Any, default: float = 60.0) -> float:
    try:
        v = float(seconds)
    except (TypeError, ValueError):
        return default
    if v != v:  # NaN
        return default
    return max(LENGTH_MIN, min(LENGTH_MAX, v))


# ---------------------------------------------------------------- the script
def begin(reg: JobRegistry, job_id: str, options: ShortOptions | None = None) -> None:
    """Store the Short's choices on a new job and write its narration in the background."""
    o = options or ShortOptions()
    s = reg.settings
    choice = voice(reg)

    def fn(j: Job) -> None:
        j.narration_on = bool(o.narration)
        j.voice = o.voice if o.voice in voices(reg) else (j.voice or choice.default_voice)
        j.narration_style = style_of(o.style or j.narration_style or s.narration_style).key
        j.short_seconds = clamp_length(o.seconds if o.seconds is not None else s.narration_seconds)
        if o.music is not None:
            j.music_path, j.music_name = (
                o.music,
                Path(o.music).name if o.music not in ("", MUSIC_BUILTIN) else "",
            )
        else:
            j.music_path = (
                MUSIC_BUILTIN if s.short_music.strip().lower() == MUSIC_BUILTIN else MUSIC_NONE
            )

    reg.mutate(job_id, fn)
    if o.narration:
        start_writing(reg, job_id)


def start_writing(reg: JobRegistry, job_id: str) -> bool:
    """(Re)write every line from the scenes; False when it is already being written."""
    job = reg.get(job_id)
    if job is None:
        return False
    if writing(reg, job_id):
        return False

    # marked before the work starts: the work may end before this thread runs again
    def mark(j: Job) -> None:
        j.narration_state, j.narration_error = "writing", ""

    reg.mutate(job_id, mark)
    return reg.submit(job_id, LINES_KEY, lambda: _write(reg, job_id))


def writing(reg: JobRegistry, job_id: str) -> bool:
    return reg.busy(job_id, LINES_KEY)


async def _write(reg: JobRegistry, job_id: str) -> None:
    job = reg.get(job_id)
    if job is None:
        return
    settings = reg.settings
    problem = ""
    try:
        model = services.text_model(settings)
        texts = await model.write_narration(job.story, job.short_seconds, job.narration_style)
        if len(texts) != len(job.slots):
            raise ValueError(f"{len(texts)} lines for {len(job.slots)} scenes")
    except Exception as e:  # the script never blocks the Short: the offline writer takes over
        msg = settings.redact(getattr(e, "message", "") or str(e) or type(e).__name__)
        log.warning("[NARRATION] job %s: writing the lines failed: %s", job_id[:6], msg)
        problem = f"The narration could not be written by the model ({msg[:200]}); lines made from the scenes instead."
        texts = offline_script(job.story, job.short_seconds, settings.narration_words_per_second)
    lines = [_new_line(i, t) for i, t in enumerate(texts)]

    def fn(j: Job) -> None:
        j.narration = lines
        j.narration_state, j.narration_error = "written", problem

    reg.mutate(job_id, fn)
    log.info("[NARRATION] job %s: %d lines written", job_id[:6], sum(1 for x in lines if x.text))
    if settings.narration_auto and voice(reg).free:
        start_synthesis(reg, job_id)


def _new_line(index: int, text: Any) -> NarrationLine:
    t = clean_line(text)
    return NarrationLine(index, t, status=LineStatus.QUEUED if t else LineStatus.EMPTY)


def set_line(reg: JobRegistry, job_id: str, index: int, text: Any) -> str:
    """The user's wording of one line (cleaned and trimmed); its audio is made again."""
    cleaned = clean_line(text)

    def fn(j: Job) -> bool:
        if not 0 <= index < len(j.narration):
            return False
        old = j.narration[index]
        if old.text == cleaned:
            return False
        j.narration[index] = _new_line(index, cleaned)
        return True

    changed = reg.mutate(job_id, fn)
    return "" if changed is not None else "This gallery no longer exists."


def start_rewrite(reg: JobRegistry, job_id: str, index: int, note: str = "") -> bool:
    """Another wording of one line, by the story's text model, in the background."""
    return reg.submit(
        job_id, f"narration_rewrite{index}", lambda: _rewrite(reg, job_id, index, note)
    )


def rewriting(reg: JobRegistry, job_id: str) -> list[int]:
    job = reg.get(job_id)
    if job is None:
        return []
    return [i for i in range(len(job.narration)) if reg.busy(job_id, f"narration_rewrite{i}")]


async def _rewrite(reg: JobRegistry, job_id: str, index: int, note: str) -> None:
    job = reg.get(job_id)
    if job is None or not 0 <= index < len(job.narration):
        return
    settings = reg.settings
    try:
        model = services.text_model(settings)
        text = await model.rewrite_narration_line(
            job.story, [x.text for x in job.narration], index + 1, clean_line(note)[:300]
        )
    except Exception as e:
        msg = settings.redact(getattr(e, "message", "") or str(e) or type(e).__name__)
        reg.mutate(
            job_id,
            lambda j: setattr(
                j, "narration_error", f"Line {index + 1} could not be rewritten: {msg[:200]}"
            ),
        )
        return
    set_line(reg, job_id, index, text)


def set_length(reg: JobRegistry, job_id: str, seconds: Any) -> None:
    reg.mutate(
        job_id, lambda j: setattr(j, "short_seconds", clamp_length(seconds, j.short_seconds))
    )


def set_voice(reg: JobRegistry, job_id: str, name: str, style: str) -> None:
    """A new voice or style: lines already spoken are spoken again with it."""
    name = name if name in voices(reg) else voice(reg).default_voice
    style = style_of(style).key

    def fn(j: Job) -> None:
        if (j.voice, j.narration_style) == (name, style):
            return
        j.voice, j.narration_style = name, style
        j.narration = [_new_line(x.index, x.text) for x in j.narration]

    reg.mutate(job_id, fn)


def set_narration(reg: JobRegistry, job_id: str, on: bool) -> None:
    reg.mutate(job_id, lambda j: setattr(j, "narration_on", bool(on)))
    job = reg.get(job_id)
    if on and job is not None and not job.narration and not writing(reg, job_id):
        start_writing(reg, job_id)


# ---------------------------------------------------------------- speaking
def estimate(reg: JobRegistry, job: Job, indexes: list[int] | None = None) -> float:
    """US$ the voice charges for these lines (all that need audio by default); 0 when free."""
    return speech.estimate_cost(
        voice(reg).model, [job.narration[i] for i in _targets(job, indexes)]
    )


def _targets(job: Job, indexes: list[int] | None) -> list[int]:
    if indexes is None:
        return [x.index for x in job.narration if x.text and x.status is not LineStatus.READY]
    return [i for i in indexes if 0 <= i < len(job.narration) and job.narration[i].text]


def speaking(reg: JobRegistry, job_id: str) -> bool:
    job = reg.get(job_id)
    if job is None:
        return False
    return reg.busy(job_id, SPEAK_KEY) or any(
        reg.busy(job_id, f"{SPEAK_KEY}{i}") for i in range(len(job.narration))
    )


def start_synthesis(reg: JobRegistry, job_id: str, indexes: list[int] | None = None) -> str:
    """Speak the lines that need audio (or exactly ``indexes``, again). '' or why not.

    The check that nothing speaking overlaps, the charge, the lines' marks and the start are
    one decision under the engine's lock: two requests at the same moment (two tabs, a double
    click, a line's Retry during "Speak all") start one run and pay once; the other is told."""
    with reg.decision():
        job = reg.get(job_id)
        if job is None:
            return "This gallery no longer exists."
        if not job.narration:
            return "The narration lines are not written yet."
        targets = _targets(job, indexes)
        if not targets:
            return "" if indexes is None else "That line is empty: there is nothing to say."
        key = SPEAK_KEY if indexes is None or len(targets) != 1 else f"{SPEAK_KEY}{targets[0]}"
        # "Speak all" waits for every run; a line's Retry for "Speak all" and its own.
        if (
            reg.busy(job_id, SPEAK_KEY)
            or reg.busy(job_id, key)
            or (key == SPEAK_KEY and speaking(reg, job_id))
        ):
            return "The narration is already being spoken."
        choice = voice(reg)
        usd = 0.0
        if not choice.free:
            usd = speech.estimate_cost(choice.model, [job.narration[i] for i in targets])
            try:
                reg.charge("narration", len(targets), usd, limit=s_budget(reg))
            except GuardError as e:
                return str(e)
        before: dict[int, NarrationLine] = {}

        def mark(j: Job) -> None:
            for i in targets:
                x = before[i] = j.narration[i]
                j.narration[i] = dataclasses.replace(
                    _new_line(i, x.text), attempts=x.attempts, status=LineStatus.SYNTHESIZING
                )

        try:
            reg.mutate(job_id, mark)
            if reg.submit(job_id, key, lambda: _speak(reg, job_id, targets)):
                return ""
            why = "The narration is already being spoken."
        except StoreError as e:
            why = f"The narration could not be started: {e.message}"
        except RuntimeError as e:  # the engine is shutting down or its worker could not start
            why = f"The narration could not be started ({e}). Press Speak again in a moment."

        def unmark(j: Job) -> None:  # nothing will speak them: as they were, paid for nothing
            for i, line in before.items():
                if i < len(j.narration) and j.narration[i].status is LineStatus.SYNTHESIZING:
                    j.narration[i] = line

        with contextlib.suppress(StoreError):
            reg.mutate(job_id, unmark)
        if not choice.free:
            reg.give_back("narration", len(targets), usd)
        return why


def s_budget(reg: JobRegistry) -> int:
    """Paid narration lines a day for the whole app (DAILY_NARRATION_BUDGET)."""
    return reg.settings.daily_narration_budget


def retry_line(reg: JobRegistry, job_id: str, index: int) -> str:
    return start_synthesis(reg, job_id, [index])


async def _speak(reg: JobRegistry, job_id: str, targets: list[int]) -> None:
    job = reg.get(job_id)
    if job is None:
        return
    s = reg.settings
    choice = voice(reg)
    lines = [job.narration[i] for i in targets]

    def progress(line: NarrationLine, done: int, total: int) -> None:
        def fn(j: Job) -> None:
            if (
                line.index < len(j.narration)
                and clean_line(j.narration[line.index].text) == line.text
            ):
                j.narration[line.index] = line  # a line edited meanwhile keeps the user's text

        reg.mutate(job_id, fn)
        if done == total:
            prerender_soon(reg, job_id)

    try:
        await speech.synthesize_all(
            choice.model,
            lines,
            voice=job.voice or choice.default_voice,
            style=job.narration_style,
            out_dir=lines_dir(reg, job_id),
            concurrency=s.max_concurrent_voice,
            on_progress=progress,
            retries=s.voice_retries,
            timeout=s.voice_timeout,
        )
    except asyncio.CancelledError:

        def stop(j: Job) -> None:
            for i in targets:
                if i < len(j.narration) and j.narration[i].status is LineStatus.SYNTHESIZING:
                    j.narration[i].status, j.narration[i].error = LineStatus.FAILED, "Stopped."

        reg.mutate(job_id, stop)
        raise
    finally:

        def unstick(j: Job) -> None:  # a line the run did not report stays retryable
            for i in targets:
                if i < len(j.narration) and j.narration[i].status is LineStatus.SYNTHESIZING:
                    j.narration[i].status, j.narration[i].error = (
                        LineStatus.FAILED,
                        "Not spoken. Press Retry.",
                    )

        reg.mutate(job_id, unstick)


def narration_ready(job: Job) -> bool:
    """Every line is spoken (or empty): the video can carry the narration."""
    return bool(job.narration) and all(
        x.status in (LineStatus.READY, LineStatus.EMPTY) for x in job.narration
    )


def narration_summary(job: Job) -> dict[str, int]:
    out = {k.value: 0 for k in LineStatus}
    for x in job.narration:
        out[x.status.value] += 1
    return out


# ---------------------------------------------------------------- music
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def set_music(reg: JobRegistry, job_id: str, choice: str, name: str = "", data: bytes = b"") -> str:
    """``choice``: "none", "builtin" or "upload" (``name`` and ``data``, checked with
    mix.check_music). Returns '' or why the upload cannot be used (then no music)."""
    if choice == "upload":
        suffix = Path(name or "").suffix.lower()
        if len(data) > mix.MUSIC_MAX_BYTES:
            msg = (
                f"{name or 'The music file'} is {len(data) / 2**20:.0f} MB; music may be at most "
                f"{mix.MUSIC_MAX_BYTES / 2**20:.0f} MB. The video is made without music."
            )
            return _music(reg, job_id, MUSIC_NONE, "", msg)
        stem = _SAFE_NAME.sub("_", Path(name or "music").stem)[:60] or "music"
        folder = short_dir(reg, job_id).parent / "music"
        folder.mkdir(parents=True, exist_ok=True)
        path = (
            folder / f"{stem}{suffix if suffix in mix.MUSIC_EXTENSIONS else suffix[:8] or '.bin'}"
        )
        try:
            path.write_bytes(data)
        except OSError as e:
            return _music(
                reg, job_id, MUSIC_NONE, "", f"The music could not be saved ({type(e).__name__})."
            )
        return use_music_file(reg, job_id, path, display=name)
    return _music(reg, job_id, MUSIC_BUILTIN if choice == MUSIC_BUILTIN else MUSIC_NONE, "", "")


def use_music_file(reg: JobRegistry, job_id: str, path: str | Path, display: str = "") -> str:
    check = mix.check_music(path)
    shown = display or Path(path).name
    if not check.ok:
        return _music(reg, job_id, MUSIC_NONE, "", check.message.replace(Path(path).name, shown, 1))
    return _music(reg, job_id, str(Path(path).resolve()), shown, "")


def _music(reg: JobRegistry, job_id: str, path: str, name: str, message: str) -> str:
    def fn(j: Job) -> None:
        j.music_path, j.music_name, j.music_message = path, name, message

    reg.mutate(job_id, fn)
    if not message:
        prerender_soon(reg, job_id)
    return message


def _music_file(reg: JobRegistry, job: Job) -> Path | None:
    if job.music_path == MUSIC_BUILTIN:
        dest = short_dir(reg, job.id).parent / "music" / "builtin.wav"
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                mix.builtin_track(dest)
            except Exception as e:  # the Short is still made, without music
                log.warning("[MUSIC] the built-in track could not be made: %s", e)
                return None
        return dest
    if job.music_path and Path(job.music_path).is_file():
        return Path(job.music_path)
    return None


# ---------------------------------------------------------------- the render
@dataclass
class RenderInputs:
    images: list[str | None]
    lines: list[NarrationLine]
    out_dir: Path
    size: tuple[int, int]
    music: Path | None
    captions: bool
    fps: int
    beats: list[str]
    pause: float
    min_seconds: float
    silent_text: list[str] | None = None  # captions of a Short without narration


def video_size(settings: Settings, job: Job) -> tuple[int, int]:
    base = output_size(job.size)
    m = re.fullmatch(r"\s*(\d{2,4})\s*[xX]\s*(\d{2,4})\s*", settings.short_size or "")
    if not m:
        return base
    w, h = int(m.group(1)) // 2 * 2, int(m.group(2)) // 2 * 2
    if base[0] > base[1]:  # landscape story: the setting's sides swapped
        w, h = max(w, h), min(w, h)
    else:
        w, h = min(w, h), max(w, h)
    return (w, h) if w >= 16 and h >= 16 else base


def inputs(reg: JobRegistry, job: Job, *, approved_only: bool = True) -> RenderInputs:
    """What the Short of this job is made from now (the same for the pre-render and the
    final render, so the cached segments are reused)."""
    s = reg.settings
    v = job.video
    images: list[str | None] = []
    for slot in job.slots:
        img = slot.image
        clip = v.clip(slot.index) if v is not None and v.provider != "slideshow" else None
        if (
            clip is not None
            and clip.status is ClipStatus.READY
            and clip.local_path
            and Path(clip.local_path).is_file()
        ):
            images.append(clip.local_path)
        elif (
            img is not None
            and (slot.status is SlotStatus.APPROVED or not approved_only)
            and Path(img.local_path).is_file()
        ):
            images.append(img.local_path)
        else:
            images.append(None)
    narrated = job.narration_on and bool(job.narration)
    lines = list(job.narration) if narrated else []
    min_seconds = (
        s.scene_min_seconds
        if narrated
        else (v.seconds_per_scene if v is not None else NO_NARRATION_SECONDS)
    )
    return RenderInputs(
        images=images,
        lines=lines,
        out_dir=short_dir(reg, job.id),
        size=video_size(s, job),
        music=_music_file(reg, job),
        captions=v.captions if v is not None else True,
        fps=s.short_fps,
        beats=[slot.scene.beat for slot in job.slots],
        pause=s.narration_pause_seconds,
        min_seconds=min_seconds,
        # Without a voice the captions read the narration script, else the scene text.
        silent_text=None if narrated else _silent_text(job),
    )


def _silent_text(job: Job) -> list[str]:
    by_index = {x.index: x.text for x in job.narration}
    return [by_index.get(slot.index, "").strip() or slot.scene.text for slot in job.slots]


_dirty: weakref.WeakKeyDictionary[JobRegistry, set[str]] = weakref.WeakKeyDictionary()
_dirty_lock = threading.Lock()


def prerender_soon(reg: JobRegistry, job_id: str) -> None:
    """Render, in the background, the segments that became final (an image approved, a
    line spoken). Calls while one runs are folded into one more pass: a loop that is running
    takes the mark; one that has looked for marks the last time and is ending is followed by
    a new loop (``after``), which finds the mark (or nothing, and ends at once)."""
    if not reg.settings.short_prerender:  # the video is rendered whole when it is asked for
        return
    with _dirty_lock:
        _dirty.setdefault(reg, set()).add(job_id)
    try:
        reg.submit(job_id, PRERENDER_KEY, lambda: _prerender_loop(reg, job_id), after=True)
    except Exception as e:  # the engine is shutting down: the final render makes everything
        log.info("[SHORT] pre-render not started: %s", type(e).__name__)


async def _prerender_loop(reg: JobRegistry, job_id: str) -> None:
    while True:
        with _dirty_lock:
            pending = _dirty.setdefault(reg, set())
            if job_id not in pending:
                return
            pending.discard(job_id)
        job = reg.get(job_id)
        if job is None or (job.video is not None and job.video.running):
            return
        if job.narration_on and not job.narration:
            continue  # the scenes' lengths are not known before the lines are written
        cancel = threading.Event()
        try:
            i = inputs(reg, job)
            await asyncio.to_thread(
                prerender,
                i.images,
                i.lines,
                i.out_dir,
                i.size,
                captions=i.captions,
                fps=i.fps,
                beats=i.beats,
                pause=i.pause,
                min_seconds=i.min_seconds,
                music=i.music,
                workers=1,
                cancel=cancel,
                silent_text=i.silent_text,
            )
        except asyncio.CancelledError:  # the app stops: ffmpeg stops with it
            cancel.set()
            raise
        except Exception as e:  # the final render makes what is missing
            log.warning("[SHORT] job %s: pre-render failed: %s", job_id[:6], e)


async def settle_prerender(reg: JobRegistry, job_id: str, limit: float = 600.0) -> None:
    """Let a pre-render pass in progress finish (it makes segments the video needs; no
    new pass starts once the video runs), so the final render does not make them twice."""
    t0 = time.monotonic()
    while reg.busy(job_id, PRERENDER_KEY) and time.monotonic() - t0 < limit:
        await asyncio.sleep(0.05)


def render(
    reg: JobRegistry, job: Job, progress: Any = None, cancel: threading.Event | None = None
) -> ShortResult:
    """The story video (blocking; run it in a thread)."""
    i = inputs(reg, job)
    return render_short(
        i.images,
        i.lines,
        i.out_dir,
        i.size,
        music=i.music,
        captions=i.captions,
        fps=i.fps,
        progress=progress,
        beats=i.beats,
        pause=i.pause,
        min_seconds=i.min_seconds,
        workers=reg.settings.short_render_workers,
        cancel=cancel,
        silent_text=i.silent_text,
    )


def style_labels() -> dict[str, str]:
    return {k: s.label for k, s in STYLES.items()}

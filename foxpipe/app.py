"""The facade the pages and the command line call; no Streamlit here.

It owns the process's one engine, runs every long step in the background on the engine's
worker (story writing, rewriting, preparing prompts, the hero sheet, images, videos) and
hands pages plain results to show."""

from __future__ import annotations

import asyncio
import atexit
import copy
import hashlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain import frames, prompts, quiz
from foxpipe.domain.models import Job, Story, new_id
from foxpipe.domain.story import placeholder_story
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers import registry as services

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ the engine, one per process
# Held here, not in a Streamlit cache: "Clear cache" (which any client can send) must never
# drop the engine while its worker runs, nor its jobs, limits, budgets or lockouts.
_ENGINE: JobRegistry | None = None
_ENGINE_KEY = ""
_ENGINE_LOCK = threading.Lock()


def settings_key(settings: Settings) -> str:
    return hashlib.sha256(repr(settings).encode()).hexdigest()


def engine(settings: Settings) -> JobRegistry:
    """The process's engine. Settings come from the app's secrets, the same for every
    session; when they change (the secrets were edited), the old engine hands over: it
    finishes what it sent and the new one picks up the queued work from the store."""
    global _ENGINE, _ENGINE_KEY
    key = settings_key(settings)
    with _ENGINE_LOCK:
        if _ENGINE is not None and key == _ENGINE_KEY:
            return _ENGINE
        old, _ENGINE, _ENGINE_KEY = _ENGINE, JobRegistry(settings), key
    if old is not None:
        old.shutdown()
        old.store.close()
    log.info(
        "[ENGINE] started: the one engine of this process%s",
        " (the settings changed)" if old else "",
    )
    _ENGINE.start()  # queued work and accepted clips from before a restart continue by themselves
    return _ENGINE


def current() -> JobRegistry | None:
    """The running engine, if one was made."""
    return _ENGINE


def shutdown(grace: float | None = None) -> None:
    """Stop the engine: send nothing new, wait up to ``grace`` seconds (the setting
    SHUTDOWN_GRACE_SECONDS by default) for requests already sent, store what they return."""
    global _ENGINE, _ENGINE_KEY
    with _ENGINE_LOCK:
        eng, _ENGINE, _ENGINE_KEY = _ENGINE, None, ""
    if eng is not None:
        g = eng.settings.shutdown_grace_seconds if grace is None else grace
        if g:
            log.info("[SHUTDOWN] waiting up to %.0f s for requests already sent", g)
        eng.shutdown(grace=g)
        eng.store.close()
        log.info("[SHUTDOWN] stopped")


# Streamlit stops its server on SIGTERM/SIGINT (a platform shutting the app down, Ctrl+C) and
# the interpreter then exits. The engine must stop first, while worker threads may still be
# started (the image store writes through a thread pool): threading's exit hooks run before
# the thread pools refuse new work, and in the reverse order of registration.
try:
    threading._register_atexit(shutdown)  # type: ignore[attr-defined]
except (AttributeError, RuntimeError):  # an interpreter without it: the plain exit hook
    atexit.register(shutdown)
atexit.register(shutdown)  # a second call does nothing


def _run(coro):  # noqa: ANN001, ANN202
    """Run one async step to its end from synchronous code (the command line, tests)."""
    return asyncio.run(coro)


async def write_story_async(settings: Settings, answers: dict[str, str]) -> Story:
    """Never raises: a story that could not be written comes back as placeholders with
    ``problem`` saying why, so the editor opens and nothing the user typed is lost."""
    model = services.text_model(settings)
    try:
        story = await model.write_story(answers)
    except Exception as e:
        msg = settings.redact(getattr(e, "message", "") or str(e) or type(e).__name__)
        log.warning("[STORY] writing failed: %s", msg)
        return placeholder_story(answers, f"The story could not be written: {msg}")
    log.info("[STORY] %s wrote %r (%d missing)", model.name, story.title, len(story.missing()))
    return story


def write_story(settings: Settings, answers: dict[str, str]) -> Story:
    return _run(write_story_async(settings, answers))


async def rewrite_scene_async(settings: Settings, story: Story, number: int, note: str = "") -> str:
    model = services.text_model(settings)
    return await model.rewrite_scene(story, number, quiz.clean_text(note)[:300])


def rewrite_scene(settings: Settings, story: Story, number: int, note: str = "") -> str:
    return _run(rewrite_scene_async(settings, story, number, note))


@dataclass
class PreparedPrompts:
    sheet: str
    prompts: list[str]  # standardized (sheet + scene), before sanitization
    problem: str = ""


async def prepare_prompts_async(settings: Settings, story: Story) -> PreparedPrompts:
    """Scene -> visual prompt (one call for all 20) -> the same character sheet on each."""
    model = services.text_model(settings)
    problem = ""
    try:
        sheet = await model.character_sheet(story.answers)
    except Exception as e:
        problem = (
            f"The character sheet could not be written ({type(e).__name__}); using the quiz's."
        )
        sheet = prompts.character_sheet(story.answers)
    try:
        visual = await model.create_prompts(story, sheet)
        if len(visual) != len(story.scenes):
            raise ValueError("wrong number of prompts")
    except Exception as e:
        problem = (
            problem
            or f"Scene prompts could not be written ({type(e).__name__}); using the scene texts."
        )
        visual = [prompts.visual_prompt(sc) for sc in story.scenes]
    return PreparedPrompts(
        sheet, prompts.standardize_prompts(visual, sheet, story.answers), problem
    )


def prepare_prompts(settings: Settings, story: Story) -> PreparedPrompts:
    return _run(prepare_prompts_async(settings, story))


# ------------------------------------------------------------------ background steps
# Long steps (writing the story, rewriting a scene, preparing the prompts and the job) run on
# the engine's worker loop; a page starts one, keeps its id (in the URL where a reload must
# find it) and polls it from a fragment. No page waits for a model in its script run.
@dataclass
class Task:
    id: str
    kind: str
    status: str = "running"  # running, done, failed
    stage: str = ""
    result: Any = None
    error: str = ""
    started: float = field(default_factory=time.time)
    finished: float = 0.0

    @property
    def running(self) -> bool:
        return self.status == "running"


_TASKS: dict[str, Task] = {}
_TASKS_LOCK = threading.Lock()
TASK_KEEP_SECONDS = 6 * 3600
# The same request again (``once``: who asks for what) within this many seconds of the last
# one's start is that one: a double click delivered late, however it reaches the server, never
# starts (and pays for) a second approval.
SAME_REQUEST_SECONDS = 60.0
# A story from the same answers: a double click, not a deliberate new story a little later.
SAME_STORY_SECONDS = 15.0
_ONCE: dict[str, str] = {}


def start_task(
    settings: Settings,
    kind: str,
    work: Callable[[Task], Awaitable[Any]],
    stage: str = "",
    once: str = "",
    same_seconds: float = SAME_REQUEST_SECONDS,
    reuse: Callable[[Any], bool] | None = None,
) -> str:
    """Run ``work(task)`` on the worker loop; the task's id. Its result or its error (in
    words, redacted) is read with ``task``. With ``once``, a task of the same ``once`` still
    running, or done less than ``same_seconds`` after it started (and, with ``reuse``, whose
    result it accepts), is returned instead of starting another (one that failed is started
    again)."""
    t = Task(id=new_id(), kind=kind, stage=stage)
    now = time.time()
    with _TASKS_LOCK:
        for old in [
            k for k, v in _TASKS.items() if v.finished and now - v.finished > TASK_KEEP_SECONDS
        ]:
            del _TASKS[old]
        for key in [k for k, tid in _ONCE.items() if tid not in _TASKS]:
            del _ONCE[key]
        same = _TASKS.get(_ONCE.get(once, "")) if once else None
        if same is not None and (
            same.running
            or (
                same.status == "done"
                and now - same.started < same_seconds
                and (reuse is None or reuse(same.result))
            )
        ):
            log.info("[TASK] %s asked again: the same one", kind)
            return same.id
        if once:
            _ONCE[once] = t.id
        _TASKS[t.id] = t

    async def run() -> None:
        try:
            result = await work(t)
        except asyncio.CancelledError:
            t.error, t.status = "Stopped: the app is shutting down.", "failed"
            raise
        except Exception as e:
            msg = getattr(e, "message", "") or str(e) or type(e).__name__
            log.warning("[TASK] %s failed: %s", kind, settings.redact(msg))
            t.error, t.status = settings.redact(msg)[:500], "failed"
        else:
            t.result, t.status = result, "done"
        finally:
            t.finished = time.time()

    engine(settings).submit(t.id, kind, run)
    return t.id


def task(task_id: str | None) -> Task | None:
    """A copy of the task's state (None for an unknown id)."""
    if not isinstance(task_id, str):
        return None
    with _TASKS_LOCK:
        t = _TASKS.get(task_id)
        return None if t is None else copy.copy(t)


def start_story(settings: Settings, answers: dict[str, str], owner: str | None = None) -> str:
    """Write a story from the answers in the background. With ``owner`` (the quiz's "Write my
    story"), the same person asking for a story from the same answers while it is written, or
    within ``SAME_STORY_SECONDS`` of its start, gets that story: a double click delivered late
    (seen over a slow link: two stories written) never writes and pays for a second one. A
    story that came back with missing scenes or a problem is written again at once."""

    async def work(t: Task) -> Story:
        return await write_story_async(settings, answers)

    once = "" if owner is None else once_key("story", owner, answers)
    return start_task(
        settings,
        "story",
        work,
        "Writing your 20-scene story…",
        once=once,
        same_seconds=SAME_STORY_SECONDS,
        reuse=lambda story: not story.missing() and not story.problem,
    )


def start_rewrite(settings: Settings, story: Story, number: int, note: str = "") -> str:
    async def work(t: Task) -> str:
        return await rewrite_scene_async(settings, story, number, note)

    return start_task(settings, "rewrite", work, f"Rewriting scene {number}…")


@dataclass
class Approval:
    job_id: str
    sheet_first: bool  # the hero's reference sheet is approved before the images start
    problem: str = ""


def start_approval(
    settings: Settings,
    story: Story,
    owner: str,
    short: Any = None,
    continuity: str = "",
    continuity_threshold: int = -1,
    again: bool = False,
) -> str:
    """Approved scenes -> prompts -> a job (and its images, or the hero sheet first), and
    the narration of its Short written beside them (``short``: shortjobs.ShortOptions).
    ``continuity``/``continuity_threshold``: the job's check mode and threshold ("" and -1:
    the settings'). The same scenes approved again by the same person within a minute are the
    same approval, unless ``again`` (a new gallery asked for on purpose)."""
    from foxpipe.engine import hero, shortjobs

    async def work(t: Task) -> Approval:
        prepared = await prepare_prompts_async(settings, story)
        t.stage = "Starting the images…"
        reg = engine(settings)
        sheet_first = hero.wanted(settings, reg)
        job_id = await asyncio.to_thread(
            reg.create_job,
            story,
            prepared.prompts,
            owner,
            character_sheet=prepared.sheet,
            size=image_size(story.answers, settings),
            start=not sheet_first,
            continuity=continuity,
            continuity_threshold=continuity_threshold,
        )
        await asyncio.to_thread(shortjobs.begin, reg, job_id, short)
        job = reg.get(job_id)
        if job is not None:
            await asyncio.to_thread(log_story, settings, job)
        return Approval(job_id, sheet_first, prepared.problem)

    once = "" if again else approval_once(owner, story, continuity, continuity_threshold)
    return start_task(settings, "approve", work, "Preparing the image prompts…", once=once)


def approval_once(owner: str, story: Story, *extra: object) -> str:
    """Who approves which scenes, as they are (with what else the approval is made from)."""
    texts = [s.text for s in story.scenes]
    return once_key("approve", owner, story.id, texts, [str(x) for x in extra])


def once_key(kind: str, *parts: object) -> str:
    """The ``once`` of a request for ``start_task``: its kind and a digest of what it is
    made from (JSON-serialisable parts)."""
    digest = hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=12)
    return f"{kind}:{digest.hexdigest()}"


def image_size(answers: dict[str, str], settings: Settings | None = None) -> str:
    """The scene image size: the video's shape (1088x1920 / 1920x1088) when the image model
    accepts any size, else its fixed 1024x1536 / 1536x1024; SCENE_IMAGE_SIZE overrides."""
    orientation = "portrait" if quiz.is_portrait(answers) else "landscape"
    if settings is None:
        return frames.FIXED[orientation]
    model = settings.openai_image_model if settings.openai_live else "offline"
    try:
        return frames.image_size(model, orientation, settings.scene_image_size)
    except frames.SizeError as e:
        log.warning("[IMAGE] %s Using the automatic size.", e)
        return frames.image_size(model, orientation)


def story_row(job: Job) -> dict[str, object]:
    return {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "story_id": job.story.id,
        "job_id": job.id,
        "title": job.story.title,
        "answers": json.dumps(job.story.answers, ensure_ascii=False),
        "character_sheet": job.character_sheet,
    }


def log_story(settings: Settings, job: Job) -> None:
    try:
        services.prompt_log(settings).log_story(story_row(job))
    except Exception as e:  # the log never blocks the flow
        log.warning("[SHEETS] could not log the story: %s", type(e).__name__)


# ------------------------------------------------------------------ what pages do and read
# Pages import only this module (with foxpipe.ui and the pure foxpipe.domain): every
# operation and read they need is here or in foxpipe/app_pages.py, re-exported below.
from foxpipe.app_pages import *  # noqa: E402, F403
from foxpipe.app_pages import Studio  # noqa: E402


def studio(settings: Settings) -> Studio:
    """Every operation and read of the pages, on the process's engine."""
    return Studio(engine(settings))

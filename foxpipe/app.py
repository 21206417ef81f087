"""The steps the pages call, as plain functions: write the story, rewrite a scene, turn
approved scenes into standardized prompts, log the story. No Streamlit here."""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass

from foxpipe.config import Settings
from foxpipe.domain import prompts, quiz
from foxpipe.domain.models import Job, Story
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


# Streamlit stops its server on SIGTERM/SIGINT and the interpreter then runs this.
atexit.register(shutdown)


def _run(coro):  # noqa: ANN001, ANN202
    """Run one async provider call from the (synchronous) script thread."""
    return asyncio.run(coro)


def write_story(settings: Settings, answers: dict[str, str]) -> Story:
    """Never raises: a story that could not be written comes back as placeholders with
    ``problem`` saying why, so the editor opens and nothing the user typed is lost."""
    model = services.text_model(settings)
    try:
        story = _run(model.write_story(answers))
    except Exception as e:
        msg = settings.redact(getattr(e, "message", "") or str(e) or type(e).__name__)
        log.warning("[STORY] writing failed: %s", msg)
        return placeholder_story(answers, f"The story could not be written: {msg}")
    log.info("[STORY] %s wrote %r (%d missing)", model.name, story.title, len(story.missing()))
    return story


def rewrite_scene(settings: Settings, story: Story, number: int, note: str = "") -> str:
    model = services.text_model(settings)
    return _run(model.rewrite_scene(story, number, quiz.clean_text(note)[:300]))


@dataclass
class PreparedPrompts:
    sheet: str
    prompts: list[str]  # standardized (sheet + scene), before sanitization
    problem: str = ""


def prepare_prompts(settings: Settings, story: Story) -> PreparedPrompts:
    """Scene -> visual prompt (one call for all 20) -> the same character sheet on each."""
    model = services.text_model(settings)
    problem = ""
    try:
        sheet = _run(model.character_sheet(story.answers))
    except Exception as e:
        problem = f"The character sheet could not be written ({type(e).__name__}); using the quiz's."
        sheet = prompts.character_sheet(story.answers)
    try:
        visual = _run(model.create_prompts(story, sheet))
        if len(visual) != len(story.scenes):
            raise ValueError("wrong number of prompts")
    except Exception as e:
        problem = problem or f"Scene prompts could not be written ({type(e).__name__}); using the scene texts."
        visual = [prompts.visual_prompt(sc) for sc in story.scenes]
    return PreparedPrompts(sheet, prompts.standardize_prompts(visual, sheet, story.answers), problem)


def image_size(answers: dict[str, str]) -> str:
    return "1024x1536" if quiz.is_portrait(answers) else "1536x1024"


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

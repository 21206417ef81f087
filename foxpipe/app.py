"""The steps the pages call, as plain functions: write the story, rewrite a scene, turn
approved scenes into standardized prompts, log the story. No Streamlit here."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from foxpipe.config import Settings
from foxpipe.domain import frames, prompts, quiz
from foxpipe.domain.models import Job, Story
from foxpipe.domain.story import placeholder_story
from foxpipe.providers import registry as services

log = logging.getLogger(__name__)


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
    return PreparedPrompts(sheet, prompts.standardize_prompts(visual, sheet), problem)


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

"""What the pages can do and read, bound to the process's engine; no Streamlit here.

Part of the facade (``foxpipe.app`` re-exports everything here; pages import it from there).
Each method delegates to the engine, the channel (hero library, queue, review in bulk) or the
Short's narration and video, with the same messages and return values. The errors a page may
see are the facade's own names: ``GuardError`` (the cost guard refused), ``Refused`` (a change
that is illegal or stale: a teammate acted meanwhile; ``.reason`` says why), ``StoreError`` (the
store could not be read or written; ``.message`` says so in words), ``HeroError`` and
``QueueError`` (a hero or a queue entry that cannot be used, in words)."""

from __future__ import annotations

import logging
from typing import Any

from foxpipe import export, history, uploads
from foxpipe import insights as insight_tables
from foxpipe.channel import heroes as hero_library
from foxpipe.channel import queue as story_queue
from foxpipe.channel import review as bulk
from foxpipe.config import Settings
from foxpipe.domain.lifecycle import Refused
from foxpipe.domain.models import Job, Story
from foxpipe.domain.narration import SAMPLE_SENTENCE
from foxpipe.engine import checks, generation, hero, shortjobs, videojobs
from foxpipe.engine import narration as speech
from foxpipe.engine.continuity import story_check_cost
from foxpipe.engine.jobs import GuardError, JobRegistry, storage_message
from foxpipe.providers import registry as services
from foxpipe.safety import install_log_redaction
from foxpipe.store import StoreError

log = logging.getLogger(__name__)

HeroError = hero_library.HeroError
QueueError = story_queue.QueueError
Hero = hero_library.Hero
QueueItem = story_queue.Item

__all__ = [
    "ALL_STORIES",
    "GuardError",
    "Hero",
    "HeroError",
    "MAX_HERO_FILE_BYTES",
    "MAX_HERO_NAME",
    "MAX_IMAGE_UPLOAD_MB",
    "MUSIC_BUILTIN",
    "QUEUE_IMAGES",
    "QUEUE_READY",
    "QUEUE_STATE_LABEL",
    "QUEUE_WAITING",
    "QUEUE_WRITING",
    "QueueError",
    "QueueItem",
    "REVIEW_SHORTCUTS",
    "Refused",
    "SHORT_LENGTH_MAX",
    "SHORT_LENGTH_MIN",
    "SLIDESHOW",
    "StoreError",
    "Studio",
    "approved_zip",
    "everything_zip",
    "export_hero",
    "hero_form_label",
    "hero_forms",
    "hero_skipped_questions",
    "hero_started",
    "insight_frames",
    "install_log_redaction",
    "narration_line",
    "narration_ready",
    "narration_styles",
    "narration_summary",
    "on_model",
    "review_insights",
    "review_step",
    "review_verdict",
    "runtime_problems",
    "service_status",
    "thumbnail_url",
    "selectable",
    "story_check_cost",
    "storage_message",
    "story_label",
    "validate_upload",
    "verdict_on_model",
    "with_hero",
]

# ------------------------------------------------------------------ plain data, no engine
MAX_IMAGE_UPLOAD_MB = uploads.MAX_IMAGE_UPLOAD_MB
MUSIC_BUILTIN = shortjobs.MUSIC_BUILTIN
SHORT_LENGTH_MIN = shortjobs.LENGTH_MIN
SHORT_LENGTH_MAX = shortjobs.LENGTH_MAX
SLIDESHOW = videojobs.SLIDESHOW
REVIEW_SHORTCUTS = bulk.SHORTCUTS
MAX_HERO_NAME = hero_library.MAX_NAME
MAX_HERO_FILE_BYTES = hero_library.MAX_FILE_BYTES
QUEUE_WAITING = story_queue.WAITING
QUEUE_WRITING = story_queue.WRITING
QUEUE_IMAGES = story_queue.IMAGES
QUEUE_READY = story_queue.READY
QUEUE_STATE_LABEL = story_queue.STATE_LABEL
ALL_STORIES = insight_tables.ALL


def validate_upload(data: bytes) -> bytes:
    """A scene image of the user's own, checked and normalised; ValueError in words."""
    return uploads.validate_upload(data)


def approved_zip(job: Job) -> bytes:
    """The approved images, story.json and prompts.csv as a ZIP."""
    return export.build_zip(job)


def everything_zip(job: Job) -> bytes:
    """Images, clips, the story video and its .srt, story.json and prompts.csv as a ZIP."""
    return videojobs.everything_zip(job)


def narration_summary(job: Job) -> dict[str, int]:
    return shortjobs.narration_summary(job)


def narration_ready(job: Job) -> bool:
    return shortjobs.narration_ready(job)


def narration_styles() -> dict[str, str]:
    return shortjobs.style_labels()


def selectable(job: Job) -> list[int]:
    return bulk.selectable(job)


def on_model(job: Job) -> list[int]:
    return bulk.on_model(job)


def review_step(job: Job, current: int, delta: int) -> int:
    return bulk.step(job, current, delta)


def narration_line(job: Job, index: int) -> str:
    return bulk.narration_line(job, index)


def review_verdict(version: Any) -> Any:
    return bulk.verdict_of(version)


def verdict_on_model(version: Any) -> bool:
    return bulk.is_on_model(version)


def hero_forms(job: Job) -> tuple[str, ...]:
    return hero.forms_for(job)


def hero_form_label(job: Job, form: str) -> str:
    return hero.form_label(job, form)


def hero_started(job: Job) -> bool:
    return hero.started(job)


def hero_skipped_questions(saved: Any) -> set[str]:
    return hero_library.skipped(saved)


def with_hero(saved: Any, answers: dict[str, str]) -> dict[str, str]:
    return hero_library.with_hero(saved, answers)


def export_hero(saved: Any) -> bytes:
    return hero_library.export_bytes(saved)


def service_status(settings: Settings) -> list[Any]:
    """Each service's provider and whether it is live, for the sidebar."""
    return services.status(settings)


def runtime_problems(settings: Settings) -> list[str]:
    """What the providers found wrong while running (a refused key, a missing tool)."""
    return services.runtime_problems(settings)


def thumbnail_url(url: str) -> str:
    """A scaled version of an image hosted on Cloudinary."""
    from foxpipe.providers import cloudinary  # its SDK loads when a hosted image is shown

    return cloudinary.thumbnail_url(url)


def story_label(job: dict[str, Any]) -> str:
    return insight_tables.story_label(job)


def review_insights(jobs: list[dict[str, Any]], cost_per_image: float = 0.0) -> Any:
    return insight_tables.insights(jobs, cost_per_image)


def insight_frames(jobs: list[dict[str, Any]]) -> Any:
    return insight_tables.tables(jobs)


# ------------------------------------------------------------------ the engine's operations
class Studio:
    """Every operation and read a page needs, on the process's engine (``foxpipe.app.studio``)."""

    def __init__(self, registry: JobRegistry) -> None:
        self._reg = registry
        self.settings: Settings = registry.settings

    # ---- jobs
    def get(self, job_id: str) -> Job | None:
        """The job as stored now (None when missing or unreadable: a store failure is said by
        ``problem``, a damaged job by ``load``)."""
        return self._reg.get(job_id)

    def load(self, job_id: str) -> Job | None:
        """The job as stored now; raises StoreError when it cannot be read."""
        return self._reg.load(job_id)

    @property
    def problem(self) -> str:
        """The last storage failure ('' when the store is fine)."""
        return self._reg.problem

    @property
    def store_problem(self) -> str:
        """What is wrong with the store's set-up ('' when nothing is)."""
        return self._reg.store_problem

    @property
    def store_is_sqlite(self) -> bool:
        """The store is a local SQLite file (else PostgreSQL)."""
        return self._reg.store.is_sqlite

    def job_documents(self) -> list[dict[str, Any]]:
        """Every stored job as a plain dict (for Insights)."""
        return [j.to_dict() for j in self._reg.store.jobs_where()]

    def past_stories(self, owner: str | None = None) -> list[dict[str, Any]]:
        return history.past_stories(self._reg, owner=owner)

    def progress(self, job_id: str) -> Any:
        return self._reg.progress(job_id)

    def cost_per_image(self) -> float:
        return self._reg.pipeline.cost_per_image()

    def cost_estimate(self, job: Job, per_image: float) -> tuple[int, float]:
        return generation.cost_estimate(job, per_image)

    def budget_left(self, job: Job) -> dict[str, int]:
        return self._reg.budget_left(job)

    # ---- the review
    def approve(
        self, job_id: str, indexes: list[int], seen: dict[int, int] | None = None
    ) -> tuple[int, list[str]]:
        """How many were approved, and why the others were not (a teammate changed one
        meanwhile, a check still runs, ...)."""
        refused: list[str] = []
        n = self._reg.approve(job_id, indexes, seen=seen, refused=refused)
        return n, refused

    def reject(
        self,
        job_id: str,
        index: int,
        reasons: list[str] | None = None,
        note: str = "",
        seen: int | None = None,
    ) -> None:
        self._reg.reject(job_id, index, reasons, note, seen=seen)

    def retry(self, job_id: str, index: int, prompt: str | None = None) -> None:
        self._reg.retry(job_id, index, prompt)

    def retry_failed(self, job_id: str) -> None:
        self._reg.retry_failed(job_id)

    def cancel(self, job_id: str) -> None:
        self._reg.cancel(job_id)

    def restore_version(self, job_id: str, index: int, version: int) -> None:
        self._reg.restore_version(job_id, index, version)

    def use_own_image(self, job_id: str, index: int, data: bytes) -> None:
        self._reg.use_own_image(job_id, index, data)

    def check_again(self, job_id: str, index: int) -> bool:
        return self._reg.check_again(job_id, index)

    def retry_upload(self, job_id: str, index: int) -> Any:
        return self._reg.retry_upload(job_id, index)

    def uploads_running(self, job_id: str) -> list[int]:
        return self._reg.uploads_running(job_id)

    # ---- continuity
    def check_mode(self, job: Job) -> str:
        return checks.mode_of(self.settings, job)

    def check_threshold(self, job: Job) -> int:
        return checks.threshold_of(self.settings, job)

    def check_cost(self) -> float:
        return checks.check_cost(self._reg)

    def check_estimate(self, job: Job, per_image: float, per_check: float) -> dict[str, float]:
        return checks.estimate(self.settings, job, per_image, per_check)

    # ---- review in bulk
    def bulk_approve(self, job_id: str, indexes: list[int]) -> int:
        return bulk.approve(self._reg, job_id, indexes)

    def bulk_reject(
        self, job_id: str, indexes: list[int], reasons: list[str], note: str = ""
    ) -> tuple[list[int], list[str]]:
        return bulk.reject(self._reg, job_id, indexes, reasons, note)

    def bulk_regenerate(self, job_id: str, indexes: list[int]) -> list[int]:
        return bulk.regenerate(self._reg, job_id, indexes)

    def approve_on_model(self, job_id: str) -> int:
        return bulk.approve_on_model(self._reg, job_id)

    # ---- the hero sheet
    def hero_drawing(self, job_id: str, form: str) -> bool:
        return hero.drawing(self._reg, job_id, form)

    def start_hero_reference(self, job_id: str, form: str, feedback: str = "") -> str:
        """Draw one form in the background; '' or why it did not start."""
        return hero.start_reference(self._reg, job_id, form, feedback)

    def start_hero_images(self, job_id: str, use_references: bool = True) -> None:
        """Raises GuardError when the images would overspend."""
        hero.start_images(self._reg, job_id, use_references)

    # ---- the hero library
    def hero(self, hero_id: str | None) -> Any:
        return hero_library.get(self._reg, hero_id)

    def heroes(self) -> list[Any]:
        return hero_library.all_heroes(self._reg)

    def hero_library(self) -> tuple[list[Any], list[tuple[str, str]]]:
        """The heroes that can be read, and (id, name) of those that cannot."""
        return hero_library.library(self._reg)

    def hero_saved_from(self, job_id: str) -> Any:
        return hero_library.saved_from(self._reg, job_id)

    def save_hero(self, job: Job) -> Any:
        return hero_library.save_from_job(self._reg, job)

    def rename_hero(self, hero_id: str, name: str) -> None:
        hero_library.rename(self._reg, hero_id, name)

    def delete_hero(self, hero_id: str) -> None:
        hero_library.delete(self._reg, hero_id)

    def import_hero(self, raw: bytes) -> Any:
        return hero_library.import_bytes(self._reg, raw)

    # ---- the queue of stories
    def enqueue(self, owner: str, answers: dict[str, Any], hero_id: str = "") -> Any:
        return story_queue.add(self._reg, owner, answers, hero_id=hero_id)

    def enqueue_file(self, owner: str, raw: bytes, filename: str = "") -> list[Any]:
        return story_queue.add_file(self._reg, owner, raw, filename)

    def queue_items(self) -> list[Any]:
        return story_queue.items(self._reg)

    def queue_paused(self) -> str:
        return story_queue.paused(self._reg)

    def pause_queue(self) -> None:
        story_queue.pause(self._reg)

    def resume_queue(self) -> None:
        story_queue.resume(self._reg)

    def remove_from_queue(self, item_id: str) -> bool:
        return story_queue.remove(self._reg, item_id)

    # ---- the Short: narration and music
    def voice(self) -> Any:
        """The narrator's voice model and what the page says about it."""
        return shortjobs.voice(self._reg)

    def voices(self) -> list[str]:
        return shortjobs.voices(self._reg)

    def narration_writing(self, job_id: str) -> bool:
        return shortjobs.writing(self._reg, job_id)

    def narration_speaking(self, job_id: str) -> bool:
        return shortjobs.speaking(self._reg, job_id)

    def lines_rewriting(self, job_id: str) -> list[int]:
        return shortjobs.rewriting(self._reg, job_id)

    def set_narration(self, job_id: str, on: bool) -> None:
        shortjobs.set_narration(self._reg, job_id, on)

    def set_voice(self, job_id: str, name: str, style: str) -> None:
        shortjobs.set_voice(self._reg, job_id, name, style)

    def set_length(self, job_id: str, seconds: Any) -> None:
        shortjobs.set_length(self._reg, job_id, seconds)

    def start_writing_lines(self, job_id: str) -> bool:
        return shortjobs.start_writing(self._reg, job_id)

    def narration_estimate(self, job: Job) -> float:
        return shortjobs.estimate(self._reg, job)

    def start_speaking(self, job_id: str, indexes: list[int] | None = None) -> str:
        """'' or why not (the cost guard, nothing to say)."""
        return shortjobs.start_synthesis(self._reg, job_id, indexes)

    def set_line(self, job_id: str, index: int, text: Any) -> str:
        return shortjobs.set_line(self._reg, job_id, index, text)

    def retry_line(self, job_id: str, index: int) -> str:
        return shortjobs.retry_line(self._reg, job_id, index)

    def start_line_rewrite(self, job_id: str, index: int) -> bool:
        return shortjobs.start_rewrite(self._reg, job_id, index)

    def set_music(self, job_id: str, choice: str, name: str = "", data: bytes = b"") -> str:
        """Checked there (type, size, audio); '' or why not."""
        return shortjobs.set_music(self._reg, job_id, choice, name, data)

    def start_voice_preview(self, voice: str, style: str) -> str:
        """One sample sentence in the background (a paid sample is charged to the cost guard
        first: GuardError); the task's id. Its result has ``wav`` or ``error``."""
        choice = shortjobs.voice(self._reg)
        if not choice.free:
            self._reg.charge(
                "narration",
                1,
                speech.estimate_cost(choice.model, [SAMPLE_SENTENCE]),
                limit=shortjobs.s_budget(self._reg),
            )

        async def work(t: Any) -> speech.Preview:
            return await speech.preview(choice.model, voice, style)

        from foxpipe import app  # the facade's background steps (app imports this module)

        return app.start_task(self.settings, "preview", work, "Speaking a sample…")

    # ---- videos
    def video_providers(self) -> list[Any]:
        return videojobs.providers(self.settings)

    def video_estimate(self, provider: str, n_scenes: int) -> float:
        return videojobs.estimate(self.settings, provider, n_scenes)

    def clip_cost(self, provider: str) -> float:
        return videojobs.clip_cost(self.settings, provider)

    def start_video(
        self,
        job_id: str,
        provider: str = SLIDESHOW,
        scenes: list[int] | None = None,
        seconds_per_scene: float = 4.0,
        captions: bool = True,
    ) -> str:
        """'' or why it did not start."""
        return videojobs.start(self._reg, job_id, provider, scenes, seconds_per_scene, captions)

    def retry_clip(self, job_id: str, index: int) -> str:
        return videojobs.retry_clip(self._reg, job_id, index)

    # ---- approving scenes with a saved hero
    def start_approval_with_hero(
        self, story: Story, owner: str, hero_id: str, again: bool = False
    ) -> str:
        return hero_library.start_approval(self.settings, story, owner, hero_id, again)

    def approval_opens_hero_page(self, story: Story, hero_id: str = "") -> bool:
        """Whether approving these scenes opens the Hero page (its reference sheet is drawn and
        approved before the images) rather than the gallery: known before the approval starts,
        so the page can switch at the click."""
        if hero_id:
            return hero_library.sheet_first(self._reg, hero_id, story)
        return hero.wanted(self.settings, self._reg)

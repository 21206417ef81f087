"""The hero reference sheet: before the 20 scenes, one image of the hero (and one of its
powered-up form) drawn from the character sheet, approved by the user, then given to the image
model with every scene (``images.edit``) so the hero keeps one look."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain import prompts, structures
from foxpipe.domain.models import Job
from foxpipe.engine.generation import Pipeline, blocking
from foxpipe.engine.jobs import GuardError, JobRegistry
from foxpipe.engine.retry import backoff_delay
from foxpipe.providers.base import Capability, ProviderError, can

log = logging.getLogger(__name__)

FORMS = ("base", "powered")  # every form a structure can have
# The power fantasy's labels, for older callers; form_label(job, form) follows the story's structure.
FORM_LABEL = {f: structures.form_label(structures.POWER_FANTASY, f) for f in FORMS}
STORE_INDEX = {
    "base": 100,
    "powered": 101,
}  # store slots for reference images, apart from the scenes


def wanted(settings: Settings, registry: JobRegistry) -> bool:
    """A reference sheet is made when OpenAI is live and the image model takes references."""
    return settings.openai_live and can(registry.pipeline.images, Capability.REFERENCES)


def forms_for(job: Job) -> tuple[str, ...]:
    """The reference images this story needs: the base hero, plus the second form if its structure has one."""
    return structures.get(job.story.answers).forms()


def form_label(job: Job, form: str) -> str:
    return structures.form_label(job.story.answers, form)


def started(job: Job) -> bool:
    return any(s.generations for s in job.slots)


def reference_prompt(sheet: str, form: str, feedback: str = "", second_form: bool = True) -> str:
    what = (
        ("the HERO in its ordinary form (before the power awakens)" if second_form else "the HERO")
        if form == "base"
        else "the HERO in its POWERED-UP FORM, identical to the reference image except for the power's glow"
    )
    prompt = (
        f"{sheet}\nCHARACTER REFERENCE SHEET of {what}: full body, front, side and three-quarter "
        "views side by side, neutral pose, plain light background, even lighting, no other "
        "characters, no text."
    )
    return prompts.with_feedback(prompt, feedback)


@dataclass
class Reference:
    form: str
    local_path: str
    prompt: str
    path: str  # "edit" or "generate"
    seconds: float
    attempts: int
    usage: dict[str, Any] = field(default_factory=dict)


async def _make(pipe: Pipeline, job: Job, form: str, feedback: str) -> Reference:
    settings = pipe.settings
    refs = None
    if form == "powered" and job.references.get("base") and can(pipe.images, Capability.REFERENCES):
        try:
            refs = [Path(job.references["base"]).read_bytes()]
        except OSError:
            refs = None
    base = reference_prompt(
        job.character_sheet, form, feedback, structures.get(job.story.answers).has_second_form
    )
    level, attempts = 0, 1 + max(0, settings.image_retries)  # the first try, then the retries
    last: ProviderError | None = None
    for attempt in range(1, attempts + 1):
        sent = prompts.sanitize_prompt(
            base, level, job.character_sheet, f"Character reference sheet of the hero ({form})."
        )
        t0 = time.monotonic()
        try:
            async with pipe.limiter.slot(f"hero-{job.id}"):
                async with asyncio.timeout(settings.image_timeout):
                    result = await pipe.images.generate(
                        sent, job.size, scene_number=1 if form == "base" else 20, references=refs
                    )
        except TimeoutError:
            last = ProviderError(
                f"The image request timed out after {settings.image_timeout:.0f} s."
            )
        except ProviderError as e:
            last = e
        else:
            seconds = time.monotonic() - t0
            version = int(time.time() * 1000) % 10**9
            stored = await blocking(
                pipe,
                pipe.store.save,
                job.id,
                STORE_INDEX[form],
                version,
                result.data,
                tags=[job.story.id, "reference"],
            )
            log.info(
                "[IMAGE] job %s reference %s ready in %.1fs via %s",
                job.id[:6],
                form,
                seconds,
                result.path,
            )
            return Reference(
                form, stored.local_path, sent, result.path, seconds, attempt, result.usage
            )
        log.info(
            "[IMAGE] job %s reference %s attempt %d failed: %s",
            job.id[:6],
            form,
            attempt,
            last.message,
        )
        if last.retry_after:
            pipe.limiter.pause_for(last.retry_after)
        if last.kind == "fatal":
            break
        if last.kind == "policy":
            if level >= prompts.POLICY_LEVELS - 1:
                break
            level += 1
        elif attempt < attempts:
            await asyncio.sleep(
                backoff_delay(attempt, pipe.backoff_base, pipe.backoff_cap, last.retry_after)
            )
    assert last is not None
    raise last


def _key(form: str) -> str:
    return f"hero-{form}"


def drawing(registry: JobRegistry, job_id: str, form: str) -> bool:
    """Whether this reference is being drawn now (on this app's worker)."""
    return registry.busy(job_id, _key(form))


def start_reference(registry: JobRegistry, job_id: str, form: str, feedback: str = "") -> str:
    """Draw (or redraw) one reference image in the background; the page polls the job.
    Every drawing goes through the cost guard first (it counts in the story's images and in
    today's budget). '' when it started, else why not."""
    job = registry.get(job_id)
    if job is None:
        return "The gallery was not found."
    if drawing(registry, job_id, form):  # said before anything is counted against the budget
        return "It is being drawn already."
    if not can(registry.pipeline.images, Capability.FREE):
        try:
            registry._check_story(job, 1)
            registry.charge("images", 1, registry.pipeline.cost_per_image())
        except GuardError as e:
            return str(e)
    registry.mutate(job_id, lambda j: j.hero_errors.pop(form, None))

    async def work() -> None:
        try:
            ref = await _make(registry.pipeline, job, form, feedback)
        except ProviderError as e:
            message = (
                f"{form_label(job, form)} could not be drawn: {registry.settings.redact(e.message)}"
            )
            await asyncio.to_thread(
                registry.mutate, job_id, lambda j: j.hero_errors.__setitem__(form, message)
            )
            return
        except asyncio.CancelledError:
            await asyncio.to_thread(
                registry.mutate,
                job_id,
                lambda j: j.hero_errors.__setitem__(
                    form, "Stopped before it was drawn. Draw it again."
                ),
            )
            raise

        def record(j: Job) -> None:
            j.references[form] = ref.local_path
            j.reference_count += 1
            if form == "base":  # a new hero means the powered-up form must be redrawn from it
                j.references.pop("powered", None)

        await asyncio.to_thread(registry.mutate, job_id, record)

    if not registry.submit(job_id, _key(form), work):  # a Draw at the same moment came first
        if not can(registry.pipeline.images, Capability.FREE):  # counted above, never sent
            registry.give_back("images", 1, registry.pipeline.cost_per_image())
        return "It is being drawn already."
    return ""


def make_reference(
    registry: JobRegistry, job_id: str, form: str, feedback: str = "", timeout: float = 600
) -> str:
    """Draw one reference and wait for it (the command line); its local path. Raises
    ProviderError with a message the user can read."""
    problem = start_reference(registry, job_id, form, feedback)
    if problem:
        raise ProviderError(problem, "fatal")
    deadline = time.monotonic() + timeout
    while drawing(registry, job_id, form) and time.monotonic() < deadline:
        time.sleep(0.05)
    job = registry.get(job_id)
    if job is None or form not in job.references:
        raise ProviderError(
            job.hero_errors.get(form, "The reference was not drawn.") if job else "Gone."
        )
    return job.references[form]


def start_images(registry: JobRegistry, job_id: str, use_references: bool = True) -> None:
    """The sheet is approved (or skipped): queue the 20 scene images."""
    if not use_references:
        registry.mutate(job_id, lambda j: j.references.clear())
    job = registry.get(job_id)
    if job is not None:
        registry.schedule(job_id, list(range(len(job.slots))))

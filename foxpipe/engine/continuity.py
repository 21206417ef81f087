"""The continuity task: check one stored image against its form's reference and decide what
happens next. One async entry point, ``check_image``, for the worker to call right after an
image is stored (in the background: it never delays image starts) and for "Check again".

It never raises: a missing reference falls back to the character sheet's text, a checker that
fails or hangs gives a "not_checked" verdict (which never blocks approval and never fixes).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain.continuity import (
    Decision,
    Verdict,
    decide,
    fix_text,
    reference_path,
    reference_text,
)
from foxpipe.domain.models import SCENE_COUNT
from foxpipe.providers.base import VisionCheck

log = logging.getLogger(__name__)


@dataclass
class CheckOutcome:
    verdict: Verdict
    decision: Decision  # "accept", "flag" or "fix"
    fix_feedback: str = ""  # for a "fix": the text to add to the prompt (prompts.with_feedback)
    reference: str = ""  # which reference was used: a file path, or "character sheet"


def _read(path: str) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


async def check_image(
    checker: VisionCheck,
    image: bytes | str | Path,
    scene_number: int,
    *,
    references: dict[str, str] | None = None,
    character_sheet: str = "",
    mode: str = "fix",
    threshold: int = 70,
    already_fixed: bool = False,
    timeout: float = 120.0,
    form: str = "",
) -> CheckOutcome:
    """Check the image (bytes or a local path) of scene ``scene_number`` (1-20) against the
    hero's reference for its form (``Job.references``: the hero sheet for 1-10, the powered-up
    form for 11-20; the character sheet's text when there is none) and decide:
    ``accept``, ``flag`` (show the verdict) or ``fix`` (regenerate once with ``fix_feedback``).
    ``already_fixed``: the image is itself an automatic fix (a fix never loops). ``form``:
    the hero's form in this scene from the story's structure (``structures.form_for``)."""
    if mode == "off":
        return CheckOutcome(
            Verdict.not_checked(checker.name, "Continuity checks are off."), "accept"
        )
    if isinstance(image, (str, Path)):
        data = await asyncio.to_thread(_read, str(image))
        if data is None:
            v = Verdict.not_checked(checker.name, "The image file could not be read.")
            return CheckOutcome(v, "accept")
    else:
        data = image
    path = reference_path(references or {}, scene_number, form)
    ref = await asyncio.to_thread(_read, path) if path else None
    text = reference_text(character_sheet, scene_number, form)
    used = path if ref else "character sheet"
    try:
        async with asyncio.timeout(timeout):
            verdict = await checker.check(ref, text, data, scene_number, form=form)
    except TimeoutError:
        verdict = Verdict.not_checked(checker.name, f"The check timed out after {timeout:.0f} s.")
    except Exception as e:  # a checker must not take the worker down
        log.exception("[CONTINUITY] checker %s failed on scene %s", checker.name, scene_number)
        verdict = Verdict.not_checked(checker.name, f"The check failed ({type(e).__name__}).")
    decision = decide(verdict, mode, threshold, already_fixed)
    feedback = fix_text(verdict.defects, verdict.note) if decision == "fix" else ""
    log.info(
        "[CONTINUITY] scene %s: %s score %s -> %s",
        scene_number,
        verdict.status,
        verdict.score,
        decision,
    )
    return CheckOutcome(verdict, decision, feedback, used)


def story_check_cost(settings: Settings, images: int = SCENE_COUNT, fix_rate: float = 0.0) -> float:
    """US$ the checks of a story's images are estimated to cost (0 with the embedded check
    or with checks off), for the cost estimate."""
    if settings.continuity == "off" or not settings.openai_live:
        return 0.0
    from foxpipe.providers.vision_openai import cost_per_story

    return cost_per_story(settings.openai_vision_model, images, fix_rate)


def log_fields(verdict: Verdict | None) -> dict[str, Any]:
    """The verdict's columns for the prompt log's image row."""
    if verdict is None:
        return {
            "continuity_status": "",
            "continuity_score": "",
            "continuity_on_model": "",
            "continuity_defects": "",
            "continuity_note": "",
            "continuity_checker": "",
        }
    checked = verdict.checked
    return {
        "continuity_status": verdict.status,
        "continuity_score": verdict.score if checked else "",
        "continuity_on_model": verdict.on_model if checked else "",
        "continuity_defects": "; ".join(verdict.defects),
        "continuity_note": verdict.note if checked else verdict.error,
        "continuity_checker": verdict.checker,
    }

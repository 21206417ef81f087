"""Review in bulk: approve, reject with one reason or regenerate several images together,
approve every image the continuity check found on-model, and what the compact review mode
shows beside each image."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from foxpipe.domain import prompts
from foxpipe.domain.lifecycle import Refused
from foxpipe.domain.models import ImageVersion, Job, SlotStatus
from foxpipe.engine.jobs import JobRegistry

log = logging.getLogger(__name__)

# Keyboard shortcuts of the compact review mode (Streamlit reserves C and R).
SHORTCUTS = {"previous": "P", "next": "N", "approve": "A", "reject": "X"}


def selectable(job: Job) -> list[int]:
    """Images a reviewer can act on together: ready ones, and failed ones (regenerate)."""
    return [s.index for s in job.slots if s.status in (SlotStatus.READY, SlotStatus.FAILED)]


def verdict_of(version: ImageVersion | None) -> Mapping[str, Any]:
    """The continuity verdict stored with an image, as a mapping ({} when there is none)."""
    v = getattr(version, "verdict", None) if version is not None else None
    if v is None:
        return {}
    if isinstance(v, Mapping):
        return v
    to_dict = getattr(v, "to_dict", None)
    if callable(to_dict):
        try:
            d = to_dict()
            return d if isinstance(d, Mapping) else {}
        except Exception:
            return {}
    return {}


def is_on_model(version: ImageVersion | None) -> bool:
    """Checked and on-model; an image never checked (or whose check failed) is not."""
    v = verdict_of(version)
    return bool(v) and v.get("on_model") is True and v.get("status", "checked") == "checked"


def on_model(job: Job) -> list[int]:
    return [s.index for s in job.slots if s.status is SlotStatus.READY and is_on_model(s.image)]


def approve(
    registry: JobRegistry, job_id: str, indexes: list[int], seen: dict[int, int] | None = None
) -> int:
    return registry.approve(job_id, sorted(set(indexes)), seen=seen)


def approve_on_model(registry: JobRegistry, job_id: str) -> int:
    job = registry.get(job_id)
    return approve(registry, job_id, on_model(job)) if job else 0


def reject(
    registry: JobRegistry,
    job_id: str,
    indexes: list[int],
    reasons: list[str] | None = None,
    note: str = "",
) -> tuple[list[int], list[str]]:
    """Reject these ready images with one reason: each gets the same feedback and all are made
    again in one scheduling (through the cost guard: GuardError when it would overspend, and
    then nothing is changed). The indexes rejected, and why others were not."""
    feedback = prompts.feedback_text(reasons or [], note)
    job = registry.get(job_id)
    if job is None:
        return [], ["The gallery was not found."]
    chosen = sorted({i for i in indexes if 0 <= i < len(job.slots)})
    ok = [i for i in chosen if job.slots[i].status is SlotStatus.READY]
    skipped = [f"Scene {i + 1} is not ready for review." for i in chosen if i not in ok]
    if not ok:
        return [], skipped
    before = {i: job.slots[i].feedback for i in ok}

    def set_feedback(j: Job) -> None:
        for i in ok:
            j.slots[i].feedback = feedback

    registry.mutate(job_id, set_feedback)
    try:
        started = registry.schedule(job_id, ok)
    except Exception:  # GuardError, or the store: put the old feedback back, change nothing

        def restore(j: Job) -> None:
            for i, f in before.items():
                j.slots[i].feedback = f

        registry.mutate(job_id, restore)
        raise
    if started:
        registry._log_review(job_id, started, "rejected")
    return started, skipped


def regenerate(registry: JobRegistry, job_id: str, indexes: list[int]) -> list[int]:
    """Make these images again with their prompts unchanged (ready or failed ones)."""
    job = registry.get(job_id)
    if job is None:
        return []
    ok = [
        i
        for i in sorted(set(indexes))
        if 0 <= i < len(job.slots) and job.slots[i].status in (SlotStatus.READY, SlotStatus.FAILED)
    ]
    try:
        return registry.schedule(job_id, ok) if ok else []
    except Refused:
        return []


def narration_line(job: Job, index: int) -> str:
    """The scene's narration line, when the story has narration ('' otherwise)."""
    narration = getattr(job, "narration", None)
    lines = getattr(narration, "lines", None)
    if lines is None and isinstance(narration, Mapping):
        lines = narration.get("lines")
    if not lines:
        return ""
    for n, line in enumerate(lines):
        at = line.get("index") if isinstance(line, Mapping) else getattr(line, "index", None)
        if at == index or (at is None and n == index):
            text = line.get("text", "") if isinstance(line, Mapping) else getattr(line, "text", "")
            return str(text or "")
    return ""


def step(job: Job, current: int, delta: int) -> int:
    """The next (or previous) scene to review from ``current``: ready ones first, wrapping."""
    n = len(job.slots)
    if n == 0:
        return 0
    ready = [s.index for s in job.slots if s.status is SlotStatus.READY]
    pool = ready or list(range(n))
    if delta > 0:
        after = [i for i in pool if i > current]
        return after[0] if after else pool[0]
    before = [i for i in pool if i < current]
    return before[-1] if before else pool[-1]

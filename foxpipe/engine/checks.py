"""Continuity in the engine: every stored image is checked against the hero in the background,
and what the verdict asks for is done through the lifecycle and the cost guard.

- ``start`` runs right after an image is stored (``run_slot`` calls ``JobRegistry.after_image``);
  the slot was marked ``checking`` in the same transaction as its image, so the reviewer cannot
  approve it before the verdict is in. Checks run on the worker loop as their own tasks, at
  most ``MAX_CHECKS`` at a time (the OpenAI checker adds its own request limiter): image
  requests never wait for them.
- ``fix`` mode: an image below the threshold is made again once, by itself, with its defects as
  a fix in the prompt (a new run of the slot: ``registry.schedule``, so the story and daily
  guards apply and the image is charged). A fix refused by the guard flags the image with the
  guard's message. The fixed image (``ImageVersion.auto_fix``) is only ever flagged.
- A check that fails gives a "not checked" verdict: the slot is approvable at once, and
  ``check_again`` runs it again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from foxpipe.config import Settings
from foxpipe.domain import structures
from foxpipe.domain.continuity import DEFAULT_THRESHOLD, Verdict, parse_mode
from foxpipe.domain.models import Job, SlotStatus
from foxpipe.engine.continuity import CheckOutcome, check_image
from foxpipe.engine.generation import image_row, log_safely
from foxpipe.providers.base import VisionCheck

if TYPE_CHECKING:
    from foxpipe.engine.jobs import JobRegistry

log = logging.getLogger(__name__)

# (job, slot, version) -> (status, cost) of an image's log row not written yet (its check runs).
_PENDING_ROWS: dict[tuple[str, int, int], tuple[str, float]] = {}
_ROWS_LOCK = threading.Lock()
MAX_CHECKS = 4  # checks running at once on the worker (the embedded check uses a CPU each)
_LIMITS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def mode_of(settings: Settings, job: Job) -> str:
    """The job's continuity mode (its own, else CONTINUITY)."""
    return parse_mode(job.continuity or settings.continuity)


def threshold_of(settings: Settings, job: Job) -> int:
    t = job.continuity_threshold
    if 0 <= t <= 100:
        return t
    s = settings.continuity_threshold
    return s if 0 <= s <= 100 else DEFAULT_THRESHOLD


def checker(reg: JobRegistry) -> VisionCheck:
    """The pipeline's checker (chosen from the settings once per worker)."""
    pipe = reg.pipeline
    if pipe.vision is None:
        from foxpipe.providers.registry import vision_check

        pipe.vision = vision_check(reg.settings)
    return pipe.vision


def check_cost(reg: JobRegistry) -> float:
    """Estimated US$ of one check with this pipeline's checker (0 for the embedded one)."""
    c = checker(reg)
    if getattr(c, "free", True):
        return 0.0
    from foxpipe.providers.vision_openai import cost_per_check

    return cost_per_check(getattr(c, "model", c.name))


def key(index: int, version: int) -> str:
    return f"check:{index}:{version}"


def start(
    reg: JobRegistry,
    job_id: str,
    index: int,
    gen: int,
    *,
    again: bool = False,
    log_status: str = "",
    log_cost: float = 0.0,
) -> bool:
    """Check the shown image of slot ``index`` (run ``gen``) in the background. False when
    there is nothing to check or that image's check is already running. ``log_status``: the
    image's own prompt-log row ("ready", "regenerated") is written when the check ends, with
    the verdict; without it the row says "check: <what was done>"."""
    job = reg.get(job_id)
    if job is None or not 0 <= index < len(job.slots):
        return False
    slot = job.slots[index]
    vi = slot.current
    if slot.image is None:
        return False
    if not again and mode_of(reg.settings, job) == "off":
        return False
    if log_status:  # the image's own log row waits for its verdict
        with _ROWS_LOCK:
            _PENDING_ROWS[(job_id, index, vi)] = (log_status, log_cost)
    return reg.submit(
        job_id,
        key(index, vi),
        lambda: run(
            reg, job_id, index, gen, vi, again=again, log_status=log_status, log_cost=log_cost
        ),
    )


def check_again(reg: JobRegistry, job_id: str, index: int) -> bool:
    """The reviewer's "Check again": check the shown image now (flag only when it is no longer
    waiting for review). The slot is held (``checking``) while a ready image is checked."""
    job = reg.get(job_id)
    if job is None or not 0 <= index < len(job.slots):
        return False
    s = job.slots[index]
    if s.image is None or s.status.in_flight or reg.busy(job_id, key(index, s.current)):
        return False
    vi, gen = s.current, s.generations

    def hold(j: Job) -> bool:
        sl = j.slots[index]
        if sl.current != vi or sl.generations != gen:
            return False
        sl.checking = sl.status is SlotStatus.READY
        sl.versions[vi].verdict = {}
        return True

    if not reg.mutate(job_id, hold):
        return False
    return start(reg, job_id, index, gen, again=True)


def _limit() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    sem = _LIMITS.get(loop)
    if sem is None:
        sem = _LIMITS[loop] = asyncio.Semaphore(MAX_CHECKS)
    return sem


@dataclass
class _Facts:
    path: str
    auto_fix: bool
    references: dict[str, str]
    sheet: str
    mode: str
    threshold: int
    form: str  # the hero's form in this scene, from the story's structure


async def run(
    reg: JobRegistry,
    job_id: str,
    index: int,
    gen: int,
    vi: int,
    *,
    again: bool = False,
    log_status: str = "",
    log_cost: float = 0.0,
) -> str:
    """One check of version ``vi`` of slot ``index`` and what follows; what was done:
    "accept", "flag", "fix", "not_checked" or "gone". Never raises: whatever goes wrong, the
    slot is released (a "not checked" verdict, approvable, with Check again)."""
    try:
        return await _run(
            reg, job_id, index, gen, vi, again=again, log_status=log_status, log_cost=log_cost
        )
    except asyncio.CancelledError:
        if not reg.closing:  # the worker died: release the slot (not checked, with Check again)
            _release(reg, job_id, index, gen, vi, "The check was interrupted.")
        raise
    except Exception as e:
        log.exception(
            "[CONTINUITY] job %s scene %d: the check's follow-up failed", job_id[:6], index + 1
        )
        _release(
            reg, job_id, index, gen, vi, f"The check could not be completed ({type(e).__name__})."
        )
        return "not_checked"


def release_interrupted(reg: JobRegistry) -> int:
    """The worker died: every check it was running (or had not started) releases its slot as
    "not checked", with Check again. Returns how many."""
    n = 0
    for jid, k in reg.work_in_flight("check:"):
        _, i, vi = k.split(":")
        gen = reg.read(jid, functools.partial(_generations, index=int(i)))
        if gen is not None:
            _release(reg, jid, int(i), gen, int(vi), "The check was interrupted.")
            n += 1
    return n


def _release(reg: JobRegistry, job_id: str, index: int, gen: int, vi: int, why: str) -> None:
    """The slot is approvable again, its image "not checked" (with Check again)."""
    failed = Verdict.not_checked("", why)

    def release(j: Job) -> None:
        s = j.slots[index]
        if 0 <= vi < len(s.versions) and not s.versions[vi].verdict:
            s.versions[vi].verdict = failed.to_dict()
        if s.generations == gen:
            s.checking = False

    try:
        reg.mutate(job_id, release)
        row = _pending_row(reg, job_id, index, vi, None)
        if row is not None:
            reg.pipeline.log.log_image(row)
    except Exception:
        log.warning("[CONTINUITY] job %s scene %d could not be released", job_id[:6], index + 1)


async def _run(
    reg: JobRegistry,
    job_id: str,
    index: int,
    gen: int,
    vi: int,
    *,
    again: bool,
    log_status: str,
    log_cost: float,
) -> str:
    settings = reg.settings

    def facts(j: Job) -> _Facts | None:
        s = j.slots[index]
        if not 0 <= vi < len(s.versions):
            return None
        v = s.versions[vi]
        mode = mode_of(settings, j)
        if again and mode == "off":
            mode = "flag"
        return _Facts(
            v.local_path,
            v.auto_fix,
            dict(j.references),
            j.character_sheet,
            mode,
            threshold_of(settings, j),
            structures.form_for(j.story.answers, index + 1),
        )

    f = reg.read(job_id, facts)
    if f is None:
        await _log_pending(reg, job_id, index, vi, None)
        return "gone"
    chk = checker(reg)
    outcome: CheckOutcome | None = None
    usd = check_cost(reg)
    if usd:
        from foxpipe.engine.jobs import GuardError

        try:
            reg.charge("checks", 1, usd)
        except GuardError as e:
            outcome = CheckOutcome(Verdict.not_checked(chk.name, str(e)), "accept")
    if outcome is None:
        async with _limit():
            outcome = await check_image(
                chk,
                f.path,
                index + 1,
                references=f.references,
                character_sheet=f.sheet,
                mode=f.mode,
                threshold=f.threshold,
                already_fixed=f.auto_fix,
                form=f.form,
                timeout=settings.vision_timeout * (1 + max(0, settings.vision_retries)) + 30,
            )
    verdict, decision = outcome.verdict, outcome.decision
    if not verdict.checked:
        decision = "accept"
    old_feedback: list[str] = []

    def store(j: Job) -> str:
        s = j.slots[index]
        if not 0 <= vi < len(s.versions) or s.versions[vi].local_path != f.path:
            return "gone"
        s.versions[vi].verdict = verdict.to_dict()
        if s.generations != gen:  # a newer run owns the slot now: only the verdict is kept
            return "stored"
        if decision == "fix" and s.status is SlotStatus.READY and s.current == vi:
            old_feedback.append(s.feedback)
            s.feedback = " ".join(p for p in (s.feedback, outcome.fix_feedback) if p)
            s.auto_fix_run = s.generations + 1  # the next run is the fix (checking holds it)
            return "fix"
        s.checking = False
        return "stored"

    # The image's log row, with its verdict, is written before the slot is released.
    await _log_pending(reg, job_id, index, vi, verdict)
    result = reg.mutate(job_id, store)
    done = decision if verdict.checked else "not_checked"
    if result == "gone":
        return "gone"
    if result == "fix":
        problem = await _fix(reg, job_id, index)
        if problem:

            def flag(j: Job) -> None:
                s = j.slots[index]
                if s.generations == gen:
                    s.feedback = old_feedback[0] if old_feedback else s.feedback
                    s.auto_fix_run = 0
                    s.checking = False
                    s.error = f"Off model; not fixed automatically: {problem}"

            reg.mutate(job_id, flag)
            done = "flag"
    elif decision == "fix":
        done = "flag"  # no longer waiting for review: shown, not fixed
    log.info("[CONTINUITY] job %s scene %d version %d: %s", job_id[:6], index + 1, vi + 1, done)
    if not log_status:  # Check again: a row of its own
        row = reg.read(
            job_id, lambda j: _row(j, index, vi, f"check: {done.replace('_', ' ')}", 0.0, None)
        )
        if row is not None:
            await log_safely(reg.pipeline, row)
    return done


def _pending_row(
    reg: JobRegistry, job_id: str, index: int, vi: int, verdict: Verdict | None
) -> dict[str, Any] | None:
    with _ROWS_LOCK:
        pending = _PENDING_ROWS.pop((job_id, index, vi), None)
    if pending is None:
        return None
    return reg.read(job_id, lambda j: _row(j, index, vi, pending[0], pending[1], verdict))


async def _log_pending(
    reg: JobRegistry, job_id: str, index: int, vi: int, verdict: Verdict | None
) -> None:
    row = _pending_row(reg, job_id, index, vi, verdict)
    if row is not None:
        await log_safely(reg.pipeline, row)


async def _fix(reg: JobRegistry, job_id: str, index: int) -> str:
    """Start the automatic fix (a new run of the slot, through the cost guard); '' when it
    started, else why not."""
    from foxpipe.engine.jobs import GuardError

    job = reg.get(job_id)
    if job is None or job.cancelled:
        return "the job was stopped."
    if job.deadline and time.time() > job.deadline:
        return "the job ran past its deadline."
    # The run that made the image ends right after it asked for this check: let it finish.
    for _ in range(200):
        if not reg.slot_running(job_id, index):
            break
        await asyncio.sleep(0.01)
    try:
        started = reg.schedule(job_id, [index])
    except GuardError as e:
        return str(e)
    return "" if started else "the scene could not be made again now."


def _row(
    job: Job, index: int, vi: int, status: str, cost: float, verdict: Verdict | None
) -> dict[str, Any]:
    s = job.slots[index]
    if not 0 <= vi < len(s.versions):
        return image_row(job, index, status, cost)
    if verdict is not None:
        s.versions[vi].verdict = verdict.to_dict()  # (a copy of the job: nothing is stored)
    saved = s.current
    s.current = vi  # the row describes the checked image
    try:
        return image_row(job, index, status, cost)
    finally:
        s.current = saved


def recover(reg: JobRegistry) -> int:
    """After a restart: checks that were running start again (their slots stay held until
    the verdict is in). Returns how many."""
    n = 0
    for job in reg.store.jobs_where(done=False):
        for s in job.slots:
            if (
                s.checking
                and s.image is not None
                and start(reg, job.id, s.index, s.generations, again=True)
            ):
                n += 1
    return n


def estimate(settings: Settings, job: Job, per_image: float, per_check: float) -> dict[str, float]:
    """The gallery's cost figures for continuity: checks so far (from the verdicts), the checks
    still expected for the images not checked yet, and the expected automatic fixes (the
    off-model rate seen so far, at least 10 %, of the images not checked yet)."""
    mode = mode_of(settings, job)
    versions = [v for s in job.slots for v in s.versions]
    spent = sum(float(v.verdict.get("cost_usd") or 0.0) for v in versions if v.verdict)
    if mode == "off":
        return {"checks_usd": round(spent, 4), "expected_checks_usd": 0.0, "expected_fix_usd": 0.0}
    checked = [v for v in versions if v.verdict.get("status") == "checked"]
    off = sum(
        1
        for v in checked
        if not v.auto_fix and float(v.verdict.get("score", 100)) < threshold_of(settings, job)
    )
    first = [v for v in checked if not v.auto_fix]
    rate = max(0.1, off / len(first)) if first else 0.1
    unchecked = sum(1 for s in job.slots if not s.versions or not s.image or not s.image.verdict)
    fixes = rate * unchecked if mode == "fix" else 0.0
    return {
        "checks_usd": round(spent, 4),
        "expected_checks_usd": round((unchecked + fixes) * per_check, 4),
        "expected_fix_usd": round(fixes * per_image, 4),
    }


def _generations(j: Job, index: int) -> int:
    return j.slots[index].generations

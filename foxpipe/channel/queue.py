"""The queue of stories: several stories made one after another on the engine's worker,
within the account's limits, each up to the review (story written, prompts, reference
sheet unless a saved hero brings it, the 20 images).

Items live in the store (``foxpipe_queue``), so the queue survives restarts: ``recover``
(called when the engine starts) puts items cut off while their story was being written back
in line, watches the images of the item that was being made (the engine restarts them) and
starts the runner. The runner never overspends: before a story's images it compares the
story's estimate with what is left of today's image budget and stops (paused, saying why)
when it would not fit; every image still goes through ``JobRegistry.charge``.

While a story's images wait in the rate limiter, the next story is written; its images are
queued the moment the previous story's last image has started, so the account's rate stays
used and stories become ready one after another (never interleaved)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from foxpipe.channel import heroes
from foxpipe.domain import quiz, structures
from foxpipe.domain.models import SCENE_COUNT, SlotStatus, new_id
from foxpipe.engine.jobs import GuardError, JobRegistry
from foxpipe.store import DamagedRecord, StoreError

log = logging.getLogger(__name__)

WAITING, WRITING, IMAGES, READY, FAILED = "waiting", "writing", "images", "ready", "failed"
STATE_LABEL = {
    WAITING: "waiting",
    WRITING: "writing the story",
    IMAGES: "making the images",
    READY: "ready for review",
    FAILED: "failed",
}
PAUSE_KEY = "queue_paused"
RUNNER = ("queue", "runner")
MAX_FILE_BYTES = 1_000_000
MAX_FILE_ROWS = 50
POLL = 0.02  # seconds between looks at the story being made (the store is local and fast)


class QueueError(Exception):
    """Queue input that cannot be used; the message (one line per problem) is for the user."""


@dataclass
class Item:
    id: str
    owner: str
    state: str
    answers: dict[str, str]
    label: str = ""
    hero_id: str = ""
    job_id: str = ""
    note: str = ""
    images: int = 0  # estimated images (scenes, plus references unless a saved hero brings them)
    usd: float = 0.0  # estimated cost of those images
    created: float = 0.0
    updated: float = 0.0
    started: float = 0.0
    ready_at: float = 0.0
    damaged: bool = False  # its stored data could not be read: it is never written or paid for
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Item:
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row and k != "extra"}
        known.setdefault("answers", {})
        answers = known["answers"]
        if not isinstance(answers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in answers.items()
        ):
            known["answers"], known["damaged"] = {}, True
        return cls(**known)


# ------------------------------------------------------------------ estimates
def reference_images(
    registry: JobRegistry, answers: dict[str, str], hero: heroes.Hero | None
) -> int:
    """Reference images this story would pay for: none with a saved hero that has them all."""
    if not heroes.uses_references(registry):
        return 0
    if hero is not None:
        return len(hero.missing_forms(answers))
    return len(structures.get(answers).forms())


def estimate(
    registry: JobRegistry, answers: dict[str, str], hero: heroes.Hero | None
) -> tuple[int, float]:
    n = SCENE_COUNT + reference_images(registry, answers, hero)
    return n, n * registry.pipeline.cost_per_image()


# ------------------------------------------------------------------ adding
def _label(answers: dict[str, str]) -> str:
    return f"{answers.get('hero_name', 'Hero')} · {structures.get(answers).label}"


def add(registry: JobRegistry, owner: str, answers: dict[str, Any], hero_id: str = "") -> Item:
    """Queue one story; QueueError (the quiz's messages) when its answers are not valid."""
    hero = heroes.get(registry, hero_id) if hero_id else None
    if hero_id and hero is None:
        raise QueueError("The saved hero is no longer in the library.")
    raw = {**quiz.defaults(), **answers}  # missing answers take the quiz's defaults
    if hero is not None:
        raw = heroes.with_hero(hero, {k: str(v) for k, v in raw.items()})
    check = quiz.validate(raw)
    if not check.ok:
        raise QueueError(" ".join(check.errors.values()))
    images, usd = estimate(registry, check.answers, hero)
    item = Item(
        id=new_id(),
        owner=owner,
        state=WAITING,
        answers=check.answers,
        label=_label(check.answers),
        hero_id=hero.id if hero else "",
        images=images,
        usd=usd,
    )
    registry.store.add_queue_item(item.id, owner, WAITING, _doc(item))
    log.info(
        "[QUEUE] added %s (%s, %d images)", item.id[:6], structures.get(check.answers).key, images
    )
    start(registry)
    return item


def _doc(item: Item) -> dict[str, Any]:
    return {
        "answers": item.answers,
        "label": item.label,
        "hero_id": item.hero_id,
        "job_id": item.job_id,
        "note": item.note,
        "images": item.images,
        "usd": item.usd,
        "started": item.started,
        "ready_at": item.ready_at,
    }


def parse_file(raw: bytes, filename: str = "") -> list[dict[str, str]]:
    """Rows of answers from a JSON list (or {"stories": [...]}) or a CSV file with a header
    row of question keys; empty values take the quiz's defaults. Every row is checked with the
    quiz's messages; QueueError lists every bad row (nothing is queued from a bad file)."""
    if len(raw) > MAX_FILE_BYTES:
        raise QueueError(f"The file is too large ({len(raw) / 1e6:.1f} MB; at most 1 MB).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QueueError("The file is not UTF-8 text.") from e
    rows: list[Any]
    if filename.lower().endswith(".csv") or (
        not filename.lower().endswith(".json") and text.lstrip()[:1] not in "[{"
    ):
        try:
            rows = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as e:
            raise QueueError(f"The CSV file could not be read ({e}).") from e
    else:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise QueueError(
                f"The JSON file could not be read ({e.__class__.__name__}: {str(e)[:80]})."
            ) from e
        rows = doc.get("stories") if isinstance(doc, dict) and "stories" in doc else doc  # type: ignore[assignment]
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list):
            raise QueueError(
                'The JSON file must hold a list of answer objects (or {"stories": [...]}).'
            )
    if not rows:
        raise QueueError("The file holds no stories.")
    if len(rows) > MAX_FILE_ROWS:
        raise QueueError(f"The file holds {len(rows)} stories; at most {MAX_FILE_ROWS} at a time.")
    out: list[dict[str, str]] = []
    problems: list[str] = []
    for n, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            problems.append(f"Story {n}: not an object of answers.")
            continue
        given = {
            str(k).strip(): ("" if v is None else str(v)) for k, v in row.items() if k is not None
        }
        given = {k: v for k, v in given.items() if v.strip()}
        unknown = sorted(k for k in given if k not in quiz.BY_KEY)
        if unknown:
            problems.append(f"Story {n}: unknown question(s) {', '.join(unknown)[:120]}.")
            continue
        check = quiz.validate({**quiz.defaults(), **given})
        if not check.ok:
            problems.append(f"Story {n}: " + " ".join(check.errors.values()))
        out.append(check.answers)
    if problems:
        raise QueueError("\n".join(problems))
    return out


def add_file(registry: JobRegistry, owner: str, raw: bytes, filename: str = "") -> list[Item]:
    return [add(registry, owner, answers) for answers in parse_file(raw, filename)]


# ------------------------------------------------------------------ reading and control
def items(registry: JobRegistry) -> list[Item]:
    return [Item.from_row(r) for r in registry.store.queue_items()]


def paused(registry: JobRegistry) -> str:
    """Why the queue is paused ('' when it runs)."""
    try:
        return registry.store.get_meta(PAUSE_KEY)
    except StoreError:
        return ""


def pause(registry: JobRegistry, reason: str = "Paused by you.") -> None:
    """The story being made finishes its images; the next ones wait."""
    registry.store.set_meta(PAUSE_KEY, reason)


def resume(registry: JobRegistry) -> None:
    registry.store.set_meta(PAUSE_KEY, "")
    start(registry)


def remove(registry: JobRegistry, item_id: str) -> bool:
    """Take a story out of the queue (not one being made)."""
    row = next((i for i in items(registry) if i.id == item_id), None)
    if row is None or row.state in (WRITING, IMAGES):
        return False
    return registry.store.delete_queue_item(item_id)


def running(registry: JobRegistry) -> bool:
    return registry.busy(*RUNNER)


def start(registry: JobRegistry) -> bool:
    """Start the runner on the worker when there is work and the queue is not paused."""
    if paused(registry) or not registry.store.queue_items(states=(WAITING,)):
        return False
    return registry.submit(RUNNER[0], RUNNER[1], lambda: _run(registry))


def recover(registry: JobRegistry) -> None:
    """At engine start: the queue goes on where it stopped."""
    try:
        rows = items(registry)
    except StoreError as e:
        registry.problem = e.message
        return
    for it in rows:
        if it.state == WRITING:  # nothing was paid yet: write it again
            registry.store.update_queue_item(
                it.id, WAITING, note="Interrupted by a restart; written again."
            )
        elif it.state == IMAGES and it.job_id:
            _watch_later(registry, it.id, it.job_id)
    start(registry)


# ------------------------------------------------------------------ the runner
def _mark(registry: JobRegistry, item_id: str, state: str | None = None, **data: Any) -> None:
    registry.store.update_queue_item(item_id, state, **data)


async def _prepare(
    registry: JobRegistry, it: Item
) -> tuple[Any, list[str], str, heroes.Hero | None]:
    from foxpipe import app

    settings = registry.settings
    hero = await asyncio.to_thread(heroes.get, registry, it.hero_id) if it.hero_id else None
    if it.hero_id and hero is None:
        raise QueueError("The saved hero is no longer in the library.")
    answers = heroes.with_hero(hero, it.answers) if hero else it.answers
    story = await app.write_story_async(settings, answers)
    if story.missing():
        raise QueueError(story.problem or "The story could not be written.")
    if hero is not None:
        prompt_list, _problem = await heroes.prepare_with_sheet(settings, story, hero.sheet)
        sheet = hero.sheet
    else:
        prepared = await app.prepare_prompts_async(settings, story)
        prompt_list, sheet = prepared.prompts, prepared.sheet
    return story, prompt_list, sheet, hero


def _poll(registry: JobRegistry, share: float) -> float:
    """A polling interval that follows the rate window (benchmarks scale it down)."""
    limiter = registry.limiter
    return max(0.005, (limiter.period if limiter else 60.0) * share)


async def _drain(registry: JobRegistry, job_id: str) -> None:
    """Wait until every image of that story has started (none left waiting in the limiter).
    The limiter's queue is looked at first (in memory); the store only to confirm."""
    while True:
        limiter = registry.limiter
        if limiter is None or job_id not in limiter.sched.queues:
            job = await asyncio.to_thread(registry.get, job_id)
            if (
                job is None
                or job.cancelled
                or not any(s.status is SlotStatus.QUEUED for s in job.slots)
            ):
                return
        await asyncio.sleep(_poll(registry, 1 / 480))


def _budget_problem(registry: JobRegistry, need: int) -> str:
    if not registry._paid():
        return ""
    left = registry.settings.daily_image_budget - registry.images_today()
    if need > left:
        return (
            f"Stopped before overspending: this story needs about {need} images and today's budget has "
            f"{max(0, left)} left (DAILY_IMAGE_BUDGET). It resets at midnight; nothing was spent on it."
        )
    return ""


async def _references(registry: JobRegistry, job_id: str, forms: tuple[str, ...]) -> str:
    """Draw the reference images a story without a saved hero needs; '' or why not."""
    from foxpipe.engine import hero as sheet

    for form in forms:
        problem = await asyncio.to_thread(sheet.start_reference, registry, job_id, form)
        if problem:
            return problem
        while sheet.drawing(registry, job_id, form):
            await asyncio.sleep(POLL)
        job = await asyncio.to_thread(registry.get, job_id)
        if job is None or form not in job.references:
            return (
                job.hero_errors.get(form) if job else ""
            ) or "The reference image was not drawn."
    return ""


async def _run(registry: JobRegistry) -> None:
    from foxpipe import app

    previous = ""
    while True:
        if await asyncio.to_thread(paused, registry):
            return
        waiting = await asyncio.to_thread(registry.store.queue_items, states=(WAITING,))
        if not waiting:
            return
        it = Item.from_row(waiting[0])
        if it.damaged:  # its answers cannot be read: no story is written (or paid) for it
            note = "This item's saved data could not be read; add the story again."
            await asyncio.to_thread(_mark, registry, it.id, FAILED, note=note)
            continue
        keep = it.note if "restart" in it.note else ""  # a budget stop's note no longer applies
        await asyncio.to_thread(_mark, registry, it.id, WRITING, started=time.time(), note=keep)
        try:
            story, prompt_list, sheet, hero = await _prepare(registry, it)
        except QueueError as e:
            await asyncio.to_thread(_mark, registry, it.id, FAILED, note=str(e))
            continue
        if previous:
            await _drain(registry, previous)
            # Let the previous story's last granted requests go out before this story's jobs
            # are created and queued (a burst of work on the same loop would delay them).
            await asyncio.sleep(_poll(registry, 1 / 80))
        need = SCENE_COUNT + reference_images(registry, story.answers, hero)
        if problem := await asyncio.to_thread(_budget_problem, registry, need):
            await asyncio.to_thread(_mark, registry, it.id, WAITING, note=problem)
            await asyncio.to_thread(pause, registry, problem)
            log.info("[QUEUE] stopped before %s: budget", it.id[:6])
            return
        try:
            if hero is not None:
                job_id, missing = await asyncio.to_thread(
                    heroes.create_job, registry, hero, story, prompt_list, it.owner, start=False
                )
                forms = hero.missing_forms(story.answers) if missing else ()
            else:
                job_id = await asyncio.to_thread(
                    registry.create_job,
                    story,
                    prompt_list,
                    it.owner,
                    character_sheet=sheet,
                    size=app.image_size(story.answers, registry.settings),
                    start=False,
                )
                forms = (
                    structures.get(story.answers).forms()
                    if heroes.uses_references(registry)
                    else ()
                )
            await asyncio.to_thread(_mark, registry, it.id, IMAGES, job_id=job_id)
            if forms and (problem := await _references(registry, job_id, tuple(forms))):
                raise GuardError(problem)
            await asyncio.to_thread(registry.schedule, job_id, list(range(SCENE_COUNT)))
            # The narration is written (and, with a free voice, spoken) beside the images, so
            # the story is ready for review with its voice.
            from foxpipe.engine import shortjobs

            await asyncio.to_thread(shortjobs.begin, registry, job_id, None)
        except GuardError as e:
            note = f"Stopped before overspending: {e}"
            await asyncio.to_thread(_mark, registry, it.id, WAITING, note=note, job_id="")
            await asyncio.to_thread(pause, registry, note)
            return
        except StoreError as e:
            await asyncio.to_thread(_mark, registry, it.id, FAILED, note=e.message)
            continue
        log.info("[QUEUE] %s: images of job %s queued", it.id[:6], job_id[:6])
        _watch_later(registry, it.id, job_id)
        previous = job_id


def _watch_later(registry: JobRegistry, item_id: str, job_id: str) -> None:
    registry.submit(item_id, "queue-watch", lambda: _watch(registry, item_id, job_id))


async def _watch(registry: JobRegistry, item_id: str, job_id: str) -> None:
    """The story is ready for review when none of its images is in flight. A store that fails
    for a moment is looked at again (the pages say it fails); the engine's shutdown ends this."""
    damaged = ""  # that gallery's own failure: the item says which (marked, with retries)
    while True:
        if registry.running(job_id):  # its images are still being made by this process
            await asyncio.sleep(_poll(registry, 1 / 240))
            continue
        try:
            if damaged:
                await asyncio.to_thread(_mark, registry, item_id, FAILED, note=damaged)
                return
            if await _look(registry, item_id, job_id):
                return
        except DamagedRecord as e:
            damaged = e.message
            continue
        except StoreError:
            await asyncio.sleep(_poll(registry, 1 / 60))
            continue
        await asyncio.sleep(_poll(registry, 1 / 120))


async def _look(registry: JobRegistry, item_id: str, job_id: str) -> bool:
    """One look at the story's job: True when its item was marked (ready, or failed)."""
    job = await asyncio.to_thread(registry.load, job_id)
    if job is None:
        await asyncio.to_thread(_mark, registry, item_id, FAILED, note="Its gallery was removed.")
        return True
    if not job.slots or any(s.status.in_flight for s in job.slots):
        return False
    failed = sum(1 for s in job.slots if s.status is SlotStatus.FAILED)
    note = f"{failed} image(s) failed: retry them in the gallery." if failed else ""
    if not note:
        rows = await asyncio.to_thread(registry.store.queue_items)
        note = next(
            (
                r.get("note", "")
                for r in rows
                if r["id"] == item_id and "restart" in r.get("note", "")
            ),
            "",
        )
    await asyncio.to_thread(_mark, registry, item_id, READY, ready_at=time.time(), note=note)
    log.info("[QUEUE] %s ready for review", item_id[:6])
    return True

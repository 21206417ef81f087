"""The hero library: an approved hero (name, species, look, character sheet, the answers it
fixes and its reference images) saved in the store, reused by later stories so episode 7
looks like episode 1 and no new reference image is paid for."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from foxpipe.config import Settings
from foxpipe.domain import prompts, quiz, structures
from foxpipe.domain.models import Job, Story, new_id
from foxpipe.engine.jobs import JobRegistry
from foxpipe.store import DamagedRecord, StoreError

log = logging.getLogger(__name__)

# The answers a hero fixes: who it is and how it is drawn. The rest (the structure and its
# questions, the setting, the tone) belongs to each story.
FIXED_KEYS = ("animal", "custom_animal", "hero_name", "look", "style", "aspect")
STORE_INDEX = {"base": 200, "powered": 201}  # the image store's slots for a hero's references
FILE_FORMAT = "foxpipe-hero/1"
MAX_FILE_BYTES = 20 * 1024 * 1024  # an exported hero: two images and a few lines of text
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_NAME = 60
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")


class HeroError(Exception):
    """A hero could not be saved, found, renamed or imported; the message is for the user."""


@dataclass
class Reference:
    local_path: str
    url: str = ""  # the hosted copy (Cloudinary), or "" when only kept locally
    uploaded: bool = False


@dataclass
class Hero:
    name: str
    species: str
    look: str = ""
    sheet: str = ""  # the character sheet every scene prompt starts with
    answers: dict[str, str] = field(default_factory=dict)  # the quiz answers it fixes
    references: dict[str, Reference] = field(default_factory=dict)  # form -> its image
    id: str = field(default_factory=new_id)
    source_job: str = ""
    created: float = field(default_factory=time.time)
    updated: float = 0.0

    def data(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("id", "name", "species", "created", "updated"):
            d.pop(k)
        return d

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Hero:
        refs = {
            f: Reference(**r) for f, r in (row.get("references") or {}).items() if f in STORE_INDEX
        }
        return cls(
            name=row["name"],
            species=row.get("species", ""),
            look=row.get("look", ""),
            sheet=row.get("sheet", ""),
            answers=dict(row.get("answers") or {}),
            references=refs,
            id=row["id"],
            source_job=row.get("source_job", ""),
            created=row.get("created", 0.0),
            updated=row.get("updated", 0.0),
        )

    def reference_paths(self) -> dict[str, str]:
        return {
            f: r.local_path
            for f, r in self.references.items()
            if r.local_path and Path(r.local_path).is_file()
        }

    def missing_forms(self, answers: dict[str, str]) -> tuple[str, ...]:
        """The reference images a story of these answers needs that this hero lacks."""
        have = self.reference_paths()
        return tuple(f for f in structures.get(answers).forms() if f not in have)

    def label(self) -> str:
        return f"{self.name} ({self.species})" if self.species else self.name


def fixed_answers(answers: dict[str, str]) -> dict[str, str]:
    return {k: str(answers[k]) for k in FIXED_KEYS if answers.get(k)}


def with_hero(hero: Hero, answers: dict[str, str]) -> dict[str, str]:
    """A story's answers with everything the hero fixes taken from the hero."""
    out = {k: v for k, v in answers.items() if k not in FIXED_KEYS}
    out.update(hero.answers)
    return out


def skipped(hero: Hero | None) -> set[str]:
    """The quiz questions a story with this hero does not ask."""
    return set(FIXED_KEYS) if hero is not None else set()


# ------------------------------------------------------------------ the library
def _well_formed(h: Hero) -> bool:
    """Every field holds what the app writes there (a hand-edited row may not)."""
    texts = (h.name, h.species, h.look, h.sheet, h.id, h.source_job)
    return (
        all(isinstance(t, str) for t in texts)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in h.answers.items())
        and all(
            isinstance(r.local_path, str)
            and isinstance(r.url, str)
            and isinstance(r.uploaded, bool)
            for r in h.references.values()
        )
        and all(isinstance(t, int | float) for t in (h.created, h.updated))
    )


def _readable(row: dict[str, Any]) -> Hero | None:
    """The hero of a stored row, or None when its data cannot be read (damaged, or written
    in a shape no version of the app writes)."""
    if row.get("damaged"):
        return None
    try:
        hero = Hero.from_row(row)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return hero if _well_formed(hero) else None


def get(registry: JobRegistry, hero_id: str | None) -> Hero | None:
    """The saved hero, or None (unknown, or its data cannot be read: the Library says which)."""
    if not hero_id:
        return None
    try:
        row = registry.store.get_hero(hero_id)
    except DamagedRecord:  # that hero's own failure, not the store's
        return None
    except StoreError as e:
        registry.problem = e.message
        return None
    return None if row is None else _readable(row)


def library(registry: JobRegistry) -> tuple[list[Hero], list[tuple[str, str]]]:
    """Every saved hero that can be read, newest first, and the (id, name) of those whose
    stored data cannot be read (the Library names them and offers to delete them)."""
    readable, damaged = [], []
    for row in registry.store.list_heroes():
        hero = _readable(row)
        if hero is None:
            damaged.append((str(row["id"]), str(row["name"])))
        else:
            readable.append(hero)
    return readable, damaged


def all_heroes(registry: JobRegistry) -> list[Hero]:
    """Every saved hero that can be read, newest first."""
    return library(registry)[0]


def _clean_name(name: str) -> str:
    text = quiz.clean_text(name)[:MAX_NAME]
    if not text or not any(ch.isalnum() for ch in text):
        raise HeroError("A hero's name needs some letters or numbers.")
    return text


def rename(registry: JobRegistry, hero_id: str, name: str) -> None:
    if not registry.store.rename_hero(hero_id, _clean_name(name)):
        raise HeroError("This hero is no longer in the library.")


def delete(registry: JobRegistry, hero_id: str) -> None:
    if not registry.store.delete_hero(hero_id):
        raise HeroError("This hero is no longer in the library.")


def _store_image(registry: JobRegistry, hero_id: str, form: str, data: bytes) -> Reference:
    """Keep a reference like every other image: a local file, and a hosted copy when
    Cloudinary is configured."""
    version = int(time.time() * 1000) % 10**9
    stored = registry.pipeline.store.save(
        hero_id, STORE_INDEX[form], version, data, tags=["hero", hero_id]
    )
    return Reference(
        stored.local_path,
        getattr(stored, "url", "") or "",
        bool(getattr(stored, "uploaded", False)),
    )


def _save(registry: JobRegistry, hero: Hero, images: dict[str, bytes]) -> Hero:
    for form, data in images.items():
        hero.references[form] = _store_image(registry, hero.id, form, data)
    registry.store.add_hero(hero.id, hero.name, hero.species, hero.data())
    log.info("[HERO] saved %s with %d reference image(s)", hero.id[:6], len(hero.references))
    return hero


def save_from_job(registry: JobRegistry, job: Job, name: str = "") -> Hero:
    """Save the hero of a job (its answers, its character sheet, its reference images)."""
    answers = job.story.answers
    images: dict[str, bytes] = {}
    for form, path in job.references.items():
        if form not in STORE_INDEX:
            continue
        try:
            images[form] = Path(path).read_bytes()
        except OSError as e:
            raise HeroError(
                f"The hero's {form} reference image could not be read ({type(e).__name__})."
            ) from e
    hero = Hero(
        name=_clean_name(name or answers.get("hero_name", "") or "Hero"),
        species=quiz.hero_species(answers),
        look=answers.get("look", ""),
        sheet=job.character_sheet or prompts.character_sheet(answers),
        answers=fixed_answers(answers),
        source_job=job.id,
    )
    return _save(registry, hero, images)


def saved_from(registry: JobRegistry, job_id: str) -> Hero | None:
    """The hero already saved from this job, if any (the page does not offer it twice)."""
    return next((h for h in all_heroes(registry) if h.source_job == job_id), None)


# ------------------------------------------------------------------ export / import
def export_bytes(hero: Hero) -> bytes:
    """One JSON file with the reference images embedded (base64)."""
    images = {}
    for form, path in hero.reference_paths().items():
        images[form] = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    doc = {
        "format": FILE_FORMAT,
        "name": hero.name,
        "species": hero.species,
        "look": hero.look,
        "sheet": hero.sheet,
        "answers": hero.answers,
        "images": images,
    }
    return json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8")


def parse_file(raw: bytes) -> tuple[Hero, dict[str, bytes]]:
    """Check an exported hero file; the hero and its images, or HeroError saying what is wrong."""
    if len(raw) > MAX_FILE_BYTES:
        raise HeroError(
            f"The file is too large ({len(raw) / 1e6:.1f} MB; at most {MAX_FILE_BYTES / 1e6:.0f} MB)."
        )
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise HeroError("This is not a foxpipe hero file (it is not JSON).") from e
    if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
        raise HeroError(f'This is not a foxpipe hero file (its "format" must be "{FILE_FORMAT}").')
    answers = doc.get("answers")
    if not isinstance(answers, dict) or any(not isinstance(v, str) for v in answers.values()):
        raise HeroError('The hero file\'s "answers" must be an object of texts.')
    unknown = sorted(k for k in answers if k not in FIXED_KEYS)
    if unknown:
        raise HeroError(
            f"The hero file fixes answers a hero cannot fix: {', '.join(unknown)[:200]}."
        )
    check = quiz.validate({**quiz.defaults(), **answers})
    bad = [msg for k, msg in check.errors.items() if k in answers]
    if bad:
        raise HeroError("The hero file's answers are not valid: " + " ".join(bad))
    for key in ("name", "species", "look", "sheet"):
        if not isinstance(doc.get(key, ""), str):
            raise HeroError(f'The hero file\'s "{key}" must be text.')
    if len(doc.get("sheet", "")) > 5000:
        raise HeroError("The hero file's character sheet is too long (at most 5000 characters).")
    images_doc = doc.get("images", {})
    if not isinstance(images_doc, dict):
        raise HeroError('The hero file\'s "images" must be an object.')
    images: dict[str, bytes] = {}
    for form, text in images_doc.items():
        if form not in STORE_INDEX or not isinstance(text, str):
            raise HeroError(
                f'The hero file has an unknown image "{str(form)[:20]}" (only base and powered).'
            )
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise HeroError(f"The {form} image is not valid base64.") from e
        if len(data) > MAX_IMAGE_BYTES:
            raise HeroError(
                f"The {form} image is too large (at most {MAX_IMAGE_BYTES // 1_000_000} MB)."
            )
        if not data.startswith(IMAGE_MAGIC):
            raise HeroError(f"The {form} image is not a PNG, JPEG or WebP image.")
        images[form] = data
    fixed = {k: check.answers[k] for k in answers if k in check.answers}
    hero = Hero(
        name=_clean_name(doc.get("name", "") or fixed.get("hero_name", "")),
        species=quiz.clean_text(doc.get("species", ""))[:MAX_NAME]
        or quiz.hero_species(check.answers),
        look=quiz.clean_text(doc.get("look", ""))[:150],
        sheet=str(doc.get("sheet", "")).strip() or prompts.character_sheet(check.answers),
        answers=fixed,
    )
    return hero, images


def import_bytes(registry: JobRegistry, raw: bytes) -> Hero:
    hero, images = parse_file(raw)
    return _save(registry, hero, images)


# ------------------------------------------------------------------ a story with a saved hero
async def prepare_with_sheet(settings: Settings, story: Story, sheet: str) -> tuple[list[str], str]:
    """The scene prompts for a story whose character sheet is the saved hero's."""
    from foxpipe.providers import registry as services

    model = services.text_model(settings)
    problem = ""
    try:
        visual = await model.create_prompts(story, sheet)
        if len(visual) != len(story.scenes):
            raise ValueError("wrong number of prompts")
    except Exception as e:
        problem = f"Scene prompts could not be written ({type(e).__name__}); using the scene texts."
        visual = [prompts.visual_prompt(sc) for sc in story.scenes]
    return prompts.standardize_prompts(visual, sheet, story.answers), problem


def uses_references(registry: JobRegistry) -> bool:
    from foxpipe.engine import hero as hero_sheet

    return hero_sheet.wanted(registry.settings, registry)


def _references_for(registry: JobRegistry, hero: Hero, story: Story) -> dict[str, str]:
    """The saved hero's references this story's structure uses (none when the image model
    takes no references)."""
    if not uses_references(registry):
        return {}
    needed = structures.get(story.answers).forms()
    return {f: p for f, p in hero.reference_paths().items() if f in needed}


def _sheet_first(registry: JobRegistry, hero: Hero, story: Story, refs: dict[str, str]) -> bool:
    return (
        bool(refs)
        and bool(hero.missing_forms(story.answers))
        or (uses_references(registry) and not refs)
    )


def sheet_first(registry: JobRegistry, hero_id: str, story: Story) -> bool:
    """Whether approving this story with the saved hero opens the Hero page (a reference the
    story's structure needs is still to be drawn) rather than the gallery. A hero no longer in
    the library: False (the approval says so on the gallery)."""
    hero = get(registry, hero_id)
    if hero is None:
        return False
    return _sheet_first(registry, hero, story, _references_for(registry, hero, story))


def create_job(
    registry: JobRegistry,
    hero: Hero,
    story: Story,
    prompt_list: list[str],
    owner: str,
    *,
    start: bool | None = None,
) -> tuple[str, bool]:
    """A job drawn from the saved hero's references; (its id, whether the Hero page must still
    draw a reference the story's structure needs and the hero lacks). Images start at once
    when nothing is missing (``start`` overrides)."""
    from foxpipe import app

    refs = _references_for(registry, hero, story)
    missing = _sheet_first(registry, hero, story, refs)
    go = (not missing) if start is None else start
    job_id = registry.create_job(
        story,
        prompt_list,
        owner,
        character_sheet=hero.sheet,
        size=app.image_size(story.answers, registry.settings),
        references={str(k): v for k, v in refs.items()},
        start=go,
    )
    return job_id, missing


def start_approval(
    settings: Settings, story: Story, owner: str, hero_id: str, again: bool = False
) -> str:
    """Like ``app.start_approval``, with the saved hero's character sheet and references: no
    reference image is drawn (unless the story's structure needs a form the hero lacks)."""
    from foxpipe import app

    async def work(t: app.Task) -> app.Approval:
        reg = app.engine(settings)
        saved = await asyncio.to_thread(get, reg, hero_id)
        if saved is None:
            raise HeroError(
                "The saved hero is no longer in the library; choose another or answer the quiz."
            )
        prompt_list, problem = await prepare_with_sheet(settings, story, saved.sheet)
        t.stage = "Starting the images…"
        job_id, sheet_first = await asyncio.to_thread(
            create_job, reg, saved, story, prompt_list, owner
        )
        from foxpipe.engine import shortjobs

        await asyncio.to_thread(
            shortjobs.begin, reg, job_id, None
        )  # the narration, as for any story
        job = reg.get(job_id)
        if job is not None:
            await asyncio.to_thread(app.log_story, settings, job)
        return app.Approval(job_id, sheet_first, problem)

    once = "" if again else app.approval_once(owner, story, hero_id)
    return app.start_task(
        settings, "approve", work, "Preparing the image prompts with your saved hero…", once=once
    )

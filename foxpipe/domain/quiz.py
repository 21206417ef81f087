"""The quiz as data: questions, options, branches, and validation.

A question is shown when its ``show_if`` condition holds for the answers so far, so
the quiz branches: a magical power asks for its element, a mentor asks who it is.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

OTHER = "Something else…"


@dataclass(frozen=True)
class Question:
    key: str
    label: str
    options: tuple[str, ...] = ()  # empty: free text
    default: str = ""
    help: str = ""
    max_len: int = 60
    show_if: tuple[str, tuple[str, ...]] | None = None  # (question key, answers that show it)
    required: bool = True
    placeholder: str = ""

    @property
    def is_text(self) -> bool:
        return not self.options


QUESTIONS: tuple[Question, ...] = (
    Question(
        "animal",
        "Who is the hero?",
        ("Red Fox", "Grey Wolf", "Snow Leopard", "Barn Owl", "Brown Bear", "Rabbit", "Tabby Cat", OTHER),
        default="Red Fox",
        help="Animal heroes work best: the channel's viewers love them.",
    ),
    Question(
        "custom_animal",
        "Which animal?",
        show_if=("animal", (OTHER,)),
        max_len=40,
        placeholder="e.g. Arctic hare",
    ),
    Question("hero_name", "The hero's name", default="Rusty", max_len=30, placeholder="e.g. Rusty"),
    Question(
        "setting",
        "Where does the story happen?",
        ("Enchanted forest", "Snowy mountains", "Savanna at sunset", "City rooftops", "Coral reef coast"),
        default="Enchanted forest",
    ),
    Question(
        "setback",
        "What holds the hero back at the start?",
        (
            "Mocked as the smallest of the pack",
            "Lost the great race in front of everyone",
            "Cast out of home after a mistake",
            OTHER,
        ),
        default="Mocked as the smallest of the pack",
    ),
    Question(
        "custom_setback",
        "Describe the setback",
        show_if=("setback", (OTHER,)),
        max_len=200,
        placeholder="One sentence",
    ),
    Question(
        "discovery",
        "What does the hero discover?",
        ("A glowing ancient artifact", "A wise mentor", "A hidden power within"),
        default="A glowing ancient artifact",
    ),
    Question(
        "artifact",
        "What is the artifact?",
        ("A crystal amulet", "A star-shaped stone", "An old enchanted collar"),
        default="A crystal amulet",
        show_if=("discovery", ("A glowing ancient artifact",)),
    ),
    Question(
        "mentor",
        "Who is the mentor?",
        ("An old tortoise sage", "A spirit of the forest", "A retired eagle champion", OTHER),
        default="An old tortoise sage",
        show_if=("discovery", ("A wise mentor",)),
    ),
    Question(
        "custom_mentor",
        "Describe the mentor",
        show_if=("mentor", (OTHER,)),
        max_len=80,
    ),
    Question(
        "power",
        "What power does the hero gain?",
        ("Elemental magic", "Super speed", "Giant strength", "Shape-shifting"),
        default="Elemental magic",
    ),
    Question(
        "element",
        "Which element?",
        ("Fire", "Ice", "Lightning", "Wind", "Water"),
        default="Fire",
        show_if=("power", ("Elemental magic",)),
    ),
    Question(
        "rival",
        "Who is the rival?",
        ("A boastful wolf pack leader", "A greedy crow king", "A jealous former friend", OTHER),
        default="A boastful wolf pack leader",
    ),
    Question(
        "custom_rival",
        "Describe the rival",
        show_if=("rival", (OTHER,)),
        max_len=80,
    ),
    Question(
        "tone",
        "How should it end?",
        ("Heroic triumph", "Heartwarming redemption", "Epic and awe-inspiring"),
        default="Heroic triumph",
    ),
    Question(
        "style",
        "Visual style",
        ("Pixar-style 3D", "Anime", "Watercolour storybook", "Cinematic realistic"),
        default="Pixar-style 3D",
    ),
    Question(
        "aspect",
        "Format",
        ("9:16 (Shorts, TikTok)", "16:9 (YouTube)"),
        default="9:16 (Shorts, TikTok)",
    ),
    Question(
        "look",
        "Anything special about the hero's look? (optional)",
        required=False,
        max_len=150,
        placeholder="e.g. a white-tipped tail and a blue scarf",
    ),
)

BY_KEY = {q.key: q for q in QUESTIONS}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def clean_text(value: object) -> str:
    """Normalise user text: NFC, no control or direction-override characters, single-line."""
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    text = _CONTROL.sub("", text)
    # Lone surrogates cannot be encoded anywhere downstream (JSON, CSV, Sheets).
    text = text.encode("utf-8", "ignore").decode("utf-8")
    return re.sub(r"\s{2,}", " ", text).strip()


def is_visible(q: Question, answers: dict[str, str]) -> bool:
    if q.show_if is None:
        return True
    parent, values = q.show_if
    parent_q = BY_KEY[parent]
    if not is_visible(parent_q, answers):
        return False
    return answers.get(parent, parent_q.default) in values


def visible_questions(answers: dict[str, str]) -> list[Question]:
    return [q for q in QUESTIONS if is_visible(q, answers)]


def defaults() -> dict[str, str]:
    return {q.key: q.default for q in QUESTIONS if q.default}


@dataclass
class Validation:
    answers: dict[str, str] = field(default_factory=dict)  # cleaned, visible questions only
    errors: dict[str, str] = field(default_factory=dict)  # key -> message

    @property
    def ok(self) -> bool:
        return not self.errors


def validate(raw: dict[str, object]) -> Validation:
    """Clean and check the answers; every problem gets a message naming the question."""
    result = Validation()
    raw = raw if isinstance(raw, dict) else {}
    for q in QUESTIONS:
        # Parents come before their branches, so the cleaned answers decide visibility.
        if not is_visible(q, result.answers):
            continue
        value = clean_text(raw.get(q.key, ""))
        if q.options:
            if not value:
                result.errors[q.key] = f"Please choose an answer for “{q.label}”."
            elif value not in q.options:
                result.errors[q.key] = f"“{value[:40]}” is not one of the choices for “{q.label}”."
            else:
                result.answers[q.key] = value
            continue
        if not value:
            if q.required:
                result.errors[q.key] = f"“{q.label}” is empty: please fill it in."
            continue
        if len(value) > q.max_len:
            result.errors[q.key] = (
                f"“{q.label}” is too long ({len(value)} characters; at most {q.max_len})."
            )
            continue
        if not any(ch.isalnum() for ch in value):
            result.errors[q.key] = f"“{q.label}” needs some letters or numbers."
            continue
        result.answers[q.key] = value
    return result


# Derived facts the story and prompts use, so neither re-implements the branches.


def hero_species(a: dict[str, str]) -> str:
    return a.get("custom_animal") if a.get("animal") == OTHER else a.get("animal", "Red Fox")


def setback_text(a: dict[str, str]) -> str:
    if a.get("setback") == OTHER:
        return a.get("custom_setback", "")
    return a.get("setback", "")


def discovery_text(a: dict[str, str]) -> str:
    d = a.get("discovery", "")
    if d == "A glowing ancient artifact":
        return f"{a.get('artifact', 'an artifact').lower()} that glows with ancient light"
    if d == "A wise mentor":
        m = a.get("custom_mentor") if a.get("mentor") == OTHER else a.get("mentor", "a mentor")
        return f"a wise mentor, {m[:1].lower() + m[1:]}" if m else "a wise mentor"
    return "a hidden power sleeping within"


def power_text(a: dict[str, str]) -> str:
    p = a.get("power", "")
    if p == "Elemental magic":
        return f"{a.get('element', 'Fire').lower()} magic"
    return p.lower()


def rival_text(a: dict[str, str]) -> str:
    r = a.get("custom_rival") if a.get("rival") == OTHER else a.get("rival", "a rival")
    return (r[:1].lower() + r[1:]) if r else "a rival"


def is_portrait(a: dict[str, str]) -> bool:
    return a.get("aspect", "9:16").startswith("9:16")

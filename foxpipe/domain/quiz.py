"""The quiz as data: questions, options, branches, and validation.

A question is shown when its ``show_if`` condition holds for the answers so far, so
the quiz branches: the story structure comes first and decides the later questions (a
rescue asks who must be rescued, a survival journey what the danger is); within a
structure, a magical power asks for its element, a mentor asks who it is.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from foxpipe.domain import structures as st

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


_POWER = (st.POWER_FANTASY.label,)


def _only(*structures: st.Structure) -> tuple[str, tuple[str, ...]]:
    return (st.ANSWER_KEY, tuple(s.label for s in structures))


QUESTIONS: tuple[Question, ...] = (
    Question(
        st.ANSWER_KEY,
        "What kind of story?",
        st.LABELS,
        default=st.DEFAULT.label,
        help="The story's structure: its 20 scenes follow this shape, and the next questions follow it.",
    ),
    Question(
        "animal",
        "Who is the hero?",
        (
            "Red Fox",
            "Grey Wolf",
            "Snow Leopard",
            "Barn Owl",
            "Brown Bear",
            "Rabbit",
            "Tabby Cat",
            OTHER,
        ),
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
        (
            "Enchanted forest",
            "Snowy mountains",
            "Savanna at sunset",
            "City rooftops",
            "Coral reef coast",
        ),
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
        show_if=_only(st.POWER_FANTASY),
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
        show_if=_only(st.POWER_FANTASY),
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
        show_if=_only(st.POWER_FANTASY),
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
        show_if=_only(st.POWER_FANTASY, st.REDEMPTION),
    ),
    Question(
        "custom_rival",
        "Describe the rival",
        show_if=("rival", (OTHER,)),
        max_len=80,
    ),
    Question(
        "wrong",
        "What did the rival do wrong?",
        (
            "Stole the hero's prize",
            "Blamed the hero for its own mistake",
            "Broke a promise and left the hero in danger",
            OTHER,
        ),
        default="Stole the hero's prize",
        show_if=_only(st.REDEMPTION),
    ),
    Question(
        "custom_wrong",
        "Describe what the rival did",
        show_if=("wrong", (OTHER,)),
        max_len=200,
        placeholder="One sentence",
    ),
    # Rescue mission
    Question(
        "rescued",
        "Who must be rescued?",
        ("The hero's little sister", "A lost baby owl", "The hero's best friend", OTHER),
        default="The hero's little sister",
        show_if=_only(st.RESCUE),
    ),
    Question(
        "custom_rescued",
        "Who is it?",
        show_if=("rescued", (OTHER,)),
        max_len=80,
        placeholder="e.g. The old village badger",
    ),
    Question(
        "captor",
        "Rescued from what?",
        ("A trapper's cage", "A flooded cave", "The greedy crow king's tower", OTHER),
        default="A trapper's cage",
        show_if=_only(st.RESCUE),
    ),
    Question(
        "custom_captor",
        "Describe the trap or danger",
        show_if=("captor", (OTHER,)),
        max_len=120,
        placeholder="e.g. A frozen island in the middle of the lake",
    ),
    # Friendship against the odds
    Question(
        "friend",
        "Who is the unlikely friend?",
        ("A shy young wolf", "A grumpy old crocodile", "A clumsy baby elephant", OTHER),
        default="A shy young wolf",
        show_if=_only(st.FRIENDSHIP),
    ),
    Question(
        "custom_friend",
        "Describe the friend",
        show_if=("friend", (OTHER,)),
        max_len=80,
        placeholder="e.g. A nervous hedgehog",
    ),
    Question(
        "odds",
        "What stands between them?",
        (
            "Their families are old enemies",
            "Everyone says they are too different",
            "One of them must soon leave",
        ),
        default="Their families are old enemies",
        show_if=_only(st.FRIENDSHIP),
    ),
    # Survival journey
    Question(
        "danger",
        "What is the danger?",
        (
            "A wildfire sweeping the land",
            "A blizzard that will not end",
            "A great flood",
            "A long drought",
            OTHER,
        ),
        default="A wildfire sweeping the land",
        show_if=_only(st.SURVIVAL),
    ),
    Question(
        "custom_danger",
        "Describe the danger",
        show_if=("danger", (OTHER,)),
        max_len=120,
        placeholder="e.g. A volcano waking up",
    ),
    Question(
        "destination",
        "Where is safety?",
        (
            "The green valley beyond the mountains",
            "The old safe burrow of the elders",
            "The far shore of the great lake",
        ),
        default="The green valley beyond the mountains",
        show_if=_only(st.SURVIVAL),
    ),
    # The trickster outwits the bully
    Question(
        "bully",
        "Who is the bully?",
        ("A huge greedy bear", "A bossy bull moose", "A mean old badger", OTHER),
        default="A huge greedy bear",
        show_if=_only(st.TRICKSTER),
    ),
    Question(
        "custom_bully",
        "Describe the bully",
        show_if=("bully", (OTHER,)),
        max_len=80,
        placeholder="e.g. A loud bossy goose",
    ),
    Question(
        "trick",
        "What is the trick?",
        (
            "A fake treasure map",
            "A voice thrown from the shadows",
            "A shadow that looks like a giant",
            OTHER,
        ),
        default="A fake treasure map",
        show_if=_only(st.TRICKSTER),
    ),
    Question(
        "custom_trick",
        "Describe the trick",
        show_if=("trick", (OTHER,)),
        max_len=200,
        placeholder="One sentence",
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


def asked_in(q: Question, structure: st.Structure) -> bool:
    """Whether ``q`` belongs to ``structure``'s quiz (possibly behind a branch within it)."""
    while q.show_if is not None:
        parent, values = q.show_if
        if parent == st.ANSWER_KEY:
            return structure.label in values
        q = BY_KEY[parent]
    return True


def questions_for(structure: st.Structure) -> list[Question]:
    """The questions a structure can ask, in order (the structure question first)."""
    return [q for q in QUESTIONS if asked_in(q, structure)]


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
    if st.ANSWER_KEY not in raw:  # answers saved before structures existed: the power fantasy
        raw = {**raw, st.ANSWER_KEY: st.DEFAULT.label}
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


def structure(a: dict[str, str]) -> st.Structure:
    return st.get(a)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text else text


def _chosen(a: dict[str, str], key: str, fallback: str) -> str:
    """A choice in lower case, or the free text its "Something else…" asked for."""
    value = a.get(f"custom_{key}", "") if a.get(key) == OTHER else a.get(key, "")
    if not value:
        value = BY_KEY[key].default or fallback
    return _lower_first(value.rstrip(".")) or fallback


def rescued_text(a: dict[str, str]) -> str:
    return _chosen(a, "rescued", "a friend")


def captor_text(a: dict[str, str]) -> str:
    return _chosen(a, "captor", "a trap")


def friend_text(a: dict[str, str]) -> str:
    return _chosen(a, "friend", "an unlikely friend")


def odds_text(a: dict[str, str]) -> str:
    return _chosen(a, "odds", "everyone says they are too different")


def danger_text(a: dict[str, str]) -> str:
    return _chosen(a, "danger", "a great danger")


def destination_text(a: dict[str, str]) -> str:
    return _chosen(a, "destination", "a safe place")


def bully_text(a: dict[str, str]) -> str:
    return _chosen(a, "bully", "a bully")


def trick_text(a: dict[str, str]) -> str:
    return _chosen(a, "trick", "a clever trick")


def wrong_text(a: dict[str, str]) -> str:
    return _chosen(a, "wrong", "did the hero wrong")


def cast_text(a: dict[str, str]) -> str:
    """The other characters the pictures must keep consistent, per structure."""
    s = structure(a)
    if s is st.RESCUE:
        return f"{rescued_text(a)} (the one to rescue), held by {captor_text(a)}"
    if s is st.FRIENDSHIP:
        return f"{friend_text(a)}, the hero's unlikely friend, clearly different in size and kind"
    if s is st.SURVIVAL:
        return f"a few small animals travelling with the hero; the danger: {danger_text(a)}"
    if s is st.TRICKSTER:
        return f"{bully_text(a)}, the bully, much larger than the hero"
    return f"{rival_text(a)}, the rival, larger than the hero"


def hero_species(a: dict[str, str]) -> str:
    return (
        (a.get("custom_animal") or "") if a.get("animal") == OTHER else a.get("animal", "Red Fox")
    )


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

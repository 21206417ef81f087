"""Narration as data: one spoken line per scene, its audio and its word timings.

The voice providers (``foxpipe.providers.voice``) fill these in; the timeline, the captions
and the mix (``foxpipe.media``) read them. Also the pure parts of the script: narrator styles,
the word budget, cleaning a line, the offline script, and comparing a transcript with its line.
No I/O here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field

from foxpipe.domain.models import SCENE_COUNT, Story
from foxpipe.domain.plain import plain


class LineStatus(StrEnum):
    EMPTY = "empty"  # no text: the scene lasts the minimum time, silent
    QUEUED = "queued"
    SYNTHESIZING = "synthesizing"
    READY = "ready"
    FAILED = "failed"


@dataclass
class Word:
    """One spoken word, in seconds from the start of its line's audio."""

    text: str
    start: float
    end: float


@dataclass
class NarrationLine:
    index: int  # the scene's index (scene number - 1)
    text: str  # what the narrator says
    status: LineStatus = LineStatus.QUEUED
    audio_path: str = ""  # WAV (PCM16 mono) on disk
    audio_url: str = ""  # hosted copy, when uploaded
    duration: float = 0.0  # seconds of audio
    words: list[Word] = field(default_factory=list)
    timing: str = ""  # "provider" (word timings from the voice) or "estimated"
    transcript: str = ""  # what the voice actually said, when the provider reports it
    reworded: bool = False  # the transcript still differs from the text after a retry
    error: str = ""
    attempts: int = 0
    voice: str = ""
    provider: str = ""

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NarrationLine:
        d = dict(d)
        d["status"] = LineStatus(d.get("status", LineStatus.QUEUED))
        d["words"] = [Word(**w) for w in d.get("words", [])]
        return cls(**d)


@dataclass
class SpeechResult:
    """What a voice provider returns for one line."""

    wav: bytes  # PCM16 mono WAV
    words: list[Word] = field(default_factory=list)  # empty: the caller estimates them
    transcript: str = ""
    model: str = ""
    usage: dict[str, Any] = field(default_factory=dict)
    reworded: bool = False  # the voice still said something else after a retry
    cost: float = 0.0  # US$ this synthesis cost, when the provider is paid


# ---------------------------------------------------------------------------- narrator styles


@dataclass(frozen=True)
class NarratorStyle:
    key: str
    label: str
    direction: str  # how a model voice should sound
    writing: str  # how the script should read
    rate: int  # espeak-ng words per minute
    pitch: int  # espeak-ng pitch, 0-99
    speed: float  # the speech endpoint's ``speed``


STYLES: dict[str, NarratorStyle] = {
    s.key: s
    for s in (
        NarratorStyle(
            "storyteller",
            "Warm storyteller",
            "a warm, friendly storyteller reading a bedtime story: gentle, unhurried, smiling",
            "warm and simple, like a bedtime story",
            155,
            50,
            1.0,
        ),
        NarratorStyle(
            "epic",
            "Epic trailer voice",
            "a deep, dramatic movie-trailer narrator: low, powerful, with weighty pauses",
            "dramatic and punchy, like a movie trailer",
            145,
            30,
            0.95,
        ),
        NarratorStyle(
            "playful",
            "Playful and bright",
            "a bright, playful narrator for kids: lively, curious, full of wonder",
            "lively and playful, for young viewers",
            175,
            65,
            1.08,
        ),
        NarratorStyle(
            "calm",
            "Calm documentary",
            "a calm nature-documentary narrator: measured, clear, quietly amazed",
            "calm and observant, like a nature documentary",
            150,
            42,
            0.98,
        ),
    )
}
DEFAULT_STYLE = "storyteller"


def style_of(key: str | None) -> NarratorStyle:
    """A style by key (or label); the default for anything unknown."""
    k = (key or "").strip().lower()
    for s in STYLES.values():
        if k in (s.key, s.label.lower()):
            return s
    return STYLES[DEFAULT_STYLE]


# ---------------------------------------------------------------------------- script


MAX_LINE_CHARS = 400  # a spoken line longer than this is trimmed, whatever the budget
MIN_WORDS = 3
SAMPLE_SENTENCE = "Once upon a time, in a quiet forest, a small fox dreamed of something big."


class NarrationDraftLine(BaseModel):
    number: int = Field(ge=1, le=SCENE_COUNT)
    text: str = Field(max_length=600)


class NarrationDraft(BaseModel):
    """What the chat model returns: exactly one spoken line per scene."""

    lines: Annotated[
        list[NarrationDraftLine], Field(min_length=SCENE_COUNT, max_length=SCENE_COUNT)
    ]


class NarrationRewrite(BaseModel):
    text: str = Field(min_length=1, max_length=600)


def words_budget(seconds: float, scenes: int = SCENE_COUNT, words_per_second: float = 2.5) -> int:
    """Words per scene so the whole narration lasts about ``seconds``."""
    try:
        total = float(seconds) * float(words_per_second)
    except (TypeError, ValueError):
        total = 60.0 * 2.5
    if not math.isfinite(total) or total <= 0:
        total = 60.0 * 2.5
    return max(MIN_WORDS, int(total / max(1, scenes)))


_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_MARKS = re.compile(r"(\*\*|__|\*|`+|~~|^#{1,6}\s*|^>\s*|^\s*(?:[-+•]|\d+[.)])\s+)", re.M)
_PREFIX = re.compile(r"^\s*(?:narrator|line|scene)\s*\d*\s*[:\-–—]\s*", re.I)
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": ", ",
        "\u2026": "...",
        "\u00a0": " ",
    }
)
_KEEP_SYMBOLS = set(".,;:!?'\"-()&%$")


def clean_line(text: Any, max_words: int | None = None) -> str:
    """A line safe to speak and show: no markdown, control characters, emoji or odd unicode;
    whitespace collapsed; trimmed to ``max_words`` (at a clause end when one is close) and to
    MAX_LINE_CHARS. Never raises; anything that is not text becomes ''."""
    if not isinstance(text, str):
        return ""
    s = unicodedata.normalize("NFKC", text[: MAX_LINE_CHARS * 8]).translate(_QUOTES)
    s = _MD_LINK.sub(r"\1", s)
    s = _MD_MARKS.sub("", s)
    s = _PREFIX.sub("", s)
    out = []
    for ch in s:
        cat = unicodedata.category(ch)
        if ch in "\n\r\t":
            out.append(" ")
        elif cat[0] in "LN" or ch == " " or ch in _KEEP_SYMBOLS:
            out.append(ch)
        elif cat[0] == "M" and out and out[-1][-1:].isalpha():
            out[-1] += ch  # a combining mark stays on its letter (at most one per letter)
        elif cat[0] in "PZ":
            out.append(" ")
        # control, format, private-use, unassigned, marks alone, other symbols (emoji): dropped
    s = re.sub(r"\s+", " ", "".join(out)).strip()
    s = re.sub(r"\s+([.,;:!?])", r"\1", s)
    s = re.sub(r"([,;:!?])\1+", r"\1", s)
    s = re.sub(r"\.{4,}", "...", s)
    s = s.strip(" \"'-,;:")
    if not any(c.isalnum() for c in s):
        return ""
    if max_words is not None and max_words > 0:
        s = trim_words(s, max_words)
    if len(s) > MAX_LINE_CHARS:
        cut = s[:MAX_LINE_CHARS].rsplit(" ", 1)[0]
        s = cut.rstrip(" ,;:-") + "."
    return s


def trim_words(text: str, max_words: int) -> str:
    """At most ``max_words`` words, ending at a clause boundary when one is in the last third."""
    words = text.split()
    if len(words) <= max_words:
        return text
    kept = words[:max_words]
    for i in range(len(kept) - 1, max(0, len(kept) * 2 // 3) - 1, -1):
        if kept[i][-1:] in ".,;:!?":
            kept = kept[: i + 1]
            break
    line = " ".join(kept).rstrip(",;:-")
    if line[-1:] not in ".!?":
        line += "."
    return line


def _clauses(text: str) -> list[str]:
    text = re.sub(r"\([^)]*\)", "", text)
    return [c.strip() for c in re.split(r"(?<=[.!?;:,])\s+", text) if c.strip()]


_DANGLING = {
    "a",
    "an",
    "the",
    "of",
    "to",
    "in",
    "on",
    "at",
    "by",
    "for",
    "with",
    "and",
    "or",
    "but",
    "as",
    "until",
    "from",
    "into",
    "than",
    "that",
    "who",
    "which",
    "is",
    "are",
    "was",
    "his",
    "her",
    "its",
    "their",
    "while",
    "when",
    "before",
    "after",
    "so",
    "if",
    "every",
    "each",
    "what",
    "can",
}


def _sentence(words: list[str]) -> str:
    words = list(words)
    while len(words) > 1 and words[-1].lower().strip(",;:.") in _DANGLING:
        words.pop()
    line = " ".join(words).strip().rstrip(",;:-")
    if not line:
        return ""
    line = line[0].upper() + line[1:]
    return line if line[-1] in ".!?" else line + "."


def offline_line(scene_text: str, budget: int, variant: int = 0) -> str:
    """One spoken line from a scene, deterministically: the longest run of whole clauses that
    fits the budget, or a clause cut at the budget when that keeps more words (``variant`` 1
    prefers the later candidates, for a rewrite)."""
    clauses = _clauses(clean_line(scene_text))
    if not clauses:
        return ""
    sizes = [len(c.split()) for c in clauses]
    options: list[tuple[float, int, str]] = []
    for i in range(len(clauses)):
        total = 0
        for j in range(i, len(clauses)):
            total += sizes[j]
            if total > budget:
                break
            options.append((float(total), i, " ".join(clauses[i : j + 1])))
        cut = _sentence(clauses[i].split()[:budget])
        options.append((len(cut.split()) - 1.5, i, cut))
    order = -1 if variant % 2 else 1
    best = max(options, key=lambda o: (o[0], -o[1] * order))
    return _sentence(best[2].split())


def offline_script(story: Story, seconds: float = 60.0, words_per_second: float = 2.5) -> list[str]:
    """The embedded writer: one line per scene from the scene's own words, within the budget.
    A missing (placeholder) scene gets an empty line."""
    budget = words_budget(seconds, len(story.scenes) or SCENE_COUNT, words_per_second)
    return ["" if sc.placeholder else offline_line(sc.text, budget) for sc in story.scenes]


def offline_rewrite(
    story: Story, lines: list[str], number: int, budget: int, note: str = ""
) -> str:
    """Another wording of one line, deterministically."""
    scene = story.scenes[number - 1]
    current = lines[number - 1] if 0 < number <= len(lines) else ""
    for variant in (1, 0):
        line = offline_line(scene.text, budget, variant)
        if line and line != current:
            return line
    name = story.answers.get("hero_name") or "our hero"
    return clean_line(f"And so {name}'s story goes on.", budget)


# ---------------------------------------------------------------------------- transcripts


def spoken_words(text: str) -> list[str]:
    """Words as a listener hears them: case, punctuation and apostrophes ignored."""
    s = unicodedata.normalize("NFKC", text or "").casefold().translate(_QUOTES).replace("'", "")
    return re.findall(r"[^\W_]+", s)


def same_words(said: str, line: str) -> bool:
    return spoken_words(said) == spoken_words(line)

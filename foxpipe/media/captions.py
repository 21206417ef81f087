"""Captions timed to the voice: short phrases from the narration's word timings, an ASS
file (burned in by libass) with the word being spoken highlighted, and an ``.srt``.

Phrases are at most a few words (``MAX_WORDS`` / ``MAX_CHARS``) and break after
punctuation. Every cue lies inside its scene's narration span. The ASS layout keeps the
text clear of the bottom ~20 % and the right ~12 % of the frame, where the platforms
draw their buttons.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from foxpipe.domain.narration import NarrationLine, Word
from foxpipe.media.timeline import Timeline

MAX_WORDS = 4
MAX_CHARS = 24
HOLD = 0.35  # seconds a phrase stays after its last word when the voice pauses
BOTTOM_CLEAR = 0.22  # fraction of the height kept free at the bottom
RIGHT_CLEAR = 0.13  # ... and of the width at the right
LEFT_MARGIN = 0.06
HIGHLIGHT = "&H0000D7FF"  # ASS colours are &HAABBGGRR: gold
TEXT = "&H00FFFFFF"

_BREAK_AFTER = re.compile(r"[.,;:!?…)\]\"»”—–-]$")


@dataclass(frozen=True)
class Cue:
    """One phrase on screen, in seconds on the video's clock."""

    start: float
    end: float
    text: str
    scene: int
    words: tuple[Word, ...] = field(default=())  # absolute times, clipped to the cue


# ---------------------------------------------------------------- text hygiene
def clean(text: str) -> str:
    """One line of displayable text: NFC, no control or format characters (except the
    joiners emoji need), whitespace collapsed."""
    text = unicodedata.normalize("NFC", str(text))
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\u200d\ufe0f":
            out.append(ch)
        elif cat in ("Zs", "Zl", "Zp") or ch in "\t\r\n\v\f":
            out.append(" ")
        elif cat[0] == "C":
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def ass_escape(text: str) -> str:
    """User text made literal for an ASS Dialogue line: no override blocks ({...}), no
    \\N/\\n/\\h escapes, no line breaks."""
    text = clean(text)
    text = text.replace("\\", "\\\u2060")  # a word joiner after a backslash: never an escape
    return text.replace("{", "\\{").replace("}", "\\}")


# ---------------------------------------------------------------- phrases
def estimate_words(text: str, duration: float) -> list[Word]:
    """Word timings spread over the line by length (a fallback when none were given)."""
    words = clean(text).split()
    if not words or duration <= 0:
        return []
    weights = [len(w) + 2 for w in words]
    total, t, out = sum(weights), 0.0, []
    for w, wt in zip(words, weights, strict=True):
        d = duration * wt / total
        out.append(Word(w, t, t + d))
        t += d
    return out


def phrases(
    words: Sequence[Word], max_words: int = MAX_WORDS, max_chars: int = MAX_CHARS
) -> list[list[Word]]:
    """Group words into short phrases; break after punctuation, at ``max_words`` words or
    before the text would pass ``max_chars`` characters."""
    out: list[list[Word]] = []
    cur: list[Word] = []
    for w in words:
        text = clean(w.text)
        if not text:
            continue
        w = Word(text, w.start, w.end)
        length = len(" ".join(x.text for x in [*cur, w]))
        if cur and (len(cur) >= max_words or length > max_chars):
            out.append(cur)
            cur = []
        cur.append(w)
        if _BREAK_AFTER.search(text):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


def _line_words(line: NarrationLine, span: float) -> list[Word]:
    words = [w for w in line.words if clean(w.text)] or estimate_words(line.text, span)
    out = []
    for w in words:
        s = min(max(0.0, float(w.start)), span)
        e = min(max(s, float(w.end)), span)
        out.append(Word(w.text, s, e))
    out.sort(key=lambda w: w.start)
    return out


SILENT_MARGIN = 0.3  # seconds left clear at each end of a silent scene's captions


def build_cues(
    timeline: Timeline,
    lines: Sequence[NarrationLine | None],
    silent_text: Sequence[str] | None = None,
) -> list[Cue]:
    """The captions for the whole video: per scene, phrases of its line's words shifted to
    the scene's start and kept inside its narration span. A scene without narration shows
    ``silent_text[index]`` (when given), its phrases spread over the scene by length."""
    by_index = {ln.index: ln for ln in lines if ln is not None}
    cues: list[Cue] = []
    for span in timeline.scenes:
        line = by_index.get(span.index)
        if line is not None and span.has_speech:
            offset, limit = span.start, span.speech_end
            words = _line_words(line, span.speech)
        else:
            text = silent_text[span.index] if silent_text and span.index < len(silent_text) else ""
            margin = min(SILENT_MARGIN, span.duration / 4)
            offset, limit = span.start + margin, span.end - margin
            words = estimate_words(text or "", limit - offset)
        if not words:
            continue
        groups = phrases(words)
        for g, group in enumerate(groups):
            start = offset + group[0].start
            if g + 1 < len(groups):
                nxt = offset + groups[g + 1][0].start
                end = min(nxt, offset + group[-1].end + HOLD)
            else:
                end = limit
            end = min(max(end, start + 0.05), limit)
            start = min(start, end)
            if end - start < 0.02:
                continue
            timed = tuple(
                Word(w.text, max(start, offset + w.start), min(end, offset + w.end)) for w in group
            )
            cues.append(Cue(start, end, " ".join(w.text for w in group), span.index, timed))
    return cues


# ---------------------------------------------------------------- files
def _srt_ts(seconds: float) -> str:
    ms = max(0, round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_text(cues: Sequence[Cue]) -> str:
    return "\n".join(
        f"{n}\n{_srt_ts(c.start)} --> {_srt_ts(c.end)}\n{clean(c.text)}\n"
        for n, c in enumerate(cues, 1)
    )


def _ass_ts(seconds: float) -> str:
    cs = max(0, round(seconds * 100))
    h, cs = divmod(cs, 360_000)
    m, cs = divmod(cs, 6000)
    s, cs = divmod(cs, 100)
    return f"{h:d}:{m:02d}:{s:02d}.{cs:02d}"


@dataclass(frozen=True)
class Layout:
    font_size: int
    margin_l: int
    margin_r: int
    margin_v: int
    outline: int


def layout(size: tuple[int, int]) -> Layout:
    """Caption geometry for the frame: bottom-centred above the platforms' button zone."""
    w, h = size
    fs = max(12, round(min(w, h) * 0.064))
    return Layout(
        font_size=fs,
        margin_l=round(w * LEFT_MARGIN),
        margin_r=round(w * RIGHT_CLEAR),
        margin_v=round(h * BOTTOM_CLEAR),
        outline=max(1, round(fs * 0.08)),
    )


FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf",
)


@lru_cache(maxsize=8)
def _measure_font(size: int) -> ImageFont.FreeTypeFont | None:
    for f in FONT_FILES:
        if Path(f).is_file():
            try:
                return ImageFont.truetype(f, size)
            except OSError:
                continue
    return None


def _word_width(text: str, size: int) -> float:
    font = _measure_font(size)
    if font is None:
        return len(text) * size * 0.75  # a wide bold font's average, erring large
    return font.getlength(text) * 1.05 + size * 0.2  # some room for the outline


def _fit_scale(words: Sequence[Word], lay: Layout, width: int) -> int:
    """Percent to shrink a phrase so its widest word fits between the margins (libass
    wraps between words, never inside one)."""
    room = width - lay.margin_l - lay.margin_r
    widest = max((_word_width(clean(w.text), lay.font_size) for w in words), default=0.0)
    return 100 if widest <= room else max(20, int(100 * room / widest))


def ass_text(
    cues: Sequence[Cue], size: tuple[int, int], *, offset: float = 0.0, font: str = "DejaVu Sans"
) -> str:
    """An ASS script for ``cues`` with times shifted by ``-offset`` (for one scene's
    segment): one event per word, the word being spoken in the highlight colour."""
    w, h = size
    lay = layout(size)
    head = (
        "[Script Info]\nScriptType: v4.00+\nWrapStyle: 0\nScaledBorderAndShadow: yes\n"
        f"PlayResX: {w}\nPlayResY: {h}\nYCbCr Matrix: TV.709\n\n"
        "[V4+ Styles]\n"
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
        "Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
        "Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
        f"Style: Caption,{font},{lay.font_size},{TEXT},{HIGHLIGHT},&H00000000,&H80000000,"
        f"-1,0,0,0,100,100,0,0,1,{lay.outline},{max(1, lay.outline // 2)},2,"
        f"{lay.margin_l},{lay.margin_r},{lay.margin_v},1\n\n"
        "[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n"
    )
    events: list[str] = []
    for cue in cues:
        words = list(cue.words) or [Word(cue.text, cue.start, cue.end)]
        # word k is highlighted from its start until the next word starts (the last: to the end)
        scale = _fit_scale(words, lay, w)
        prefix = f"{{\\fscx{scale}\\fscy{scale}}}" if scale < 100 else ""
        bounds = (
            [cue.start] + [max(cue.start, min(cue.end, wd.start)) for wd in words[1:]] + [cue.end]
        )
        for k in range(len(words)):
            s, e = bounds[k], bounds[k + 1]
            if e - s <= 0.001:
                continue
            parts = []
            for j, wd in enumerate(words):
                t = ass_escape(wd.text)
                parts.append(f"{{\\c{HIGHLIGHT}}}{t}{{\\c{TEXT}}}" if j == k else t)
            events.append(
                f"Dialogue: 0,{_ass_ts(s - offset)},{_ass_ts(e - offset)},Caption,,0,0,0,,{prefix}{' '.join(parts)}"
            )
    return head + "\n".join(events) + "\n"

"""Word timings estimated from a line's audio, for voices that do not report them.

ffmpeg's ``silencedetect`` rule (in numpy for 16-bit PCM, else the bundled imageio-ffmpeg
binary) finds where the speech starts and ends inside the WAV; the line's words are spread
across that span, each weighted by its syllables and letters, with a little extra room after
punctuation where a narrator pauses.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foxpipe.domain.narration import Word

log = logging.getLogger(__name__)

SILENCE_DB = -35.0  # quieter than this counts as silence
MIN_SILENCE = 0.06  # seconds of quiet that count as a gap
FFMPEG_TIMEOUT = 30.0
PAUSE_WEIGHT = {",": 0.6, ";": 0.8, ":": 0.8, ".": 1.2, "!": 1.2, "?": 1.2}


@dataclass(frozen=True)
class SpeechSpan:
    start: float  # seconds from the start of the audio where speech begins
    end: float  # where it ends
    duration: float  # the whole audio's length


def wav_duration(source: str | Path | bytes) -> float:
    """Seconds of audio in a WAV file (path or bytes); 0.0 when it cannot be read."""
    try:
        f = io.BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
        with f, wave.open(f, "rb") as w:
            rate = w.getframerate()
            return w.getnframes() / rate if rate else 0.0
    except (OSError, EOFError, wave.Error):
        return 0.0


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


_SILENCE = re.compile(r"silence_(start|end):\s*(-?\d+(?:\.\d+)?)")


def speech_span(
    path: str | Path, silence_db: float = SILENCE_DB, min_silence: float = MIN_SILENCE
) -> SpeechSpan:
    """Where speech starts and ends in a WAV. The whole file when it cannot be told."""
    duration = wav_duration(path)
    if duration <= 0:
        return SpeechSpan(0.0, 0.0, 0.0)
    events = pcm16_silences(path, silence_db, min_silence)
    if events is None:  # not 16-bit PCM: ffmpeg reads it
        events = ffmpeg_silences(path, silence_db, min_silence)
    if events is None:
        return SpeechSpan(0.0, duration, duration)
    return span_from_silences(events, duration)


def pcm16_silences(
    path: str | Path, silence_db: float = SILENCE_DB, min_silence: float = MIN_SILENCE
) -> list[tuple[str, float]] | None:
    """ffmpeg's ``silencedetect`` (default mode: every channel's samples in one count) on a
    16-bit PCM WAV, in numpy: the same events at the same sample, without starting ffmpeg
    (about 35 ms a line). None for any other WAV."""
    try:
        with open(path, "rb") as f, wave.open(f, "rb") as w:
            if w.getsampwidth() != 2 or w.getcomptype() != "NONE":
                return None
            rate, channels = w.getframerate(), w.getnchannels()
            # No more than the file holds: a streamed WAV's header may claim 4 GB of frames.
            room = os.fstat(f.fileno()).st_size // (2 * max(1, channels))
            raw = w.readframes(min(w.getnframes(), room))
    except (OSError, EOFError, wave.Error):
        return None
    data = np.frombuffer(
        raw, dtype="<i2", count=len(raw) // (2 * max(1, channels)) * max(1, channels)
    )
    if rate <= 0 or channels <= 0:
        return None
    noise = int(10 ** (silence_db / 20) * 32767)  # the filter's int16 threshold (truncated)
    notify = int(min_silence * rate + 0.5) * channels  # samples of quiet that make a silence
    silent = (data < noise) & (data > -noise)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], silent.view(np.int8), [0]))))
    tick = 1 / rate  # seconds per sample, as ffmpeg multiplies it
    events: list[tuple[str, float]] = []
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if b - a < max(1, notify):
            continue
        # reported at the sample that completes the run of quiet, dated back to where it began
        start = (a + notify - 1) // channels + 1 - notify // channels
        end = b // channels  # the first loud sample (or the end of the audio)
        events += [("start", _shown(start * tick)), ("end", _shown(end * tick))]
    return events


def _shown(seconds: float) -> float:
    """A time as ffmpeg prints it (6 decimals; 5 after the first significant digit below 1 s)
    and the parser reads it back."""
    if seconds <= 0:
        return 0.0
    magnitude = math.floor(math.log10(seconds))
    return float(f"{seconds:.{-magnitude + 5 if magnitude < 0 else 6}f}")


def ffmpeg_silences(
    path: str | Path, silence_db: float = SILENCE_DB, min_silence: float = MIN_SILENCE
) -> list[tuple[str, float]] | None:
    """``silencedetect``'s events from the bundled ffmpeg; None when it cannot run."""
    cmd = [
        _ffmpeg(),
        "-hide_banner",
        "-nostats",
        "-i",
        str(path),
        "-af",
        f"silencedetect=noise={silence_db}dB:duration={min_silence}",
        "-f",
        "null",
        "-",
    ]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=FFMPEG_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("[VOICE] silencedetect failed (%s); using the whole line", type(e).__name__)
        return None
    return [(kind, float(value)) for kind, value in _SILENCE.findall(proc.stderr)]


def span_from_silences(events: list[tuple[str, float]], duration: float) -> SpeechSpan:
    """The speech span from silencedetect's (start|end, seconds) events, in order."""
    start, end = 0.0, duration
    silences: list[tuple[float, float]] = []
    open_at: float | None = None
    for kind, t in events:
        if kind == "start":
            open_at = max(0.0, t)
        elif open_at is not None:
            silences.append((open_at, min(duration, t)))
            open_at = None
    if open_at is not None:
        silences.append((open_at, duration))
    tol = 0.02
    if silences and silences[0][0] <= tol:
        start = silences[0][1]
    if silences and silences[-1][1] >= duration - tol and silences[-1][0] > start:
        end = silences[-1][0]
    if end - start < 0.05:  # all silence or nonsense: use the whole audio
        return SpeechSpan(0.0, duration, duration)
    return SpeechSpan(start, end, duration)


def syllables(word: str) -> int:
    """A rough English syllable count (vowel groups, silent final e); numbers count per digit."""
    w = re.sub(r"[^a-z0-9]", "", word.lower())
    if not w:
        return 1
    if w.isdigit():
        return max(1, len(w))
    groups = re.findall(r"[aeiouy]+", w)
    n = len(groups)
    if w.endswith("e") and n > 1 and not w.endswith(("le", "ee")):
        n -= 1
    return max(1, n)


def spread_words(text: str, start: float, end: float) -> list[Word]:
    """The line's words laid out across [start, end], in order, weighted by syllables and
    letters, with pauses after punctuation."""
    tokens = text.split()
    if not tokens or end <= start:
        return []
    weights = []
    pauses = []
    for i, tok in enumerate(tokens):
        letters = sum(c.isalnum() for c in tok)
        weights.append(0.7 * syllables(tok) + 0.3 * max(1, letters) / 3.0)
        pauses.append(PAUSE_WEIGHT.get(tok[-1], 0.0) * 0.5 if i < len(tokens) - 1 else 0.0)
    total = sum(weights) + sum(pauses)
    scale = (end - start) / total
    words: list[Word] = []
    t = start
    for tok, w, p in zip(tokens, weights, pauses, strict=True):
        w_end = t + w * scale
        words.append(Word(tok, round(t, 3), round(min(end, w_end), 3)))
        t = w_end + p * scale
    words[-1].end = round(end, 3)
    return words


def estimate_words(text: str, wav_path: str | Path) -> list[Word]:
    """Estimated word timings for ``text`` spoken in the WAV at ``wav_path``."""
    span = speech_span(wav_path)
    return spread_words(text, span.start, span.end)

"""Narration as data: one spoken line per scene, its audio and its word timings.

The voice providers (``foxpipe.providers.voice``) fill these in; the timeline, the captions
and the mix (``foxpipe.media``) read them. No I/O here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


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
        return asdict(self)

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

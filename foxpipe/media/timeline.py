"""The Short's timeline: each scene lasts its narration plus a pause, a silent scene a
minimum; boundaries sit on the frame grid so the video's length equals the timeline's.

Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from foxpipe.domain.narration import LineStatus, NarrationLine

NARRATION_PAUSE_SECONDS = 0.4
SCENE_MIN_SECONDS = 2.0


@dataclass(frozen=True)
class SceneSpan:
    """One scene on the video's clock (seconds from the video's start)."""

    index: int
    start: float
    end: float
    speech_end: float  # the narration runs from ``start`` to here; == start for a silent scene

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def speech(self) -> float:
        return self.speech_end - self.start

    @property
    def has_speech(self) -> bool:
        return self.speech_end > self.start


@dataclass(frozen=True)
class Timeline:
    scenes: tuple[SceneSpan, ...]
    fps: int

    @property
    def total(self) -> float:
        return self.scenes[-1].end if self.scenes else 0.0

    def frames(self, index: int) -> int:
        """How many video frames scene ``index`` has."""
        s = self.scenes[index]
        return round(s.end * self.fps) - round(s.start * self.fps)


def spoken(line: NarrationLine | None) -> float:
    """Seconds of usable narration in a line (0: the scene is silent)."""
    if line is None or not line.text.strip() or not line.audio_path:
        return 0.0
    if line.status not in (LineStatus.READY,) or not math.isfinite(line.duration):
        return 0.0
    return max(0.0, float(line.duration))


def plan(
    lines: Sequence[NarrationLine | None],
    scene_count: int | None = None,
    *,
    pause: float = NARRATION_PAUSE_SECONDS,
    min_seconds: float = SCENE_MIN_SECONDS,
    fps: int = 30,
) -> Timeline:
    """The timeline for ``scene_count`` scenes (default: one per line). ``lines`` may be in any
    order and have gaps: a line belongs to the scene ``line.index``; a scene with no ready
    line lasts ``min_seconds``. Scene ends are rounded up to the next frame."""
    count = scene_count if scene_count is not None else len(lines)
    by_index: dict[int, NarrationLine] = {}
    for pos, line in enumerate(lines):
        if line is not None:
            idx = line.index if 0 <= line.index < max(count, 1) else pos
            by_index.setdefault(idx, line)
    pause, min_seconds = max(0.0, pause), max(1.0 / fps, min_seconds)
    scenes: list[SceneSpan] = []
    t = 0.0
    for i in range(count):
        speech = spoken(by_index.get(i))
        need = speech + pause if speech > 0 else min_seconds
        end = math.ceil((t + need) * fps - 1e-6) / fps
        scenes.append(SceneSpan(i, t, end, t + speech))
        t = end
    return Timeline(tuple(scenes), fps)


@dataclass(frozen=True)
class ClipFit:
    """How a provider clip fills its scene: play ``play`` seconds of it, then hold its last
    frame for ``hold`` seconds (a still where the clip is shorter than the narration)."""

    play: float
    hold: float


def fit_clips(
    scene_seconds: Sequence[float], clip_seconds: Sequence[float | None]
) -> list[ClipFit | None]:
    """Per scene: None for a still scene (no clip), else the clip trimmed to the scene, or
    played whole and held on its last frame where it is short."""
    out: list[ClipFit | None] = []
    for i, need in enumerate(scene_seconds):
        clip = clip_seconds[i] if i < len(clip_seconds) else None
        if clip is None or clip <= 0:
            out.append(None)
            continue
        play = min(clip, need)
        out.append(ClipFit(play, max(0.0, need - play)))
    return out

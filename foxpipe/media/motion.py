"""The camera by beat: each story beat maps to a mood, each mood to a camera move for the
stills (zoompan expressions) and a phrase for image-to-video clip prompts.

Beat names differ between story structures, so they are matched to a small set of moods
by keywords, with a gentle push-in as the fallback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Motion:
    """A camera move over one scene. Zoom 1.0 shows the whole frame; x/y place the crop
    window across the free range (0 = left/top, 1 = right/bottom); ``shake`` is the
    amplitude of a small hand-held wobble as a fraction of the frame."""

    mood: str
    zoom_start: float
    zoom_end: float
    x_start: float = 0.5
    x_end: float = 0.5
    y_start: float = 0.5
    y_end: float = 0.5
    shake: float = 0.0
    hint: str = ""

    def expressions(self, total_frames: int, offset: int = 0) -> tuple[str, str, str]:
        """zoompan z/x/y expressions; progress runs 0 -> 1 over ``total_frames`` frames, the
        first output frame being frame ``offset`` of the move (for a crossfade's tail)."""
        p = f"min(1,(on+{offset})/{max(1, total_frames - 1)})"
        e = f"({p}*{p}*(3-2*{p}))"  # smoothstep: eases in and out
        z = f"{self.zoom_start:.4f}+({self.zoom_end - self.zoom_start:.4f})*{e}"
        x = f"(iw-iw/zoom)*({self.x_start:.3f}+({self.x_end - self.x_start:.3f})*{e})"
        y = f"(ih-ih/zoom)*({self.y_start:.3f}+({self.y_end - self.y_start:.3f})*{e})"
        if self.shake > 0:
            x += f"+iw*{self.shake:.4f}*sin((on+{offset})*1.9)"
            y += f"+ih*{self.shake:.4f}*cos((on+{offset})*2.3)"
        return z, x, y


MOODS: dict[str, Motion] = {
    "calm": Motion(
        "calm", 1.0, 1.08, hint="slow gentle push-in, steady camera, soft natural light"
    ),
    "wonder": Motion(
        "wonder",
        1.02,
        1.14,
        y_start=0.55,
        y_end=0.35,
        hint="slow push-in toward the discovery, camera tilts up slightly, sense of wonder",
    ),
    "low": Motion(
        "low",
        1.12,
        1.02,
        y_start=0.4,
        y_end=0.6,
        hint="slow pull-back drifting down, quiet and heavy mood, still camera",
    ),
    "lively": Motion(
        "lively",
        1.12,
        1.12,
        x_start=0.0,
        x_end=1.0,
        hint="tracking pan across the action, lively handheld energy",
    ),
    "rising": Motion(
        "rising",
        1.0,
        1.18,
        y_start=0.6,
        y_end=0.4,
        hint="steady push-in rising with the hero, dramatic light building",
    ),
    "energetic": Motion(
        "energetic",
        1.04,
        1.22,
        shake=0.004,
        hint="fast push-in with a little camera shake, dynamic action, impact",
    ),
    "tense": Motion(
        "tense",
        1.05,
        1.15,
        x_start=0.35,
        x_end=0.65,
        shake=0.002,
        hint="slow tense push-in with a slight sideways drift, face-off framing",
    ),
    "warm": Motion(
        "warm",
        1.1,
        1.04,
        x_start=0.6,
        x_end=0.4,
        hint="gentle pull-back and drift, warm reconciliation, calm camera",
    ),
    "triumph": Motion(
        "triumph",
        1.25,
        1.0,
        hint="sweeping pull-back reveal of the whole scene, triumphant, wide final shot",
    ),
}
FALLBACK = Motion("neutral", 1.0, 1.06, hint="gentle slow push-in, steady camera")

# first match wins; keywords are matched against the lower-case beat name
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("triumph|victory|celebrat|finale|ending|epilogue", "triumph"),
    ("redemption|reconcil|forgiv|resolution|peace|friend|reunion", "warm"),
    ("power|action|display|battle|fight|chase|attack|rescue", "energetic"),
    ("challenge|showdown|rival|conflict|climax|justice|confront|danger", "tense"),
    ("transform|awaken|change|evolv|rebirth", "rising"),
    ("training|montage|practice|journey|travel|quest|adventure", "lively"),
    ("fail|setback|loss|defeat|sad|lonely|fall", "low"),
    ("discover|mystery|find|found|secret|magic", "wonder"),
    ("underdog|setup|ordinary|intro|opening|hook|begin|home", "calm"),
)


def mood_for(beat_name: str) -> str:
    name = (beat_name or "").lower()
    for pattern, mood in _KEYWORDS:
        if re.search(pattern, name):
            return mood
    return FALLBACK.mood


def motion_for(beat_name: str) -> Motion:
    """The camera move for a scene of this beat (any structure's beat names; unknown
    names get a gentle push-in)."""
    return MOODS.get(mood_for(beat_name), FALLBACK)


def clip_prompt_hint(beat_name: str) -> str:
    """The same camera grammar as a phrase for an image-to-video clip prompt."""
    return motion_for(beat_name).hint

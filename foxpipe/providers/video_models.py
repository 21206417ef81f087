"""What each image-to-video model accepts: reference images (how many), clip lengths,
resolutions (or Kling's modes), native audio, and which endpoint serves it.

Checked in November 2026 against the vendors' API documents and public client code:
Kling's ``image2video`` and ``multi-image2video`` endpoints (``image_list``, subject
references), MiniMax's v1 ``/v1/video_generation`` (Hailuo 2.3) and v2
``/v2/video_generation`` (``MiniMax-H3``, a ``content[]`` list whose ``first_frame`` and
``reference_image`` items are exclusive: a frame-led clip or a reference-led clip).
A model not listed here gets the conservative entry of its vendor: first frame only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelCaps:
    vendor: str  # "kling" or "hailuo"
    model: str
    max_references: (
        int  # reference images accepted beside (or instead of) the first frame; 0 = none
    )
    durations: tuple[int, ...]  # clip lengths in seconds the model accepts
    resolutions: tuple[str, ...]  # output resolutions (Kling: the modes std/pro decide it)
    native_audio: bool  # the model can make a soundtrack itself
    api: str = "v1"  # Kling: "v1"; MiniMax: "v1" (Hailuo) or "v2" (content[] list)
    note: str = ""

    @property
    def takes_references(self) -> bool:
        return self.max_references > 0

    def duration_for(self, wanted: int) -> int:
        """The accepted length closest to ``wanted`` (ties go to the shorter, cheaper one)."""
        return min(self.durations, key=lambda d: (abs(d - wanted), d))


KLING_MODES = ("std", "pro")  # std = 720p, pro = 1080p

KLING: dict[str, ModelCaps] = {
    "kling-v2-5-turbo": ModelCaps(
        "kling",
        "kling-v2-5-turbo",
        0,
        (5, 10),
        KLING_MODES,
        False,
        note="Fast and inexpensive; first frame only.",
    ),
    "kling-v2-6": ModelCaps(
        "kling",
        "kling-v2-6",
        0,
        (5, 10),
        KLING_MODES,
        True,
        note="Native audio (1080p only); first frame only.",
    ),
    "kling-v3": ModelCaps(
        "kling",
        "kling-v3",
        0,
        tuple(range(3, 16)),
        KLING_MODES,
        True,
        note="Flagship; 3-15 s; first frame only.",
    ),
    "kling-v3-omni": ModelCaps(
        "kling",
        "kling-v3-omni",
        4,
        tuple(range(3, 16)),
        KLING_MODES,
        True,
        note="Multi-image subject references (multi-image2video, up to 4 images).",
    ),
    "kling-video-o1": ModelCaps(
        "kling",
        "kling-video-o1",
        4,
        (5, 10),
        KLING_MODES,
        False,
        note="Multi-image subject references (up to 4 images).",
    ),
    "kling-v2-1": ModelCaps(
        "kling",
        "kling-v2-1",
        0,
        (5, 10),
        KLING_MODES,
        False,
        note="Two generations old; kept for existing settings.",
    ),
}

HAILUO: dict[str, ModelCaps] = {
    "MiniMax-H3": ModelCaps(
        "hailuo",
        "MiniMax-H3",
        9,
        tuple(range(4, 16)),
        ("768P", "2K"),
        True,
        api="v2",
        note="content[] list: first_frame, or up to 9 reference_image items (exclusive).",
    ),
    "MiniMax-Hailuo-2.3": ModelCaps(
        "hailuo",
        "MiniMax-Hailuo-2.3",
        0,
        (6, 10),
        ("768P", "1080P"),
        False,
        note="First frame only; 1080P only for 6 s.",
    ),
    "MiniMax-Hailuo-2.3-Fast": ModelCaps(
        "hailuo",
        "MiniMax-Hailuo-2.3-Fast",
        0,
        (6, 10),
        ("768P", "1080P"),
        False,
        note="Image-to-video only, about half the price; 1080P only for 6 s.",
    ),
}

DEFAULT_MODEL = {"kling": "kling-v2-5-turbo", "hailuo": "MiniMax-Hailuo-2.3"}


def caps(vendor: str, model: str) -> ModelCaps:
    """The capability entry of a model; an unknown model of a known vendor gets a
    conservative entry (no references, the vendor's usual lengths)."""
    table = KLING if vendor == "kling" else HAILUO if vendor == "hailuo" else None
    if table is None:
        raise ValueError(f"unknown video vendor {vendor!r}")
    key = model.strip()
    found = table.get(key) or next((c for k, c in table.items() if k.lower() == key.lower()), None)
    if found is not None:
        return found
    if vendor == "hailuo" and "minimax-h3" in key.lower():
        return ModelCaps("hailuo", key, 9, tuple(range(4, 16)), ("768P", "2K"), True, api="v2")
    if vendor == "kling":
        return ModelCaps(
            "kling", key, 0, (5, 10), KLING_MODES, False, note="Not in the table: first frame only."
        )
    return ModelCaps(
        "hailuo",
        key,
        0,
        (6, 10),
        ("768P", "1080P"),
        False,
        note="Not in the table: first frame only.",
    )


def hailuo_resolution(c: ModelCaps, wanted: str, duration: int) -> str:
    """A resolution the model accepts for that length (Hailuo 2.3: 1080P only for 6 s)."""
    res = wanted.upper() if wanted.upper() in c.resolutions else c.resolutions[0]
    if c.api == "v1" and res == "1080P" and duration != 6:
        res = "768P"
    return res

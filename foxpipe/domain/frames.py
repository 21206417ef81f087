"""The size of the scene images, chosen so a frame already has the video's shape.

GPT-image models from gpt-image-2 on accept any size whose sides are multiples of 16 with
a ratio up to 3:1: the frames are made at 9:16 or 16:9 (1088x1920, 1920x1088), so neither
the slideshow nor a clip crops the hero out. Older GPT-image and DALL-E models accept only
their fixed sizes (1024x1536 / 1536x1024). The embedded offline renderer draws any size.
"""

from __future__ import annotations

import re

FIXED = {"portrait": "1024x1536", "landscape": "1536x1024"}
VIDEO_SHAPED = {"portrait": "1088x1920", "landscape": "1920x1088"}
MAX_SIDE = 3840
MAX_RATIO = 3.0

_FIXED_SIZE_MODELS = re.compile(r"^(dall-e|gpt-image-1|chatgpt-image)", re.IGNORECASE)
_GPT_IMAGE = re.compile(r"^gpt-image-(\d+)(?:\.(\d+))?", re.IGNORECASE)


class SizeError(ValueError):
    """A size the image model would refuse; the message says why."""


def any_size(model: str) -> bool:
    """Whether the model accepts any size (gpt-image-2 and newer, and the offline renderer)."""
    m = model.strip().lower()
    if m in ("", "offline"):
        return True
    if _FIXED_SIZE_MODELS.match(m):
        return False
    g = _GPT_IMAGE.match(m)
    return g is not None and int(g.group(1)) >= 2


def parse(size: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*", size or "")
    if not m:
        raise SizeError(f"The image size {size!r} must look like 1088x1920 (width x height).")
    return int(m.group(1)), int(m.group(2))


def validate(size: str, model: str) -> str:
    """The size normalised ("WxH"), or SizeError with a readable reason."""
    w, h = parse(size)
    norm = f"{w}x{h}"
    if not any_size(model):
        if norm not in (*FIXED.values(), "1024x1024"):
            raise SizeError(
                f"{model} only makes 1024x1536, 1536x1024 or 1024x1024 images, not {norm}."
            )
        return norm
    if w % 16 or h % 16:
        raise SizeError(f"Both sides of the image size must be multiples of 16 ({norm} is not).")
    if max(w, h) > MAX_SIDE or min(w, h) < 256:
        raise SizeError(f"The image size {norm} is outside 256-{MAX_SIDE} pixels per side.")
    if max(w, h) / min(w, h) > MAX_RATIO:
        raise SizeError(f"The image size {norm} is longer than 3:1.")
    return norm


def image_size(model: str, orientation: str, override: str = "") -> str:
    """The scene image size for this image model and the video's orientation ("portrait"
    for 9:16, "landscape" for 16:9). ``override`` (the SCENE_IMAGE_SIZE setting) wins when
    the model accepts it and its orientation matches; otherwise SizeError says why."""
    if orientation not in FIXED:
        raise SizeError(f"Unknown orientation {orientation!r}: portrait or landscape.")
    if override.strip():
        size = validate(override, model)
        w, h = parse(size)
        if (h >= w) != (orientation == "portrait") and w != h:
            raise SizeError(
                f"The image size {size} does not match the video's {orientation} shape."
            )
        return size
    return (VIDEO_SHAPED if any_size(model) else FIXED)[orientation]


def is_portrait(size: str) -> bool:
    """Whether a stored image size is portrait (taller than wide); unreadable sizes are portrait."""
    try:
        w, h = parse(size)
    except SizeError:
        return True
    return h >= w

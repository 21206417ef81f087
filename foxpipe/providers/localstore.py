"""Images on the local disk (the embedded default, and the safety copy of every upload)."""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from foxpipe.providers.base import Capability, StoredImage

_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
THUMB_WIDTH = 360


def safe_id(value: str) -> str:
    """Ids the app made are URL-safe tokens; anything else never reaches a file name."""
    if not _SAFE_ID.fullmatch(value or ""):
        raise ValueError("not a valid id")
    return value


def make_thumbnail(data: bytes, dest: Path) -> None:
    """A JPEG at most ``THUMB_WIDTH`` wide: a smaller image is kept at its size (scaling it up
    adds nothing the browser would not do); a very large one (from about 2160 px) is reduced
    by whole factors before it is resampled (``reducing_gap``), which looks the same."""
    with Image.open(io.BytesIO(data)) as opened:
        rgb = opened.convert("RGB")
    if rgb.width > THUMB_WIDTH:
        height = max(1, int(rgb.height * THUMB_WIDTH / rgb.width))
        rgb = rgb.resize((THUMB_WIDTH, height), Image.Resampling.LANCZOS, reducing_gap=3.0)
    rgb.save(dest, "JPEG", quality=82)


class LocalStore:
    name = "local"
    capabilities: frozenset[Capability] = frozenset()  # this server's disk only

    def __init__(self, root: Path):
        self.root = Path(root) / "images"

    def path_for(self, job_id: str, slot_index: int, version: int, suffix: str = "png") -> Path:
        return self.root / safe_id(job_id) / f"scene_{slot_index + 1:02d}_v{version}.{suffix}"

    def save(
        self,
        job_id: str,
        slot_index: int,
        version: int,
        data: bytes,
        *,
        tags: list[str] | None = None,
    ) -> StoredImage:
        path = self.path_for(job_id, slot_index, version)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        thumb = self.path_for(job_id, slot_index, version, "thumb.jpg")
        make_thumbnail(data, thumb)
        return StoredImage(
            url=str(path), local_path=str(path), thumb_path=str(thumb), uploaded=False
        )

"""The "download everything" ZIP: images, story.json, prompts.csv (and videos when made)."""

from __future__ import annotations

import csv
import io
import json
import logging
import urllib.request
import zipfile
from pathlib import Path

from foxpipe.domain.models import Job, SlotStatus
from foxpipe.safety import csv_row

log = logging.getLogger(__name__)


def story_json(job: Job) -> dict[str, object]:
    return {
        "job_id": job.id,
        "story_id": job.story.id,
        "title": job.story.title,
        "answers": job.story.answers,
        "character_sheet": job.character_sheet,
        "image_model": job.image_model,
        "size": job.size,
        "scenes": [
            {
                "number": s.index + 1,
                "beat": s.scene.beat,
                "text": s.scene.text,
                "prompt": s.prompt,
                "status": s.status.value,
                "attempts": s.attempts,
                "image": (
                    {
                        "file": f"images/scene_{s.index + 1:02d}{Path(s.image.local_path).suffix}",
                        "url": s.image.url,
                        "prompt_sent": s.image.prompt,
                        "model": s.image.model,
                        "path": s.image.path,
                        "seconds": round(s.image.seconds, 2),
                        "usage": s.image.usage,
                        "uploaded": s.image.uploaded,
                    }
                    if s.image
                    else None
                ),
                "versions": len(s.versions),
            }
            for s in job.slots
        ],
    }


def prompts_csv(job: Job) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["scene", "beat", "status", "scene_text", "prompt_sent", "image_url"])
    for s in job.slots:
        img = s.image
        w.writerow(csv_row([s.index + 1, s.scene.beat, s.status.value, s.scene.text,
                            img.prompt if img else s.prompt, img.url if img else ""]))
    return buf.getvalue()


def fetch_hosted(url: str, timeout: float = 20.0) -> bytes:
    """The hosted copy of an image whose local file is gone (e.g. after a redeploy); b"" if unreachable."""
    if not url.startswith(("https://", "http://")):
        return b""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - our own image URL
            return r.read()
    except (OSError, ValueError) as e:
        log.warning("[UPLOAD] hosted image could not be fetched for the ZIP: %s", type(e).__name__)
        return b""


def build_zip(job: Job, only_approved: bool = True, extra_files: dict[str, Path] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:  # PNG/MP4 are compressed already
        for s in job.slots:
            img = s.image
            if img is None or (only_approved and s.status is not SlotStatus.APPROVED):
                continue
            p = Path(img.local_path)
            if p.exists():
                z.write(p, f"images/scene_{s.index + 1:02d}{p.suffix}")
            elif img.uploaded and (data := fetch_hosted(img.url)):
                z.writestr(f"images/scene_{s.index + 1:02d}{p.suffix or '.png'}", data)
        z.writestr("story.json", json.dumps(story_json(job), ensure_ascii=False, indent=2))
        z.writestr("prompts.csv", prompts_csv(job))
        for name, path in (extra_files or {}).items():
            if Path(path).exists():
                z.write(path, name)
    return buf.getvalue()

"""The "download everything" ZIP: images, story.json, prompts.csv (and videos when made)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
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
        "short": short_json(job),
    }


def _finite(x: object) -> object:
    """JSON has no infinity (the loudness of a silent Short): None instead."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def short_json(job: Job) -> dict[str, object]:
    """The finished Short: narration lines and their audio, voice, music, and the video's
    files, scene spans and captions (file names as in the ZIP)."""
    v = job.video
    made = v is not None and v.status == "done" and bool(v.path)
    return {
        "narrated": job.narration_on,
        "voice": job.voice,
        "style": job.narration_style,
        "length_seconds": job.short_seconds,
        "music": job.music_name or job.music_path,
        "narration": [
            {
                "number": x.index + 1,
                "text": x.text,
                "status": str(x.status),
                "duration": round(x.duration, 3),
                "audio": f"narration/scene_{x.index + 1:02d}.wav"
                if made
                and v is not None
                and any(Path(p).name == f"scene_{x.index + 1:02d}.wav" for p in v.scene_audio)
                else "",
                "timing": x.timing,
                "reworded": x.reworded,
                "transcript": x.transcript,
                "error": x.error,
            }
            for x in job.narration
        ],
        "video": (
            {
                "file": "story.mp4",
                "subtitles": "story.srt" if v.srt_path else "",
                "narration": "narration.wav" if v.narration_path else "",
                "provider": v.provider,
                "duration": round(v.duration, 3),
                "narrated": v.narrated,
                "music": v.music,
                "music_used": v.music_used,
                "music_message": v.music_message,
                **{
                    str(k): _finite(v.short[k])
                    for k in ("scenes", "captions", "loudness_lufs", "true_peak_dbtp")
                    if k in v.short
                },
            }
            if made and v is not None
            else None
        ),
    }


def prompts_csv(job: Job) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["scene", "beat", "status", "scene_text", "prompt_sent", "image_url"])
    for s in job.slots:
        img = s.image
        w.writerow(
            csv_row(
                [
                    s.index + 1,
                    s.scene.beat,
                    s.status.value,
                    s.scene.text,
                    img.prompt if img else s.prompt,
                    img.url if img else "",
                ]
            )
        )
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


def build_zip(
    job: Job, only_approved: bool = True, extra_files: dict[str, Path] | None = None
) -> bytes:
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

"""Shared pieces of the video tests: a tiny real MP4, a small approved job, fakes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import imageio_ffmpeg

from foxpipe.config import Settings
from foxpipe.domain import story as story_mod
from foxpipe.domain.models import Story
from foxpipe.engine.jobs import JobRegistry
from tests.conftest import wait_until

KLING_AK, KLING_SK = "ak-test-123456", "sk-test-0123456789abcdefghijklmnopqrstuv"
HAILUO_KEY = "hailuo-test-key-123456"


def make_clip(path: Path, size: str = "256x144", seconds: float = 1.0) -> bytes:
    """A real H.264 clip (ffmpeg's test pattern), landscape like many provider clips."""
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate=25",
            "-t",
            str(seconds),
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            str(path),
        ],
        check=True,
        timeout=60,
    )
    return path.read_bytes()


def video_settings(data_dir: Path, **kw: object) -> Settings:
    base: dict[str, object] = dict(
        data_dir=str(data_dir),
        offline_delay=0.0,
        video_poll_interval=0.01,
        video_http_timeout=10.0,  # the fakes answer at once; a loaded machine can be slow
        clip_timeout=20.0,
        clip_retries=3,
        short_prerender=False,  # as every test runs (tests/conftest.py): no background render
    )
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


def approved_job(reg: JobRegistry, scenes: int = 3) -> str:
    """A job of a few offline scenes, every image made and approved."""
    full = story_mod.offline_story({})
    s = Story(title=full.title, scenes=full.scenes[:scenes], answers=full.answers)
    job_id = reg.create_job(
        s, [f"prompt {sc.number}: {sc.text}" for sc in s.scenes], owner="tester", size="1024x1536"
    )
    wait_until(lambda: (j := reg.get(job_id)) is not None and j.done, timeout=30)
    reg.approve_all(job_id)
    assert reg.get(job_id).all_approved
    return job_id

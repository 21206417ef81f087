"""With Cloudinary set, the story video and the clips are hosted too (resource_type video), the
local copy first; a host that is down keeps the local file and says why."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from foxpipe.engine import videojobs
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers import registry as services
from foxpipe.providers.videobase import HostedClipStore
from tests.conftest import wait_until
from tests.fakes.cloudinary_server import CloudinaryServer
from tests.video_helpers import approved_job, video_settings


@pytest.fixture
def cloud():
    with CloudinaryServer() as state:
        yield state


def finished_video(reg: JobRegistry, job_id: str):
    assert videojobs.start(reg, job_id, "slideshow", seconds_per_scene=0.4, captions=False) == ""
    # The video is shown as soon as it is rendered; the upload follows and ends either way.
    return wait_until(
        lambda: (
            (j := reg.get(job_id))
            and j.video
            and (
                j.video.status == "failed"
                or j.video.status == "done"
                and (j.video.uploaded or j.video.upload_error)
            )
            and j.video
        ),
        timeout=90,
    )


def test_the_story_video_is_hosted_and_served(cloud, tmp_path):
    reg = JobRegistry(video_settings(tmp_path / "data", cloudinary_url=cloud.url()))
    try:
        job_id = approved_job(reg, 2)
        v = finished_video(reg, job_id)
        assert v.status == "done", v.error
        assert (
            v.uploaded and v.url.startswith(cloud.base) and Path(v.path).exists()
        )  # the local copy stays
        videos = [a for a in cloud.assets.values() if a.resource_type == "video"]
        assert len(videos) == 1 and videos[0].data == Path(v.path).read_bytes()
        with urllib.request.urlopen(v.url, timeout=5) as r:
            assert r.read() == Path(v.path).read_bytes()
    finally:
        reg.shutdown()
        services.close_shared()


def test_a_host_that_is_down_keeps_the_local_video_and_says_why(cloud, tmp_path):
    reg = JobRegistry(
        video_settings(tmp_path / "data", cloudinary_url=cloud.url(secret="wrong-secret-0000"))
    )
    try:
        job_id = approved_job(reg, 2)
        v = finished_video(reg, job_id)
        assert v.status == "done" and not v.uploaded and Path(v.path).exists()
        assert "Invalid Signature" in v.upload_error
    finally:
        reg.shutdown()
        services.close_shared()


def test_clips_are_hosted_as_they_are_saved(cloud, tmp_path):
    store = HostedClipStore(
        tmp_path, services.image_store(video_settings(tmp_path, cloudinary_url=cloud.url()))
    )
    try:
        got = store.save_clip("jobABCDEFGH12345678", 4, 1, b"\x00\x00\x00\x18ftypmp42clip")
        assert got.uploaded and got.url.startswith(cloud.base) and Path(got.local_path).exists()
        assert cloud.assets["foxpipe/jobABCDEFGH12345678/clip_05_a1"].resource_type == "video"
    finally:
        services.close_shared()

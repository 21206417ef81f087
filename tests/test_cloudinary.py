"""Cloudinary hosting through the real SDK, against a loopback fake of the Upload API."""

from __future__ import annotations

import hashlib
import io
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from foxpipe import export
from foxpipe.config import load_settings
from foxpipe.domain import quiz
from foxpipe.domain.models import SlotStatus
from foxpipe.domain.story import offline_story
from foxpipe.engine.generation import Pipeline
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers.cloudinary import CloudinaryStore, parse_cloudinary_url, thumbnail_url
from foxpipe.providers.offline import OfflineImages
from foxpipe.providers.registry import image_store
from tests.conftest import wait_until
from tests.fakes.cloudinary_server import CloudinaryServer

JOB = "job_ABCDEFGH12345678"
STORY = "story_ABCDEFGH1234"


def png(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 24), color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def fake():
    with CloudinaryServer(preset="foxpipe_unsigned") as state:
        yield state


def store(fake, root: Path, **kw) -> CloudinaryStore:
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("timeout", 5.0)
    return CloudinaryStore(kw.pop("url", fake.url()), root, **kw)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read()


def test_signed_upload_goes_into_the_story_folder(fake, tmp_path):
    data = png()
    got = store(fake, tmp_path).save(JOB, 2, 1, data, tags=[STORY])
    assert got.uploaded and got.error == ""
    asset = fake.assets[f"foxpipe/{STORY}/scene_03"]
    assert asset.data == data and asset.tags == [STORY]
    assert got.url.startswith(fake.base) and fetch(got.url) == data  # secure_url serves the bytes
    assert Path(got.local_path).read_bytes() == data  # the local copy is always kept
    assert Path(got.thumb_path).exists()
    call = fake.uploads_ok()[0]
    assert "signature" in call.fields and "upload_preset" not in call.fields


def test_unsigned_upload_uses_the_preset(fake, tmp_path):
    got = store(fake, tmp_path, preset="foxpipe_unsigned").save(JOB, 0, 1, png(), tags=[STORY])
    assert got.uploaded
    call = fake.calls[-1]
    assert call.fields["upload_preset"] == "foxpipe_unsigned" and "signature" not in call.fields


def test_wrong_preset_is_not_retried(fake, tmp_path):
    got = store(fake, tmp_path, preset="nope").save(JOB, 0, 1, png(), tags=[STORY])
    assert not got.uploaded and "Upload preset not found" in got.error
    assert len(fake.calls) == 1
    assert Path(got.local_path).exists() and got.url == got.local_path


def test_transient_errors_are_retried(fake, tmp_path):
    fake.fail(500, "html502", 429)
    got = store(fake, tmp_path).save(JOB, 0, 1, png(), tags=[STORY])
    assert got.uploaded
    assert [c.status for c in fake.calls] == [500, 502, 429, 200]


@pytest.mark.parametrize("status", [400, 401])
def test_client_errors_are_not_retried(fake, tmp_path, status):
    fake.fail(status)
    s = store(fake, tmp_path)
    got = s.save(JOB, 0, 1, png(), tags=[STORY])
    assert not got.uploaded and got.error
    assert len(fake.calls) == 1
    assert Path(got.local_path).exists()
    assert bool(s.problem) is (status == 401)  # refused credentials reach the sidebar


def test_wrong_secret_fails_the_signature_check(fake, tmp_path):
    s = store(fake, tmp_path, url=fake.url(secret="not-the-secret"))
    got = s.save(JOB, 0, 1, png(), tags=[STORY])
    assert not got.uploaded and "Invalid Signature" in got.error
    assert "not-the-secret" not in got.error and "not-the-secret" not in s.problem
    assert fake.assets == {}


def test_permanent_failure_keeps_the_local_copy(fake, tmp_path):
    fake.fail(503, 503, 503, 503)
    data = png()
    got = store(fake, tmp_path, retries=3).save(JOB, 4, 1, data, tags=[STORY])
    assert not got.uploaded and got.error.startswith("Gave up after 4 attempts")
    assert len(fake.calls) == 4
    assert Path(got.local_path).read_bytes() == data


def test_upload_timeout(fake, tmp_path):
    fake.hang_seconds = 1.0
    fake.fail("hang")
    got = store(fake, tmp_path, timeout=0.3, retries=0).save(JOB, 0, 1, png(), tags=[STORY])
    assert not got.uploaded and "no answer within 0.3 s" in got.error


def test_versions_never_overwrite(fake, tmp_path):
    s = store(fake, tmp_path)
    first = s.save(JOB, 0, 1, png("red"), tags=[STORY])
    second = s.save(JOB, 0, 2, png("blue"), tags=[STORY])
    assert first.url != second.url
    assert fake.assets[f"foxpipe/{STORY}/scene_01"].data == png("red")
    assert fake.assets[f"foxpipe/{STORY}/scene_01_v2"].data == png("blue")
    # Another job of the same story: the name is taken by other bytes, so a new name is used.
    other = s.save("job_ZYXWVUTS98765432", 0, 1, png("green"), tags=[STORY])
    assert other.uploaded and other.url not in (first.url, second.url)
    assert fake.assets[f"foxpipe/{STORY}/scene_01"].data == png("red")
    assert fetch(other.url) == png("green")


def test_reupload_of_the_same_bytes_is_idempotent(fake, tmp_path):
    s = store(fake, tmp_path)
    first = s.save(JOB, 0, 1, png(), tags=[STORY])
    again = s.reupload(JOB, 0, 1, first.local_path, tags=[STORY])
    assert again.uploaded and again.url == first.url
    assert len(fake.assets) == 1


def test_url_parsing_and_thumbnails():
    opts = parse_cloudinary_url("cloudinary://k:s@cloud?upload_prefix=http://127.0.0.1:9")
    assert opts == {
        "cloud_name": "cloud",
        "api_key": "k",
        "api_secret": "s",
        "upload_prefix": "http://127.0.0.1:9",
    }
    with pytest.raises(ValueError):
        parse_cloudinary_url("https://k:s@cloud")
    url = "https://res.cloudinary.com/c/image/upload/v1/foxpipe/s/scene_01.png"
    assert (
        thumbnail_url(url)
        == "https://res.cloudinary.com/c/image/upload/c_scale,w_360/v1/foxpipe/s/scene_01.png"
    )
    assert thumbnail_url("/tmp/x.png") == "/tmp/x.png"


# ---------------------------------------------------------------------- through the job registry
def registry_with(fake, clean_env, **store_kw) -> JobRegistry:
    settings = load_settings({"CLOUDINARY_URL": fake.url(), "DATA_DIR": str(clean_env)})
    assert settings.cloudinary_live

    def factory(s, limiter):
        st = CloudinaryStore(
            s.cloudinary_url, s.data_path, backoff_base=0.01, timeout=5, **store_kw
        )
        from foxpipe.providers.csvlog import CsvLog

        return Pipeline(
            images=OfflineImages(delay=0.0),
            store=st,
            log=CsvLog(s.data_path),
            limiter=limiter,
            settings=s,
        )

    return JobRegistry(settings, pipeline_factory=factory)


def make_job(reg: JobRegistry, scenes: int = 20) -> str:
    """An offline job of the story's first ``scenes`` scenes (all 20 by default): the tests
    that look at one or two scenes make a short story, as tests/video_helpers.py does."""
    story = offline_story(quiz.defaults())
    story.scenes = story.scenes[:scenes]
    return reg.create_job(story, [sc.text for sc in story.scenes], "owner-1")


def test_failed_uploads_are_kept_and_retry_upload_sends_them(fake, clean_env):
    reg = registry_with(fake, clean_env, retries=0)
    try:
        fake.fail(*[503] * 5)
        job_id = make_job(reg)
        job = wait_until(lambda: (j := reg.get(job_id)) and j.done and j)
        assert all(s.status is SlotStatus.READY for s in job.slots)
        failed = [s for s in job.slots if s.upload_error]
        assert len(failed) == 5
        for s in failed:
            assert not s.image.uploaded and Path(s.image.local_path).exists()
        uploaded = [s for s in job.slots if not s.upload_error]
        assert all(s.image.uploaded and s.image.url.startswith(fake.base) for s in uploaded)

        futures = [reg.retry_upload(job_id, s.index) for s in failed]
        assert all(f.result(10) for f in futures)
        job = reg.get(job_id)
        for s in failed:
            slot = job.slots[s.index]
            assert slot.upload_error == "" and slot.image.uploaded
            assert fetch(slot.image.url) == Path(slot.image.local_path).read_bytes()
        assert len(fake.assets) == 20
        assert reg.retry_upload(job_id, failed[0].index) is None  # nothing left to upload
    finally:
        reg.shutdown()


def test_retry_upload_that_fails_again_keeps_the_message(fake, clean_env):
    reg = registry_with(fake, clean_env, retries=0)
    try:
        fake.fail(503)
        job_id = make_job(reg, scenes=3)
        job = wait_until(lambda: (j := reg.get(job_id)) and j.done and j)
        slot = next(s for s in job.slots if s.upload_error)
        fake.fail(400)
        assert reg.retry_upload(job_id, slot.index).result(10) is False
        assert "BadRequest" in reg.get(job_id).slots[slot.index].upload_error
    finally:
        reg.shutdown()


def test_regenerated_image_gets_a_new_url_and_the_old_asset_stays(fake, clean_env):
    reg = registry_with(fake, clean_env)
    try:
        job_id = make_job(reg, scenes=3)
        job = wait_until(lambda: (j := reg.get(job_id)) and j.done and j)
        old_url = job.slots[0].image.url
        reg.reject(job_id, 0, ["Wrong colours"])
        job = wait_until(
            lambda: (j := reg.get(job_id)) and j.done and len(j.slots[0].versions) == 2 and j
        )
        new = job.slots[0].image
        assert new.uploaded and new.url != old_url and job.slots[0].versions[0].url == old_url
        story_id = job.story.id
        assert f"foxpipe/{story_id}/scene_01" in fake.assets
        assert f"foxpipe/{story_id}/scene_01_v2" in fake.assets
        assert fetch(old_url) == Path(job.slots[0].versions[0].local_path).read_bytes()
    finally:
        reg.shutdown()


def test_zip_uses_the_hosted_copy_when_the_local_file_is_gone(fake, clean_env):
    reg = registry_with(fake, clean_env)
    try:
        job_id = make_job(reg, scenes=3)
        wait_until(lambda: (j := reg.get(job_id)) and j.done)
        reg.approve_all(job_id)
        job = reg.get(job_id)
        lost = Path(job.slots[0].image.local_path)
        data = lost.read_bytes()
        lost.unlink()
        import zipfile

        z = zipfile.ZipFile(io.BytesIO(export.build_zip(job)))
        assert z.read("images/scene_01.png") == data
        assert (
            hashlib.md5(z.read("images/scene_02.png")).hexdigest()
            == hashlib.md5(Path(job.slots[1].image.local_path).read_bytes()).hexdigest()
        )
    finally:
        reg.shutdown()


def test_services_pick_cloudinary_only_when_configured(fake, clean_env):
    assert image_store(load_settings({"DATA_DIR": str(clean_env)})).name == "local"
    assert (
        image_store(load_settings({"DATA_DIR": str(clean_env), "CLOUDINARY_URL": fake.url()})).name
        == "cloudinary"
    )
    bad = load_settings(
        {"DATA_DIR": str(clean_env), "CLOUDINARY_URL": "cloudinary://justakey@cloud"}
    )
    assert image_store(bad).name == "local" and any("CLOUDINARY_URL" in p for p in bad.problems)

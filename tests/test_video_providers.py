"""Kling and Hailuo clients against loopback fakes, and the video jobs end to end."""

from __future__ import annotations

import base64
import io
import time
import zipfile
from pathlib import Path

import imageio_ffmpeg
import jwt
import pytest
from PIL import Image

from foxpipe.domain.models import ClipStatus, Job
from foxpipe.engine import videojobs
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers import slideshow
from foxpipe.providers.base import ProviderError
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.hailuo import HailuoClient
from foxpipe.providers.kling import KlingClient, make_jwt
from foxpipe.providers.videobase import ImageInput, hosted_url, image_input
from foxpipe.store import Store
from tests.conftest import wait_until
from tests.fakes.videoapi import FakeHailuo, FakeKling
from tests.video_helpers import (
    HAILUO_KEY,
    KLING_AK,
    KLING_SK,
    approved_job,
    make_clip,
    video_settings,
)


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def kling(clip_bytes):
    fake = FakeKling(clip_bytes, KLING_AK, KLING_SK).start()
    yield fake
    fake.stop()


@pytest.fixture
def hailuo(clip_bytes):
    fake = FakeHailuo(clip_bytes, HAILUO_KEY).start()
    yield fake
    fake.stop()


def kling_settings(tmp_path, fake, **kw):
    return video_settings(
        tmp_path / "data",
        kling_access_key=KLING_AK,
        kling_secret_key=KLING_SK,
        kling_base_url=fake.url,
        **kw,
    )


def hailuo_settings(tmp_path, fake, **kw):
    return video_settings(
        tmp_path / "data", hailuo_api_key=HAILUO_KEY, hailuo_base_url=fake.url, **kw
    )


def small_jpeg() -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", (90, 160), (10, 200, 30)).save(buf, "JPEG")
    return ImageInput(b64=base64.b64encode(buf.getvalue()).decode())


# ---------------------------------------------------------------- Kling
def test_kling_jwt_claims_and_signature():
    now = 1_800_000_000
    token = make_jwt(KLING_AK, KLING_SK, now=now)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256" and header["typ"] == "JWT"
    claims = jwt.decode(
        token, KLING_SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False}
    )
    assert claims == {"iss": KLING_AK, "exp": now + 1800, "nbf": now - 5}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            "another-secret-0123456789abcdefghijkl",
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_nbf": False},
        )


async def test_kling_create_poll_download(tmp_path, kling, clip_bytes):
    client = KlingClient(kling_settings(tmp_path, kling))
    try:
        img = small_jpeg()
        task = await client.create(img, "The fox leaps.", external_id="job-1")
        states = [await client.status(task) for _ in range(kling.polls_to_finish)]
        assert [s.state for s in states] == ["processing", "succeed"]
        data = await client.download(states[-1].video_url)
    finally:
        await client.aclose()
    assert data == clip_bytes
    create = kling.creates()[0]
    assert create["path"] == "/v1/videos/image2video"
    assert create["json"]["image"] == img.b64  # base64 without a data: prefix
    assert create["json"]["model_name"] == "kling-v2-5-turbo" and create["json"]["duration"] == "5"
    # Every API call carried a valid, fresh token signed with the secret key.
    for r in kling.requests:
        if r["path"].startswith("/v1/"):
            tok = r["headers"]["Authorization"].removeprefix("Bearer ")
            claims = jwt.decode(tok, KLING_SK, algorithms=["HS256"])
            assert claims["iss"] == KLING_AK and claims["exp"] - time.time() > 1700
    # The download does not get the token.
    assert all(
        "Authorization" not in r["headers"]
        for r in kling.requests
        if r["path"].startswith("/download/")
    )


@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [
        ("policy", "policy", "content policy"),
        ("rate", "retryable", "rate limit"),
        ("balance", "fatal", "insufficient balance"),
        ("auth", "fatal", "KLING_ACCESS_KEY"),
        ("server", "retryable", "server"),
    ],
)
async def test_kling_errors_are_mapped(tmp_path, kling, behaviour, kind, words):
    kling.script = [behaviour]
    client = KlingClient(kling_settings(tmp_path, kling))
    try:
        with pytest.raises(ProviderError) as info:
            await client.create(small_jpeg(), "x")
    finally:
        await client.aclose()
    assert info.value.kind == kind
    assert words.lower() in info.value.message.lower()
    if behaviour == "rate":
        assert info.value.retry_after == 0.0


async def test_kling_wrong_secret_is_a_bad_key(tmp_path, kling):
    s = video_settings(
        tmp_path / "d",
        kling_access_key=KLING_AK,
        kling_secret_key="wrong-secret-0123456789abcdefghijklmn",
        kling_base_url=kling.url,
    )
    client = KlingClient(s)
    try:
        with pytest.raises(ProviderError) as info:
            await client.create(small_jpeg(), "x")
    finally:
        await client.aclose()
    assert info.value.kind == "fatal" and "KLING_SECRET_KEY" in info.value.message


async def test_kling_timeout(tmp_path, kling):
    kling.script, kling.hang_seconds = ["hang"], 1.5
    client = KlingClient(kling_settings(tmp_path, kling, video_http_timeout=0.3))
    try:
        with pytest.raises(ProviderError) as info:
            await client.create(small_jpeg(), "x")
    finally:
        await client.aclose()
    assert info.value.kind == "retryable" and info.value.code == "timeout"


# ---------------------------------------------------------------- Hailuo
async def test_hailuo_create_poll_retrieve_download(tmp_path, hailuo, clip_bytes):
    client = HailuoClient(hailuo_settings(tmp_path, hailuo))
    try:
        img = small_jpeg()
        task = await client.create(img, "The fox leaps.")
        first = await client.status(task)
        second = await client.status(task)
        data = await client.download(second.video_url)
    finally:
        await client.aclose()
    assert (first.state, second.state) == ("processing", "succeed")
    assert data == clip_bytes
    body = hailuo.creates()[0]["json"]
    assert body["first_frame_image"] == f"data:image/jpeg;base64,{img.b64}"
    assert (
        body["model"] == "MiniMax-Hailuo-2.3"
        and body["duration"] == 6
        and body["resolution"] == "768P"
    )
    paths = [r["path"] for r in hailuo.requests]
    assert "/v1/files/retrieve" in paths
    assert all(
        r["headers"]["Authorization"] == f"Bearer {HAILUO_KEY}"
        for r in hailuo.requests
        if r["path"].startswith("/v1/")
    )


@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [
        ("policy", "policy", "sensitive content"),
        ("rate", "retryable", "rate limit"),
        ("balance", "fatal", "insufficient balance"),
        ("auth", "fatal", "HAILUO_API_KEY"),
        ("server", "retryable", "server"),
    ],
)
async def test_hailuo_errors_are_mapped_even_on_http_200(tmp_path, hailuo, behaviour, kind, words):
    hailuo.script = [behaviour]
    client = HailuoClient(hailuo_settings(tmp_path, hailuo))
    try:
        with pytest.raises(ProviderError) as info:
            await client.create(small_jpeg(), "x")
    finally:
        await client.aclose()
    assert info.value.kind == kind
    assert words.lower() in info.value.message.lower()


# ---------------------------------------------------------------- images sent
def test_image_sent_is_cover_cropped_or_a_hosted_url(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (1024, 1536), (200, 10, 10)).save(p)
    inp = image_input(str(p), str(p), False, (1080, 1920))
    with Image.open(io.BytesIO(base64.b64decode(inp.b64))) as im:
        assert im.size == (1080, 1920) and im.format == "JPEG"
    hosted = "https://res.cloudinary.com/demo/image/upload/v17/foxpipe/scene_01.png"
    inp = image_input(str(p), hosted, True, (1080, 1920))
    assert (
        inp.url
        == "https://res.cloudinary.com/demo/image/upload/c_fill,g_center,w_1080,h_1920/v17/foxpipe/scene_01.png"
    )
    assert hosted_url("https://example.com/a.png", (1, 1)) == "https://example.com/a.png"


# ---------------------------------------------------------------- jobs end to end
@pytest.fixture
def registries():
    made: list[JobRegistry] = []
    yield made
    for r in made:
        r.shutdown()


def _video(reg: JobRegistry, job_id: str):
    j = reg.get(job_id)
    return j.video if j else None


def test_slideshow_job_makes_video_srt_zip_and_log(tmp_path, registries):
    reg = JobRegistry(video_settings(tmp_path / "data"))
    registries.append(reg)
    job_id = approved_job(reg, 3)
    assert videojobs.start(reg, job_id, "slideshow", seconds_per_scene=0.5, captions=True) == ""
    v = wait_until(
        lambda: (x := _video(reg, job_id)) and x.status in ("done", "failed") and x, timeout=60
    )
    assert v.status == "done", v.error
    info = slideshow.probe(v.path)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 1080, 1920)
    frames, secs = imageio_ffmpeg.count_frames_and_secs(v.path)
    assert abs(secs - 3 * 0.5) <= 3 / slideshow.FPS  # no narration: each scene its 0.5 s
    srt = Path(v.srt_path).read_text(encoding="utf-8")
    job = reg.get(job_id)
    # No narration: each scene's text is captioned over its own 0.5 s.
    assert srt.count("-->") >= 3
    spoken = " ".join(ln for ln in srt.splitlines() if ln and "-->" not in ln and not ln.isdigit())
    for slot in job.slots:
        assert slot.scene.text.split()[0] in spoken
    names = set(zipfile.ZipFile(io.BytesIO(videojobs.everything_zip(job))).namelist())
    assert {"story.mp4", "story.srt", "story.json", "prompts.csv"} <= names
    assert {f"images/scene_{i:02d}.png" for i in (1, 2, 3)} <= names
    log = CsvLog(tmp_path / "data").read("images")
    assert v.path in set(log[log.status == "video"].image_url)
    # The stored job keeps the video; a restart reads it back.
    reg.shutdown()
    again = Store(reg.store.url)
    try:
        assert again.get_job(job_id).video.path == v.path
    finally:
        again.close()


def test_old_job_files_without_a_video_still_load(tmp_path, registries):
    reg = JobRegistry(video_settings(tmp_path / "data"))
    registries.append(reg)
    job_id = approved_job(reg, 3)
    d = reg.get(job_id).to_dict()
    d.pop("video")
    job = Job.from_dict(d)
    assert job.video is None and job.all_approved


def test_kling_clips_retry_a_rate_limit_then_join_into_the_story_video(tmp_path, kling, registries):
    reg = JobRegistry(kling_settings(tmp_path, kling))
    registries.append(reg)
    job_id = approved_job(reg, 3)
    kling.script = ["rate"]  # the first create is told to slow down; it is retried
    assert videojobs.start(reg, job_id, "kling", scenes=[0, 2], seconds_per_scene=0.5) == ""
    v = wait_until(
        lambda: (
            (x := _video(reg, job_id)) and x.status in ("done", "failed") and not x.running and x
        ),
        timeout=60,
    )
    assert v.status == "done", (v.error, [c.error for c in v.clips])
    assert [c.status for c in v.clips] == [ClipStatus.READY, ClipStatus.READY]
    assert len(kling.creates()) == 3  # two clips, one of them created twice
    assert all(kling.polls[t] >= kling.polls_to_finish for t in kling.tasks)  # polled until done
    # Scenes 1 and 3 are clips, scene 2 a still; with no narration every scene lasts its
    # 0.5 s (a clip is cut to its scene): one 1080x1920 video.
    info = slideshow.probe(v.path)
    assert (info.width, info.height, info.codec) == (1080, 1920, "h264")
    assert abs(info.duration - 3 * 0.5) <= 3 / slideshow.FPS
    # The image sent was cover-cropped to 9:16 and sent as base64.
    with Image.open(io.BytesIO(base64.b64decode(kling.creates()[-1]["json"]["image"]))) as im:
        assert im.size == (1080, 1920)
    log = CsvLog(tmp_path / "data").read("images")
    clips = log[log.status == "clip"]
    assert sorted(clips.scene) == ["1", "3"] and all(
        u.startswith(kling.url) for u in clips.image_url
    )
    assert (log.status == "video").sum() == 1
    names = set(zipfile.ZipFile(io.BytesIO(videojobs.everything_zip(reg.get(job_id)))).namelist())
    assert {"clips/scene_01.mp4", "clips/scene_03.mp4", "story.mp4", "story.srt"} <= names


def test_hailuo_policy_failure_is_retried_alone(tmp_path, hailuo, registries):
    reg = JobRegistry(hailuo_settings(tmp_path, hailuo))
    registries.append(reg)
    job_id = approved_job(reg, 3)
    hailuo.script = ["policy"]
    assert videojobs.start(reg, job_id, "hailuo", scenes=[0, 1, 2], seconds_per_scene=0.5) == ""
    v = wait_until(lambda: (x := _video(reg, job_id)) and not x.running and x, timeout=60)
    failed = [c for c in v.clips if c.status is ClipStatus.FAILED]
    assert len(failed) == 1 and "sensitive content" in failed[0].error
    assert len(hailuo.creates()) == 3  # a policy refusal is not retried automatically
    assert v.status == "done"  # the story video was made, with the still for the failed scene
    first_finished = v.finished

    assert videojobs.retry_clip(reg, job_id, failed[0].index) == ""
    # The story video is made again (into the same story.mp4) once the retried clip is in.
    v2 = wait_until(
        lambda: (x := _video(reg, job_id)) and not x.running and x.finished > first_finished and x,
        timeout=60,
    )
    assert all(c.status is ClipStatus.READY for c in v2.clips)
    assert len(hailuo.creates()) == 4  # only the failed clip was made again
    assert v2.status == "done"


def test_a_clip_that_never_finishes_times_out(tmp_path, kling, registries):
    kling.polls_to_finish = 10**9
    reg = JobRegistry(kling_settings(tmp_path, kling, clip_timeout=0.5, clip_retries=1))
    registries.append(reg)
    job_id = approved_job(reg, 2)
    videojobs.start(reg, job_id, "kling", scenes=[1], seconds_per_scene=0.3)
    v = wait_until(lambda: (x := _video(reg, job_id)) and not x.running and x, timeout=30)
    assert v.clips[0].status is ClipStatus.FAILED and "took longer" in v.clips[0].error
    assert v.status == "failed" and "No clip" in v.error


def test_cost_estimate_and_provider_choice(tmp_path, kling):
    s = kling_settings(tmp_path, kling)
    keys = [p.key for p in videojobs.providers(s)]
    assert keys == ["slideshow", "kling"]
    assert videojobs.estimate(s, "kling", 20) == pytest.approx(20 * KlingClient(s).cost_per_clip)
    assert videojobs.estimate(s, "slideshow", 20) == 0.0
    assert [p.key for p in videojobs.providers(video_settings(tmp_path))] == ["slideshow"]

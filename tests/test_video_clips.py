"""Current models, hero references, submit/poll/fetch_result and expired links, against the
loopback Kling and MiniMax fakes."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
from PIL import Image

from foxpipe.providers import hailuo as hailuo_mod
from foxpipe.providers import kling as kling_mod
from foxpipe.providers.base import ProviderError
from foxpipe.providers.hailuo import HailuoClient
from foxpipe.providers.kling import KlingClient
from foxpipe.providers.videobase import ImageInput, collect
from tests.fakes.videoapi import FakeHailuo, FakeKling
from tests.video_helpers import HAILUO_KEY, KLING_AK, KLING_SK, make_clip, video_settings


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


def jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (90, 160)) -> ImageInput:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return ImageInput(b64=base64.b64encode(buf.getvalue()).decode())


FRAME = jpeg((10, 200, 30))
HERO = jpeg((200, 30, 10), (120, 120))
POWERED = jpeg((30, 10, 200), (120, 120))


def kling_client(tmp_path, fake, **kw) -> KlingClient:
    return KlingClient(
        video_settings(
            tmp_path / "d",
            kling_access_key=KLING_AK,
            kling_secret_key=KLING_SK,
            kling_base_url=fake.url,
            **kw,
        )
    )


def hailuo_client(tmp_path, fake, **kw) -> HailuoClient:
    return HailuoClient(
        video_settings(tmp_path / "d", hailuo_api_key=HAILUO_KEY, hailuo_base_url=fake.url, **kw)
    )


async def finish(client, task_id: str, limit: int = 20):
    for _ in range(limit):
        state = await client.poll(task_id)
        if state.state != "processing":
            return state
    raise AssertionError("the task never finished")


# ---------------------------------------------------------------- Kling references
async def test_kling_omni_sends_the_frame_then_the_hero_as_subject_references(
    tmp_path, kling, clip_bytes
):
    client = kling_client(tmp_path, kling, kling_model="kling-v3-omni", kling_duration=6)
    try:
        assert client.takes_references
        task = await client.submit(FRAME, "The fox leaps.", references=[HERO], aspect_ratio="9:16")
        state = await finish(client, task)
        data, _ = await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert task.startswith("multi-image2video:")
    req = kling.creates()[0]
    assert req["path"] == "/v1/videos/multi-image2video"
    body = req["json"]
    assert [i["image"] for i in body["image_list"]] == [FRAME.b64, HERO.b64]
    assert "image" not in body and body["aspect_ratio"] == "9:16"
    assert (
        body["model_name"] == "kling-v3-omni" and body["duration"] == "6" and body["sound"] == "off"
    )
    assert data == clip_bytes
    # The task was polled on the endpoint that made it.
    assert any(
        r["path"] == f"/v1/videos/multi-image2video/{task.split(':', 1)[1]}" for r in kling.requests
    )


async def test_kling_reference_list_is_capped_at_the_models_limit(tmp_path, kling):
    client = kling_client(tmp_path, kling, kling_model="kling-video-o1")
    try:
        await client.submit(FRAME, "x", references=[HERO, POWERED, HERO, POWERED, HERO])
    finally:
        await client.aclose()
    assert len(kling.creates()[0]["json"]["image_list"]) == 4
    assert kling.creates()[0]["json"]["image_list"][0]["image"] == FRAME.b64


@pytest.mark.parametrize(
    ("model", "refs_setting"),
    [("kling-v2-5-turbo", True), ("kling-v3", True), ("kling-v3-omni", False)],
)
async def test_kling_without_reference_support_sends_only_the_frame(
    tmp_path, kling, model, refs_setting
):
    client = kling_client(tmp_path, kling, kling_model=model, video_references=refs_setting)
    try:
        task = await client.submit(FRAME, "x", references=[HERO])
        state = await finish(client, task)
    finally:
        await client.aclose()
    req = kling.creates()[0]
    assert req["path"] == "/v1/videos/image2video" and "image_list" not in req["json"]
    assert req["json"]["image"] == FRAME.b64 and HERO.b64 not in str(req["json"])
    assert state.state == "succeed" and ":" not in task


async def test_the_kling_fake_refuses_references_for_a_model_without_them(tmp_path, kling):
    """The fake checks the model like the real API: the client never gets there itself."""
    async with httpx.AsyncClient(base_url=kling.url) as http:
        resp = await http.post(
            "/v1/videos/multi-image2video",
            headers={"Authorization": f"Bearer {kling_mod.make_jwt(KLING_AK, KLING_SK)}"},
            json={"model_name": "kling-v2-5-turbo", "image_list": [{"image": "abc"}]},
        )
    assert resp.status_code == 400 and resp.json()["code"] == 1201
    assert kling.submissions == 0
    assert kling_mod.error_for(400, resp.json()).kind == "fatal"


# ---------------------------------------------------------------- MiniMax v2 (H3) and v1
async def test_h3_reference_mode_puts_frame_and_hero_in_content(tmp_path, hailuo, clip_bytes):
    client = hailuo_client(tmp_path, hailuo, hailuo_model="MiniMax-H3", hailuo_duration=6)
    try:
        task = await client.submit(
            FRAME, "The fox leaps.", references=[HERO, POWERED], aspect_ratio="9:16"
        )
        state = await finish(client, task)
        data, _ = await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert task.startswith("v2:") and data == clip_bytes
    req = hailuo.creates()[0]
    assert req["path"] == "/v2/video_generation"
    content = req["json"]["content"]
    assert content[0] == {"type": "text", "text": "The fox leaps."}
    assert [c["role"] for c in content[1:]] == ["reference_image"] * 3
    assert (
        content[1]["image_url"]["url"] == FRAME.data_uri
        and content[2]["image_url"]["url"] == HERO.data_uri
    )
    assert (
        req["json"]["ratio"] == "9:16"
        and req["json"]["duration"] == 6
        and req["json"]["resolution"] == "768P"
    )
    assert not any(r["path"].startswith("/v1/") for r in hailuo.requests)


async def test_h3_without_references_is_a_first_frame_clip(tmp_path, hailuo):
    client = hailuo_client(tmp_path, hailuo, hailuo_model="MiniMax-H3", hailuo_resolution="2K")
    try:
        task = await client.submit(FRAME, "x")
        assert (await finish(client, task)).state == "succeed"
    finally:
        await client.aclose()
    body = hailuo.creates()[0]["json"]
    assert [c.get("role") for c in body["content"]] == [None, "first_frame"]
    assert body["ratio"] == "adaptive" and body["resolution"] == "2K"


async def test_h3_caps_references_at_nine_images(tmp_path, hailuo):
    client = hailuo_client(tmp_path, hailuo, hailuo_model="MiniMax-H3")
    try:
        await client.submit(FRAME, "x", references=[HERO] * 12)
    finally:
        await client.aclose()
    roles = [c.get("role") for c in hailuo.creates()[0]["json"]["content"]]
    assert roles.count("reference_image") == 9 and hailuo.submissions == 1


async def test_hailuo_23_takes_no_references(tmp_path, hailuo):
    client = hailuo_client(tmp_path, hailuo)
    try:
        assert not client.takes_references
        await client.submit(FRAME, "x", references=[HERO])
    finally:
        await client.aclose()
    req = hailuo.creates()[0]
    assert req["path"] == "/v1/video_generation"
    assert req["json"]["first_frame_image"] == FRAME.data_uri and HERO.b64 not in str(req["json"])


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            [
                {"type": "text", "text": "x"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/jpeg;base64,AA"},
                    "role": "first_frame",
                },
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/jpeg;base64,AA"},
                    "role": "reference_image",
                },
            ],
            "exclusive",
        ),
        (
            [{"type": "text", "text": "x"}]
            + [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://h/a.png"},
                    "role": "reference_image",
                }
            ]
            * 10,
            "at most 9",
        ),
        (
            [{"type": "image_url", "image_url": {"url": "https://h/a.png"}, "role": "first_frame"}],
            "text item",
        ),
        (
            [
                {"type": "text", "text": "x"},
                {"type": "image_url", "image_url": {"url": "abc"}, "role": "first_frame"},
            ],
            "data URI",
        ),
        (
            [
                {"type": "text", "text": "x"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://h/a.png"},
                    "role": "last_frame",
                },
            ],
            "needs first_frame",
        ),
        ("not a list", "non-empty list"),
    ],
)
async def test_the_minimax_fake_refuses_malformed_v2_content(hailuo, content, words):
    async with httpx.AsyncClient(base_url=hailuo.url) as http:
        resp = await http.post(
            "/v2/video_generation",
            headers={"Authorization": f"Bearer {HAILUO_KEY}"},
            json={"model": "MiniMax-H3", "content": content, "duration": 6, "resolution": "768P"},
        )
    base = resp.json()["base_resp"]
    assert base["status_code"] == 2013 and words in base["status_msg"]
    assert hailuo.submissions == 0
    err = hailuo_mod.error_for(resp.status_code, resp.json())
    assert err.kind == "fatal" and "refused the request parameters" in err.message


# ---------------------------------------------------------------- error codes
@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [("arrears", "fatal", "arrears"), ("concurrency", "retryable", "at once")],
)
async def test_more_kling_codes_are_mapped(tmp_path, kling, behaviour, kind, words):
    kling.script = [behaviour]
    client = kling_client(tmp_path, kling, kling_model="kling-v3-omni")
    try:
        with pytest.raises(ProviderError) as info:
            await client.submit(FRAME, "x", references=[HERO])
    finally:
        await client.aclose()
    assert info.value.kind == kind and words in info.value.message
    assert kling.submissions == 0


@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [
        ("policy", "policy", "sensitive content"),
        ("output_policy", "policy", "generated clip"),
        ("balance", "fatal", "insufficient balance"),
        ("bad_key", "fatal", "HAILUO_API_KEY"),
        ("rate", "retryable", "rate limit"),
        ("server", "retryable", "server"),
    ],
)
async def test_minimax_v2_codes_are_mapped(tmp_path, hailuo, behaviour, kind, words):
    hailuo.script = [behaviour]
    client = hailuo_client(tmp_path, hailuo, hailuo_model="MiniMax-H3")
    try:
        with pytest.raises(ProviderError) as info:
            await client.submit(FRAME, "x", references=[HERO])
    finally:
        await client.aclose()
    assert info.value.kind == kind and words in info.value.message


def test_kling_unknown_task_is_a_clear_message():
    err = kling_mod.error_for(404, {"code": 1203, "message": "task not found"})
    assert err.kind == "fatal" and "no such task" in err.message


async def test_polling_a_task_the_vendor_does_not_know_is_an_error(tmp_path, kling, hailuo):
    k, h = kling_client(tmp_path, kling), hailuo_client(tmp_path, hailuo)
    try:
        with pytest.raises(ProviderError):
            await k.poll("multi-image2video:task-99")
        with pytest.raises(ProviderError):
            await h.poll("v2:task-99")
    finally:
        await k.aclose()
        await h.aclose()


# ---------------------------------------------------------------- expired links
async def test_kling_expired_link_is_fetched_again_from_the_task(tmp_path, kling, clip_bytes):
    kling.single_use_links = True
    client = kling_client(tmp_path, kling)
    try:
        task = await client.submit(FRAME, "x")
        state = await finish(client, task)
        assert await client.download(state.video_url) == clip_bytes  # the link is used up now
        with pytest.raises(ProviderError) as info:
            await client.download(state.video_url)
        assert info.value.code == "403"
        queries = sum(1 for r in kling.requests if r["path"] == f"/v1/videos/image2video/{task}")
        data, url = await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert data == clip_bytes and url != state.video_url
    assert (
        sum(1 for r in kling.requests if r["path"] == f"/v1/videos/image2video/{task}")
        == queries + 1
    )
    assert [s for _, s in kling.downloads] == [200, 403, 403, 200]
    assert kling.submissions == 1


async def test_hailuo_v1_expired_link_is_retrieved_again(tmp_path, hailuo, clip_bytes):
    hailuo.link_ttl = 0.5
    client = hailuo_client(tmp_path, hailuo)
    try:
        task = await client.submit(FRAME, "x")
        state = await finish(client, task)
        retrieves = hailuo.retrieves
        await asyncio.sleep(0.8)  # the 9-hour link, shortened
        data, url = await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert data == clip_bytes and url != state.video_url
    assert hailuo.retrieves == retrieves + 1
    assert [s for _, s in hailuo.downloads] == [403, 200]


async def test_h3_expired_link_is_fetched_by_querying_again(tmp_path, hailuo, clip_bytes):
    hailuo.single_use_links = True
    client = hailuo_client(tmp_path, hailuo, hailuo_model="MiniMax-H3")
    try:
        task = await client.submit(FRAME, "x")
        state = await finish(client, task)
        await client.download(state.video_url)
        data, _ = await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert data == clip_bytes and [s for _, s in hailuo.downloads] == [200, 403, 200]


async def test_a_link_that_stays_broken_is_an_error_not_a_loop(tmp_path, kling):
    kling.link_ttl = -1.0  # every link is born expired
    client = kling_client(tmp_path, kling)
    try:
        task = await client.submit(FRAME, "x")
        state = await finish(client, task)
        with pytest.raises(ProviderError) as info:
            await collect(client, task, state.video_url)
    finally:
        await client.aclose()
    assert info.value.code == "403" and len(kling.downloads) == 2  # one refetch, then give up

"""The fake OpenAI server, driven through the real SDK: wire shapes, scripting, rate limit."""

from __future__ import annotations

import base64
import io

import openai
import pytest
from openai import AsyncOpenAI
from PIL import Image
from pydantic import ValidationError

from foxpipe.domain.story import StoryDraft
from tests.fakes.openai_server import Action, FakeOpenAI, openai_duration


def client(fake: FakeOpenAI, **kw) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0, timeout=5, **kw)


async def test_generate_returns_real_png_and_usage(fake_openai):
    r = await client(fake_openai).images.generate(
        model="gpt-image-2", prompt="a fox", size="1024x1536"
    )
    img = Image.open(io.BytesIO(base64.b64decode(r.data[0].b64_json)))
    assert img.format == "PNG" and img.size == (21, 32)
    assert r.usage is not None and r.usage.total_tokens > 0
    rec = fake_openai.of("generations")[0]
    assert (rec.model, rec.prompt, rec.size, rec.status) == (
        "gpt-image-2",
        "a fox",
        "1024x1536",
        200,
    )


async def test_edit_counts_reference_images(fake_openai):
    ref = base64.b64decode(
        (await client(fake_openai).images.generate(model="m", prompt="x")).data[0].b64_json
    )
    await client(fake_openai).images.edit(
        model="gpt-image-2",
        prompt="the hero",
        image=[("a.png", ref, "image/png"), ("b.png", ref, "image/png")],
        size="1536x1024",
    )
    rec = fake_openai.of("edits")[0]
    assert rec.n_images == 2 and rec.prompt == "the hero" and rec.size == "1536x1024"


async def test_structured_story_and_wrong_count(fake_openai):
    c = client(fake_openai)
    msgs = [{"role": "user", "content": "write"}]
    ok = await c.chat.completions.parse(
        model="gpt-5.4-mini", messages=msgs, response_format=StoryDraft
    )
    assert len(ok.choices[0].message.parsed.scenes) == 20
    fake_openai.script("chat", Action.scenes(19))
    with pytest.raises(ValidationError):
        await c.chat.completions.parse(
            model="gpt-5.4-mini", messages=msgs, response_format=StoryDraft
        )
    fake_openai.script("chat", Action.refusal("no"))
    r = await c.chat.completions.parse(
        model="gpt-5.4-mini", messages=msgs, response_format=StoryDraft
    )
    assert r.choices[0].message.refusal == "no" and r.choices[0].message.parsed is None
    fake_openai.script("chat", Action.truncated())
    with pytest.raises(openai.LengthFinishReasonError):
        await c.chat.completions.parse(
            model="gpt-5.4-mini", messages=msgs, response_format=StoryDraft
        )


async def test_scripted_errors_map_to_sdk_exceptions(fake_openai):
    c = client(fake_openai)
    fake_openai.script(
        "images",
        Action.rate_limited(retry_after=2),
        Action.quota(),
        Action.unauthorized(),
        Action.forbidden(),
        Action.server_error(503),
        Action.moderation(),
    )
    with pytest.raises(openai.RateLimitError) as e:
        await c.images.generate(model="m", prompt="p")
    assert e.value.code == "rate_limit_exceeded"
    assert (
        e.value.response.headers["retry-after"] == "2"
        and e.value.response.headers["retry-after-ms"] == "2000"
    )
    with pytest.raises(openai.RateLimitError) as e:
        await c.images.generate(model="m", prompt="p")
    assert e.value.code == "insufficient_quota"
    with pytest.raises(openai.AuthenticationError):
        await c.images.generate(model="m", prompt="p")
    with pytest.raises(openai.PermissionDeniedError):
        await c.images.generate(model="m", prompt="p")
    with pytest.raises(openai.InternalServerError):
        await c.images.generate(model="m", prompt="p")
    with pytest.raises(openai.BadRequestError) as e:
        await c.images.generate(model="m", prompt="p")
    assert e.value.code == "moderation_blocked"
    assert fake_openai.statuses("images") == [429, 429, 401, 403, 503, 400]


async def test_blocked_words_and_hang(fake_openai):
    fake_openai.blocked_words = {"claws"}
    c = client(fake_openai)
    with pytest.raises(openai.BadRequestError):
        await c.images.generate(model="m", prompt="Sharp CLAWS")
    fake_openai.script("generations", Action.hang())
    with pytest.raises(openai.APITimeoutError):
        await c.with_options(timeout=0.3).images.generate(model="m", prompt="fine")
    assert fake_openai.of("images")[-1].status == 0


async def test_api_key_checked(fake_openai):
    fake_openai.api_key = "sk-right"
    with pytest.raises(openai.AuthenticationError):
        await client(fake_openai).images.generate(model="m", prompt="p")


async def test_sliding_window_rate_limit_counts_429s():
    with FakeOpenAI(rate_limit=3, time_scale=6) as fake:  # 3 per 10 s
        c = client(fake)
        for _ in range(3):
            r = await c.images.with_raw_response.generate(model="m", prompt="p")
        assert r.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as e:
            await c.images.generate(model="m", prompt="p")
        assert 9000 < float(e.value.response.headers["retry-after-ms"]) <= 10000
        assert fake.rate_limited == 1 and fake.admitted == 3
        assert [r.reason for r in fake.of()] == ["ok", "ok", "ok", "rate_limit"]


def test_duration_format():
    assert [openai_duration(s) for s in (0.02, 1.5, 90)] == ["20ms", "1.5s", "1m30s"]
    # A sliding window's reset computed as t0 + 60 - now can come out a float hair over 60 s.
    assert [openai_duration(s) for s in (60.00000000000006, 59.9996, 0.9996, 123.4567)] == [
        "1m0s",
        "1m0s",
        "1s",
        "2m3.457s",
    ]


async def test_vision_request_is_recorded_and_verdict_scripted(fake_openai):
    from pydantic import BaseModel

    from tests.fakes.openai_server import data_url_bytes, png_bytes

    class Answer(BaseModel):
        on_model: bool
        score: int
        defects: list[str]
        note: str

    a, b = png_bytes(4, 4, (200, 10, 10)), png_bytes(4, 4, (10, 200, 10))
    parts = [
        {"type": "text", "text": "reference"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(a).decode()},
        },
        {"type": "text", "text": "scene"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(b).decode()},
        },
    ]
    fake_openai.script("chat", Action.verdict(False, 12, ["species"], "A bear."))
    r = await client(fake_openai).chat.completions.parse(
        model="gpt-5.4-mini", messages=[{"role": "user", "content": parts}], response_format=Answer
    )
    assert r.choices[0].message.parsed == Answer(
        on_model=False, score=12, defects=["species"], note="A bear."
    )
    rec = fake_openai.of("chat")[0]
    assert rec.n_images == 2 and [data_url_bytes(u) for u in rec.image_urls] == [a, b]
    assert rec.text == "reference\nscene" and rec.schema["name"] == "Answer"
    # Without a script, a continuity check (on_model in the schema) answers the same hero.
    r = await client(fake_openai).chat.completions.parse(
        model="gpt-5.4-mini", messages=[{"role": "user", "content": parts}], response_format=Answer
    )
    assert r.choices[0].message.parsed == Answer(
        on_model=True, score=95, defects=[], note="Same hero."
    )

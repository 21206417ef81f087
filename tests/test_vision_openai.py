"""The OpenAI continuity check through the real SDK against the loopback fake server."""

from __future__ import annotations

import hashlib
import time

import pytest

from foxpipe.config import load_settings
from foxpipe.providers import registry
from foxpipe.providers.offline import HeroLook, render_card, render_reference
from foxpipe.providers.vision_offline import OfflineVision
from foxpipe.providers.vision_openai import (
    OpenAIVision,
    cost_per_check,
    cost_per_story,
    data_url,
)
from tests.fakes.openai_server import Action, FakeOpenAI, data_url_bytes

REF = render_reference("512x768")
IMG = render_card(4, "Training montage", "Rusty trains.", "512x768", False, 1)
SHEET = "HERO: Rusty, a young red fox; bright amber eyes, a white-tipped tail."


def vision(fake: FakeOpenAI, **env: str) -> OpenAIVision:
    base = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        "RETRY_BASE_SECONDS": "0.01",
        "VISION_TIMEOUT": "5",
    }
    return OpenAIVision(load_settings(env={**base, **env}))


async def test_request_carries_both_images_and_the_schema(fake_openai):
    fake_openai.script("chat", Action.verdict(True, 93, [], "Same fox."))
    v = await vision(fake_openai).check(REF, SHEET, IMG, 4)
    assert (
        v.checked
        and v.on_model
        and v.score == 93
        and v.note == "Same fox."
        and v.checker == "gpt-5.4-mini"
    )
    rec = fake_openai.of("chat")[0]
    assert rec.model == "gpt-5.4-mini" and rec.n_images == 2
    # The reference first, then the image, each as a PNG data URL of the picture sent.
    assert [u.split(",")[0] for u in rec.image_urls] == ["data:image/png;base64"] * 2
    assert rec.image_digests == [
        hashlib.sha256(data_url_bytes(data_url(x))).hexdigest() for x in (REF, IMG)
    ]
    assert rec.image_digests[0] != rec.image_digests[1]
    assert (
        "<reference_text>" in rec.text
        and "white-tipped tail" in rec.text
        and "ordinary form" in rec.text
    )
    schema = rec.schema
    assert schema["name"] == "VisionVerdict" and schema["strict"] is True
    props = schema["schema"]["properties"]
    assert set(props) == {"on_model", "score", "defects", "note"}
    assert props["score"]["minimum"] == 0 and props["score"]["maximum"] == 100
    assert set(props["defects"]["items"]["enum"]) == {
        "species",
        "fur or skin colour",
        "markings",
        "eyes",
        "outfit or accessory",
        "size and proportions",
        "wrong form",
    }
    assert rec.fields["max_completion_tokens"] > 0
    assert rec.messages[0]["role"] == "system" and "continuity" in rec.messages[0]["content"]


async def test_scripted_off_model_verdict_parses(fake_openai):
    fake_openai.script(
        "chat",
        Action.verdict(
            False, 35, ["fur or skin colour", "outfit or accessory"], "Grey, with a hat."
        ),
    )
    v = await vision(fake_openai).check(REF, SHEET, IMG, 15)
    assert (v.on_model, v.score, v.defects, v.note) == (
        False,
        35,
        ["fur or skin colour", "outfit or accessory"],
        "Grey, with a hat.",
    )
    assert v.cost_usd > 0
    assert "powered-up form" in fake_openai.of("chat")[0].text


async def test_text_only_reference_sends_one_image(fake_openai):
    fake_openai.script("chat", Action.verdict(True, 88))
    v = await vision(fake_openai).check(None, SHEET, IMG, 2)
    assert v.checked and fake_openai.of("chat")[0].n_images == 1


@pytest.mark.parametrize(
    ("action", "words"),
    [
        (Action.refusal("I can't compare these."), "refused"),
        (Action.content("{not json"), "no usable answer"),
        (
            Action.content('{"on_model": true, "score": 500, "defects": [], "note": "x"}'),
            "no usable answer",
        ),
        (
            Action.content('{"on_model": true, "score": 50, "defects": ["tail"], "note": "x"}'),
            "no usable answer",
        ),
        (Action.truncated(), "cut off"),
        (Action.unauthorized(), "key was refused"),
    ],
)
async def test_failed_checks_are_not_checked(fake_openai, action, words):
    fake_openai.script("chat", action)
    v = await vision(fake_openai).check(REF, SHEET, IMG, 3)
    assert v.status == "not_checked" and words in v.error and v.defects == []
    assert len(fake_openai.of("chat")) == 1  # answers that arrived are not asked again


async def test_timeout_is_not_checked(fake_openai):
    fake_openai.script("chat", Action.hang(3))
    v = await vision(fake_openai, VISION_TIMEOUT="0.3", VISION_RETRIES="0").check(
        REF, SHEET, IMG, 3
    )
    assert v.status == "not_checked" and "timed out" in v.error


async def test_server_errors_are_retried_then_given_up(fake_openai):
    fake_openai.script("chat", Action.server_error(503), Action.rate_limited(retry_after=0.05))
    v = await vision(fake_openai, VISION_RETRIES="2").check(REF, SHEET, IMG, 3)
    assert v.checked and len(fake_openai.of("chat")) == 3
    fake_openai.reset()
    fake_openai.script("chat", *[Action.server_error(500)] * 3)
    v = await vision(fake_openai, VISION_RETRIES="1").check(REF, SHEET, IMG, 3)
    assert (
        v.status == "not_checked" and "server error" in v.error and len(fake_openai.of("chat")) == 2
    )


async def test_unreadable_image_sends_nothing(fake_openai):
    v = await vision(fake_openai).check(REF, SHEET, b"junk", 3)
    assert v.status == "not_checked" and not fake_openai.of("chat")
    v = await vision(fake_openai).check(None, "", IMG, 3)
    assert v.status == "not_checked" and "no reference" in v.error


async def test_own_limiter_paces_checks():
    with FakeOpenAI() as fake:
        checker = vision(fake, VISION_REQUESTS_PER_MINUTE="2")
        checker.limiter().sched.base_period = checker.limiter().sched.period = (
            1.0  # 2 per second for the test
        )
        for _ in range(3):
            fake.script("chat", Action.verdict(True, 90))
        t0 = time.monotonic()
        for _ in range(3):
            assert (await checker.check(REF, SHEET, IMG, 1)).checked
        # The third check could not start before the first left the window (a lower bound:
        # a slow machine only makes it longer).
        assert time.monotonic() - t0 >= 1.0
        assert len(fake.of("chat")) == 3


def test_cost_estimates():
    mini, nano = cost_per_check("gpt-5.4-mini"), cost_per_check("gpt-5.4-nano")
    assert 0 < nano < mini < 0.01  # well under a cent per check
    assert cost_per_check("gpt-5.4-mini", with_reference_image=False) < mini
    assert cost_per_story("gpt-5.4-mini") == pytest.approx(20 * mini, abs=1e-4)
    assert cost_per_story("gpt-5.4-mini", fix_rate=0.5) == pytest.approx(30 * mini, abs=1e-4)
    assert cost_per_check("some-future-model") == mini  # unknown models: the default's prices


def test_chooser():
    assert isinstance(registry.vision_check(load_settings(env={})), OfflineVision)
    checker = registry.vision_check(
        load_settings(env={"OPENAI_API_KEY": "sk-test", "OPENAI_VISION_MODEL": "gpt-5.4-nano"})
    )
    assert isinstance(checker, OpenAIVision) and checker.name == "gpt-5.4-nano" and not checker.free


async def test_offline_and_openai_give_the_same_shape(fake_openai):
    fake_openai.script("chat", Action.verdict(False, 20, ["species"], "A bear."))
    bear = render_card(4, "Training montage", "x", "512x768", False, 1, HeroLook("bear"))
    a = await vision(fake_openai).check(REF, SHEET, bear, 4)
    b = await OfflineVision().check(REF, SHEET, bear, 4)
    assert a.to_dict().keys() == b.to_dict().keys()
    assert "species" in a.defects and "species" in b.defects and not a.on_model and not b.on_model

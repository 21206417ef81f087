"""OpenAIImages through the real SDK against the fake server: error mapping, the pipeline's
retries and safer prompts, references, feedback, abort on no credit."""

from __future__ import annotations

import asyncio
import hashlib
import io
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from foxpipe.config import load_settings
from foxpipe.domain import prompts, quiz
from foxpipe.domain.models import SlotStatus
from foxpipe.domain.story import offline_story
from foxpipe.engine.generation import Pipeline
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers.base import ProviderError
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import LocalStore
from foxpipe.providers.openai import OpenAIImages, parse_duration
from tests.conftest import wait_until
from tests.fakes.openai_server import Action, png_bytes


def make_settings(fake, **extra):
    env = {
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": fake.base_url,
        # Long enough for an answer from the loopback fake on a loaded machine; the tests
        # whose subject is a timeout shorten it (``hanging``).
        "IMAGE_TIMEOUT": "10",
        "IMAGES_PER_MINUTE": "6000",
        "IMAGE_RETRIES": "3",
        **extra,
    }
    return load_settings({}, env)


@pytest.fixture
def settings(fake_openai, clean_env):
    return make_settings(fake_openai, DATA_DIR=str(clean_env))


async def test_generate_and_edit_paths(settings, fake_openai):
    model = OpenAIImages(settings)
    r = await model.generate("a fox", "1024x1536")
    assert r.path == "generate" and Image.open(io.BytesIO(r.data)).format == "PNG"
    assert (
        r.usage["total_tokens"] > 0 and r.usage["size"] == "1024x1536" and r.model == "gpt-image-2"
    )
    ref = png_bytes(4, 4, (1, 2, 3))
    r = await model.generate("a fox", "1536x1024", references=[ref])
    assert r.path == "edit"
    gen, edit = fake_openai.of("images")
    assert (gen.kind, gen.quality, gen.moderation) == ("generations", "medium", "auto")
    assert edit.kind == "edits" and edit.image_digests == [hashlib.sha256(ref).hexdigest()]


async def test_references_off_uses_generate(fake_openai, clean_env):
    s = make_settings(fake_openai, OPENAI_USE_REFERENCE="false")
    model = OpenAIImages(s)
    assert not model.supports_reference
    r = await model.generate("a fox", "1024x1536", references=[png_bytes(2, 2, (0, 0, 0))])
    assert r.path == "generate" and fake_openai.of("images")[0].kind == "generations"


async def test_rate_hint_from_headers(fake_openai, settings):
    fake_openai.rate_limit = 5
    r = await OpenAIImages(settings).generate("a fox", "1024x1024")
    assert r.rate_hint["remaining"] == 4 and 59 < r.rate_hint["reset"] <= 60


def test_parse_duration():
    assert (
        parse_duration("20ms") == 0.02
        and parse_duration("1.5s") == 1.5
        and parse_duration("6m0s") == 360
    )
    assert parse_duration("") is None and parse_duration("soon") is None
    assert parse_duration("1m30s") == 90 and parse_duration("1h2m") == 3720
    # A number in exponent form is read whole, and text that is not all durations is no hint.
    assert parse_duration("1m5.68e-14s") == pytest.approx(60.0)
    assert parse_duration("1m 5x") is None and parse_duration("5s later") is None


def hanging(settings, action: Action, seconds: float = 1.5):  # noqa: ANN001
    """For a request the fake never answers, a client timeout the test waits out: 1.5 s where
    a later attempt must be answered in time, less where the only request hangs (no answer
    can be cut off by it, however slow the machine)."""
    return replace(settings, image_timeout=seconds) if action.hang_for is not None else settings


@pytest.mark.parametrize(
    "action,kind,code,retry_after",
    [
        (Action.rate_limited(retry_after=7), "retryable", "rate_limit_exceeded", 7.0),
        (
            Action.rate_limited(retry_after=None, retry_after_ms=1500),
            "retryable",
            "rate_limit_exceeded",
            1.5,
        ),
        (Action.quota(), "fatal", "insufficient_quota", None),
        (Action.unauthorized(), "fatal", "invalid_api_key", None),
        (Action.forbidden(), "fatal", "no_model_access", None),
        (Action.not_found(), "fatal", "no_model_access", None),
        (Action.moderation(), "policy", "moderation_blocked", None),
        (Action.content_policy(), "policy", "content_policy_violation", None),
        (Action.bad_request(), "fatal", "invalid_value", None),
        (Action.server_error(500), "retryable", "500", None),
        (Action.server_error(503), "retryable", "503", None),
        (Action.hang(5), "retryable", "timeout", None),
    ],
)
async def test_errors_are_mapped(settings, fake_openai, action, kind, code, retry_after):
    settings = hanging(settings, action, 1.0)  # one request, never answered
    fake_openai.script("generations", action)
    with pytest.raises(ProviderError) as e:
        await OpenAIImages(settings).generate("a fox", "1024x1536")
    assert (e.value.kind, e.value.code, e.value.retry_after) == (kind, code, retry_after)
    # A request the client gave up on may still be on its way into the fake's records.
    await asyncio.to_thread(wait_until, lambda: len(fake_openai.of("images")) >= 1, 30)
    assert len(fake_openai.of("images")) == 1  # the SDK did not retry on its own
    messages = {
        "insufficient_quota": "The OpenAI account is out of credit.",
        "invalid_api_key": "The OpenAI API key was refused.",
    }
    if code in messages:
        assert e.value.message == messages[code]


# ---------------------------------------------------------------------------- through the registry


def registry(settings) -> JobRegistry:
    def factory(s, limiter):
        return Pipeline(
            images=OpenAIImages(s),
            store=LocalStore(s.data_path),
            log=CsvLog(s.data_path),
            limiter=limiter,
            settings=s,
            backoff_base=0.01,
            backoff_cap=0.05,
        )

    return JobRegistry(settings, pipeline_factory=factory)


def story(**answers):
    a = quiz.defaults()
    a["hero_name"] = "Rusty"
    a.update(answers)
    return offline_story(quiz.validate(a).answers)


def start(reg, prompt_list=None, count=20, references=None, start=True):
    st = story()
    st.scenes = st.scenes[:count]
    plist = prompt_list or [f"Scene {sc.number}. {sc.text}" for sc in st.scenes]
    return reg.create_job(
        st,
        plist,
        "owner",
        character_sheet="HERO: Rusty, a red fox.",
        size="1024x1536",
        references=references,
        start=start,
    )


def finished(reg, job_id):
    return wait_until(lambda: (j := reg.get(job_id)) is not None and j.done and j)


def test_policy_block_escalates_to_sanitized_then_shortened_prompt(settings, fake_openai):
    fake_openai.blocked_words = {"thunderous"}
    reg = registry(settings)
    try:
        st = story()
        prompt = f"Scene 1. {st.scenes[0].text} A thunderous crash of rocks."
        job_id = start(reg, [prompt], count=1)
        job = finished(reg, job_id)
    finally:
        reg.shutdown()
    sent = fake_openai.prompts()
    assert fake_openai.statuses("images") == [400, 400, 200]
    assert sent[0] == prompts.sanitize_prompt(prompt, 0)
    assert sent[1] == prompts.sanitize_prompt(
        prompt, 1, job.character_sheet, job.slots[0].scene.text
    )
    assert sent[2] == prompts.sanitize_prompt(
        prompt, 2, job.character_sheet, job.slots[0].scene.text
    )
    slot = job.slots[0]
    assert slot.status is SlotStatus.READY and slot.policy_level == 2 and slot.attempts == 3
    assert (
        slot.image.prompt == sent[2]
        and slot.image.path == "generate"
        and slot.image.usage["total_tokens"]
    )
    assert Path(slot.image.local_path).read_bytes()[:4] == b"\x89PNG"
    row = pd.read_csv(settings.data_path / "log_images.csv").iloc[-1]
    assert (row["status"], row["attempts"], row["prompt"], row["path"]) == (
        "ready",
        3,
        sent[2],
        "generate",
    )


def test_policy_block_at_every_level_fails_with_reason(settings, fake_openai):
    fake_openai.blocked_words = {"rusty"}  # in the character sheet too: even level 2 is blocked
    reg = registry(settings)
    try:
        job = finished(reg, start(reg, count=1))
    finally:
        reg.shutdown()
    slot = job.slots[0]
    assert slot.status is SlotStatus.FAILED
    assert "content policy even with the safest prompt" in slot.error
    assert len(fake_openai.of("images")) == 3


def test_out_of_credit_stops_the_job(settings, fake_openai):
    fake_openai.script("images", *[Action.quota()] * 40)
    s = make_settings(fake_openai, DATA_DIR=str(settings.data_path), MAX_CONCURRENT_IMAGES="1")
    reg = registry(s)
    try:
        job = finished(reg, start(reg))
    finally:
        reg.shutdown()
    assert job.notice == "The OpenAI account is out of credit."
    assert all(sl.status is SlotStatus.FAILED for sl in job.slots)
    assert len(fake_openai.of("images")) < 5


@pytest.mark.parametrize(
    "action",
    [
        Action.rate_limited(retry_after_ms=50),
        Action.server_error(503),
        Action.hang(5),
        Action.server_error(500),
    ],
)
def test_transient_failure_is_retried(settings, fake_openai, action):
    settings = hanging(settings, action)
    fake_openai.script("images", action)
    reg = registry(settings)
    try:
        job = finished(reg, start(reg, count=1))
        pauses = reg.limiter.pauses
    finally:
        reg.shutdown()
    assert job.slots[0].status is SlotStatus.READY and job.slots[0].attempts == 2
    assert len(fake_openai.of("images")) == 2
    if action.status == 429:
        assert pauses == 1


def test_rejection_feedback_reaches_the_prompt(settings, fake_openai):
    reg = registry(settings)
    try:
        job_id = start(reg, count=1)
        finished(reg, job_id)
        reg.reject(job_id, 0, ["Wrong action"], note="make it sunny")
        job = wait_until(lambda: (j := reg.get(job_id)) and len(j.slots[0].versions) == 2 and j)
    finally:
        reg.shutdown()
    last = fake_openai.prompts()[-1]
    assert prompts.REJECT_REASONS["Wrong action"] in last and "make it sunny" in last
    assert job.slots[0].image.prompt == last


def test_scenes_use_the_reference_of_their_form(settings, fake_openai, tmp_path):
    base, powered = png_bytes(4, 4, (200, 0, 0)), png_bytes(4, 4, (0, 0, 200))
    (tmp_path / "b.png").write_bytes(base)
    (tmp_path / "p.png").write_bytes(powered)
    reg = registry(settings)
    try:
        job = finished(
            reg,
            start(
                reg,
                references={"base": str(tmp_path / "b.png"), "powered": str(tmp_path / "p.png")},
            ),
        )
    finally:
        reg.shutdown()
    assert all(s.status is SlotStatus.READY and s.image.path == "edit" for s in job.slots)
    by_scene = {}
    for r in fake_openai.of("edits"):
        if r.status != 200:  # an attempt the client gave up on (its body may be cut short)
            continue
        n = int(r.prompt.split("Scene ", 1)[1].split(".", 1)[0])
        by_scene[n] = r.image_digests
    assert by_scene[10] == [hashlib.sha256(base).hexdigest()]
    assert by_scene[11] == [hashlib.sha256(powered).hexdigest()]
    assert len(by_scene) == 20

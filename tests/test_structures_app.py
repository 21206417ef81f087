"""A story in a structure without a second form, on OpenAI through the real SDK (AppTest):
the hero page draws one reference image, and every scene is drawn from it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.domain.models import SlotStatus
from tests.apptest import click_approve, click_write
from tests.conftest import APP


@pytest.fixture
def live(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    monkeypatch.setenv("CHAT_TIMEOUT", "10")  # the fake answers at once; a loaded machine is slow
    monkeypatch.setenv("IMAGE_TIMEOUT", "10")
    return fake_openai


def test_a_rescue_story_draws_one_hero_reference_and_uses_it_for_every_scene(live):
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.selectbox(key="q_structure").select("Rescue mission").run()
    click_write(at)
    assert not at.exception, at.exception
    story = at.session_state.story
    assert story.answers["structure"] == "Rescue mission" and story.scenes[-1].beat == "Homecoming"
    system = live.of("chat")[0].messages[0]["content"]
    assert "20. Homecoming:" in system

    click_approve(at)
    assert not at.exception, at.exception
    assert at.title[0].value == "Hero reference sheet"
    reg = app.current()
    job = reg.get(at.session_state.job_id)
    assert set(job.references) == {"base"}
    assert [r.kind for r in live.of("images")] == ["generations"]  # no second form to pay for
    assert not any(b.key and b.key.endswith("_powered") for b in at.button)
    assert "Powered-up" not in " ".join(m.value for m in at.markdown)
    at.button(key="hero_approve").click().run()
    assert not at.exception, at.exception
    for _ in range(300):
        at.run()
        job = reg.get(job.id)
        if job.done:
            break
    assert all(s.status is SlotStatus.READY for s in job.slots)
    base = hashlib.sha256(Path(job.references["base"]).read_bytes()).hexdigest()
    scenes = [r for r in live.of("edits") if r.status == 200]
    assert len({r.prompt for r in scenes}) == 20
    assert all(r.image_digests == [base] for r in scenes)
    assert not any("POWERED-UP" in r.prompt for r in scenes)

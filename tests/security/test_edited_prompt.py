"""The user-stuck flow: after "Edit prompt and retry" the prompt sent is exactly the prompt the
reviewer saw and edited (the review's fix shown in it, removable), at every attempt and policy
level, against the fake OpenAI server through the real app."""

from __future__ import annotations

import httpx  # noqa: F401  (imported up front: the SDK's lazy first import of httpx from many threads can race)
import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.domain import prompts
from foxpipe.domain.models import SlotStatus
from tests.apptest import click_approve, click_write, settle_job
from tests.conftest import APP
from tests.fakes.openai_server import Action

BLOCKED = "zzblockedword"


@pytest.fixture
def live(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-edit-test-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "false")
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    monkeypatch.setenv("RETRY_BASE_SECONDS", "0.01")
    fake_openai.blocked_words = {BLOCKED}
    return fake_openai


def stuck_scene(live) -> tuple[AppTest, object, str]:
    """Scene 5 rejected with a note the content policy blocks: every level fails."""
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    click_approve(at)
    reg, job_id = app.current(), at.session_state.job_id
    settle_job(at, job_id)
    reg.reject(job_id, 4, ["Wrong action"], f"make it {BLOCKED}")
    settle_job(at, job_id)
    slot = reg.get(job_id).slots[4]
    assert slot.status is SlotStatus.FAILED and slot.policy_level == 2
    return at, reg, job_id


def test_edited_prompt_is_exactly_what_is_sent_at_every_attempt(live):
    at, reg, job_id = stuck_scene(live)
    box = at.text_area(key=f"prompt_{job_id}_4")
    # The reviewer sees the whole prompt, the hidden fix included...
    assert "FIX FROM REVIEW:" in box.value and BLOCKED in box.value
    # ...and removes it.
    edited = box.value.split("\nFIX FROM REVIEW:")[0] + "\nBright morning light."
    live.reset()
    live.script(
        "images", Action.server_error(), Action.server_error()
    )  # two attempts fail, the third works
    box.input(edited).run()
    at.button(key=f"retry_prompt_{job_id}_4").click().run()
    settle_job(at, job_id)
    slot = reg.get(job_id).slots[4]
    sent = live.prompts("images")
    assert len(sent) == 3 and sent == [edited] * 3
    assert slot.status is SlotStatus.READY and slot.image.prompt == edited


def test_edited_prompt_still_blocked_is_not_reworded(live):
    at, reg, job_id = stuck_scene(live)
    box = at.text_area(key=f"prompt_{job_id}_4")
    edited = box.value  # kept as shown, the blocked fix included
    live.reset()
    box.input(edited + " ").run()
    at.button(key=f"retry_prompt_{job_id}_4").click().run()
    settle_job(at, job_id)
    slot = reg.get(job_id).slots[4]
    assert live.prompts("images") == [edited]  # one request, exactly as written, no rewording
    assert (
        slot.status is SlotStatus.FAILED
        and "Blocked by the content policy as written" in slot.error
    )


@pytest.mark.parametrize("level", range(prompts.POLICY_LEVELS))
def test_every_policy_level_starts_from_the_edited_text(level):
    edited = "The hero fights a storm, unedited words kept."
    assert prompts.sanitize_prompt(edited, level, "SHEET", "scene text", edited=True) == edited

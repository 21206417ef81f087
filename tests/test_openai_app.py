"""The whole app on OpenAI through the real SDK (AppTest), against the fake server."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.domain.models import SlotStatus
from foxpipe.providers.csvlog import CsvLog
from tests.apptest import click_approve, click_write, rerun_until, settle
from tests.conftest import APP, wait_until
from tests.fakes.openai_server import Action


@pytest.fixture
def live(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    # The fake answers in milliseconds; a loaded machine may take seconds. Only a test whose
    # subject is a timeout shortens it (a short one would retry ordinary answers).
    monkeypatch.setenv("CHAT_TIMEOUT", "10")
    monkeypatch.setenv("IMAGE_TIMEOUT", "10")
    return fake_openai


def texts(at: AppTest) -> str:
    parts = [
        e.value
        for e in (
            *at.markdown,
            *at.caption,
            *at.title,
            *at.warning,
            *at.error,
            *at.info,
            *at.success,
            *at.sidebar.markdown,
        )
    ]
    return "\n".join(str(p) for p in parts)


def write_story(at: AppTest) -> AppTest:
    at.run()
    click_write(at)
    return at


def job_of(at: AppTest):
    reg = app.current()
    return reg, reg.get(at.session_state.job_id)


def run_until(at: AppTest, done, timeout: float = 60.0) -> AppTest:
    """Rerun the page until ``done()`` (the job's state) holds, and once more after it did:
    between reruns the test waits on that state instead of rerunning back to back."""
    return rerun_until(at, done, timeout=timeout, check=False)


def test_full_flow_quiz_story_scenes_hero_gallery(live, clean_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert "OpenAI (gpt-5.4-mini, gpt-image-2)" in texts(at)  # the sidebar says OpenAI is live
    click_write(at)
    assert not at.exception
    story = at.session_state.story
    assert story.source == "openai" and not story.missing()
    assert len(at.text_area) == 20

    click_approve(at)
    assert not at.exception
    # The hero page drew the two references and waits for approval; no scene image yet.
    assert at.title[0].value == "Hero reference sheet"
    reg, job = job_of(at)
    assert set(job.references) == {"base", "powered"}
    assert [r.kind for r in live.of("images")] == [
        "generations",
        "edits",
    ]  # powered form drawn from the hero
    assert all(s.status is SlotStatus.QUEUED and not s.generations for s in job.slots)

    settle(at.button(key="hero_make_" + job.id + "_base").click().run())  # regenerate once
    assert len(live.of("images")) == 3
    assert at.button(key="hero_approve").disabled  # a new hero: its powered-up form must be redrawn
    settle(at.button(key=f"hero_make_{job.id}_powered").click().run())
    at.button(key="hero_approve").click().run()
    assert not at.exception

    run_until(at, lambda: job_of(at)[1].done)
    reg, job = job_of(at)
    assert all(s.status is SlotStatus.READY for s in job.slots)
    assert all(s.image.path == "edit" and s.image.model == "gpt-image-2" for s in job.slots)
    # Answered scene requests (on a loaded machine a slow answer may time out and be retried).
    scene_requests = [
        r
        for r in live.of("edits")
        if "CHARACTER REFERENCE SHEET" not in r.prompt and r.status == 200
    ]
    assert len({r.prompt for r in scene_requests}) == 20 and all(
        r.n_images == 1 for r in scene_requests
    )
    at.run()
    page = texts(at)
    assert "20 / 20 images ready" in str([p.text for p in at.get("progress")]) or "20 / 20" in page
    assert "Estimated cost so far" in page and "gpt-image-2 · edit" in page
    assert "Continuity checks: about $" in page and "mode, threshold 70)" in page, page[-3000:]
    assert "On model · 95" in page
    chats = live.of("chat")
    # story, character sheet, scene prompts, the Short's narration (one call)
    assert (
        len([r for r in chats if not r.image_urls]) == 4
        and sum("NarrationDraft" in str(r) for r in chats) == 1
    )
    # Every image was checked against the hero (reference sheet and image), before it was ready.
    assert len([r for r in chats if len(r.image_urls) == 2]) == 20
    assert all(s.image.verdict["status"] == "checked" and not s.checking for s in job.slots)
    stories = CsvLog(clean_env).read("stories")
    assert (
        stories.iloc[-1]["job_id"] == job.id
        and stories.iloc[-1]["character_sheet"] == job.character_sheet
    )
    # Each image's log row is written just after its slot shows it: wait for all 20.
    wait_until(lambda: len(CsvLog(clean_env).read("images")) >= 20, timeout=10)
    images = CsvLog(clean_env).read("images")
    assert sorted(images["scene"].astype(int)) == list(range(1, 21))
    assert set(images["continuity_score"]) == {"95"}  # each image's row carries its verdict
    assert set(images["path"]) == {"edit"} and set(images["model"]) == {"gpt-image-2"}
    assert set(images["prompt"]) == {r.prompt for r in scene_requests}


def test_offline_mode_goes_straight_to_the_gallery():
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    click_approve(at)
    assert not at.exception
    reg, job = job_of(at)
    assert not job.references and any(s.generations for s in job.slots)
    assert at.title[0].value == job.story.title


def test_wrong_scene_count_opens_editor_with_marked_placeholder_and_retry(live):
    live.script("chat", *[Action.scenes(19)] * 3)
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    assert not at.exception
    page = texts(at)
    assert "19 scenes instead of 20" in page and ":orange-badge[missing]" in page
    assert at.text_area[19].value == "(Scene 20 missing - generation failed)"
    at.text_area[0].input("My own first scene.").run()
    # The service is back; its answer waits until the test has seen the page meanwhile.
    gate = threading.Event()
    live.script("chat", dataclasses.replace(Action.scenes(20), gate=gate))
    at.button(key="retry_story").click().run()
    # Written in the background: the run that started it returned at once, the id is kept
    # in the URL so a reload finds it.
    assert at.session_state.story_retry == at.query_params["retrying"]
    gate.set()
    settle(at)
    assert "retrying" not in at.query_params
    story = at.session_state.story
    assert not story.missing() and not story.problem
    assert story.scenes[0].text == "My own first scene."
    assert at.text_area[0].value == "My own first scene."


def test_a_reload_finds_the_missing_scenes_still_being_written(live, monkeypatch):
    monkeypatch.setenv("CHAT_TIMEOUT", "120")  # the held answer outlasts any reload
    live.script("chat", *[Action.scenes(19)] * 3)
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    # The service is back, slowly: its answer waits until the test has reloaded the page.
    gate = threading.Event()
    live.script("chat", dataclasses.replace(Action.scenes(20), gate=gate))
    at.button(key="retry_story").click().run()
    assert not at.exception
    task_id = at.query_params["retrying"]
    # The page's run returned while the story is being written: the button waits for it.
    assert at.button(key="retry_story").disabled
    assert "Writing your 20-scene story…" in texts(at)
    # A reload is a new session: no story in it, the URL's id finds the one being written.
    again = AppTest.from_file(APP, default_timeout=30)
    again.query_params["retrying"] = task_id
    again.switch_page("pages/scenes.py").run()
    assert not again.exception
    assert again.title[0].value == "Writing the missing scenes again"
    gate.set()
    settle(again)
    story = again.session_state.story
    assert story is not None and not story.missing() and not story.problem
    assert len(again.text_area) == 20 and "retrying" not in again.query_params


@pytest.mark.parametrize(
    "action,words",
    [
        (Action.refusal("Sorry."), "refused"),
        (Action.truncated(), "cut off"),
        (Action.hang(5), "timed out"),
        (Action.unauthorized(), "The OpenAI API key was refused."),
    ],
)
def test_story_failure_shows_placeholders_message_and_retry(live, action, words, monkeypatch):
    if action.hang_for is not None:
        # Waited out three times. Not shorter: the same session's retry below, which the
        # service answers, is made with this timeout too.
        monkeypatch.setenv("CHAT_TIMEOUT", "1")
    live.script("chat", *[action] * 3)
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    assert not at.exception
    assert words in texts(at)
    assert all(a.value.startswith("(Scene ") for a in at.text_area)
    assert at.session_state.answers["hero_name"] == "Rusty"
    live.reset()  # the service is back
    settle(at.button(key="retry_story").click().run())
    assert not at.session_state.story.missing()


def test_rewrite_scene_through_openai(live):
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    before = at.text_area[3].value
    settle(at.button(key=f"rewrite_{at.session_state.story.id}_4").click().run())
    assert at.text_area[3].value != before
    assert "Rewrite scene 4" in live.of("chat")[-1].prompt


def test_hero_failure_is_shown_and_skip_still_makes_images(live):
    live.script("images", *[Action.moderation()] * 3)  # blocked at every safety level
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    click_approve(at)
    assert "could not be drawn: The image was blocked by OpenAI's safety system." in texts(at)
    assert live.pending("images") == 0
    assert at.button(key="hero_approve").disabled
    at.button(key="hero_skip").click().run()
    run_until(at, lambda: job_of(at)[1].done)
    reg, job = job_of(at)
    assert all(s.status is SlotStatus.READY and s.image.path == "generate" for s in job.slots)


def test_out_of_credit_in_gallery_is_explained(live, monkeypatch):
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "false")
    live.script("images", *[Action.quota()] * 60)
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    click_approve(at)
    run_until(at, lambda: job_of(at)[1].done)
    at.run()
    assert "The OpenAI account is out of credit." in texts(at)
    reg, job = job_of(at)
    assert all(s.status is SlotStatus.FAILED for s in job.slots)
    assert at.button(key="retry_failed")


def test_policy_blocked_tile_shows_reason_and_edit_prompt_retry(live, monkeypatch):
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "false")
    live.blocked_words = {"t 5: a clear"}  # only scene 5, at every safety level
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    click_approve(at)
    run_until(at, lambda: job_of(at)[1].done)
    at.run()
    reg, job = job_of(at)
    slot = job.slots[4]
    assert slot.status is SlotStatus.FAILED and slot.policy_level == 2
    assert "Blocked by the content policy even with the safest prompt" in texts(at)
    scene5 = [r for r in live.of("images") if "t 5: a clear" in r.prompt.lower()]
    assert [r.status for r in scene5] == [400, 400, 400]
    assert scene5[1].prompt.endswith("Family-friendly, gentle, no injuries, storybook mood.")
    assert scene5[2].prompt.endswith("Family-friendly storybook illustration.")
    at.text_area(key=f"prompt_{job.id}_4").input("The hero smiles at a sunrise.").run()
    at.button(key=f"retry_prompt_{job.id}_4").click().run()
    run_until(at, lambda: job_of(at)[1].done)
    reg, job = job_of(at)
    assert job.slots[4].status is SlotStatus.READY
    assert job.slots[4].image.prompt.startswith("The hero smiles at a sunrise.")


def test_scenes_written_again_for_a_replaced_story_are_dropped(live, monkeypatch):
    """The reviewer asks for the missing scenes again, then writes a new story from the quiz
    before they arrive: the late scenes never fill the new story's gaps."""
    # The retry's answer is held while the new story is written: longer than the fixture's
    # timeout on a slow machine, and a timed-out retry would be sent again and answered.
    monkeypatch.setenv("CHAT_TIMEOUT", "120")
    live.script("chat", *[Action.scenes(19)] * 3)
    at = write_story(AppTest.from_file(APP, default_timeout=30))
    old_id = at.session_state.story.id
    gate = threading.Event()  # the retry's answer is held until the story has been replaced
    live.script("chat", dataclasses.replace(Action.scenes(20), gate=gate))
    at.button(key="retry_story").click().run()
    task_id = at.session_state.story_retry
    at.switch_page("pages/quiz.py").run()
    live.script("chat", *[Action.scenes(19)] * 3)  # the new story also misses a scene
    click_write(at)
    new = at.session_state.story
    assert new.id != old_id and new.missing()
    assert app.task(task_id).running  # the retry's scenes have not arrived yet
    gate.set()
    assert wait_until(lambda: not app.task(task_id).running, timeout=30)  # the retry ended
    at.run()
    settle(at)
    story = at.session_state.story
    assert story.id == new.id and story.missing() == new.missing()  # its gaps are its own
    assert not at.exception

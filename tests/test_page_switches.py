"""The app's own page switches happen at a click, and the page they open shows the work the click
started: "Write my story" opens the Scenes page, which writes the story; "Approve scenes" opens
the gallery (or the Hero page), which prepares the images. Each keeps its task in the address,
so a reload finds it; a failure is said there, with a link back, and loses nothing. (Why: a
switch made later, from a polling fragment, races the browser; tests/e2e/test_slow_link.py shows
it in a real browser.)"""

from __future__ import annotations

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.channel import heroes
from foxpipe.config import load_settings
from foxpipe.domain import quiz
from tests.apptest import click_approve, click_write, narration_busy, rerun_until, settle
from tests.conftest import APP, wait_until
from tests.fakes.openai_server import Action


@pytest.fixture
def live(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv(
        "OPENAI_USE_REFERENCE", "false"
    )  # no reference sheet: straight to the gallery
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    # Longer than any wait of these tests: a held call must be answered, not timed out and retried.
    monkeypatch.setenv("CHAT_TIMEOUT", "120")
    return fake_openai


def texts(at: AppTest) -> str:
    return "\n".join(
        str(e.value) for e in (*at.title, *at.info, *at.error, *at.warning, *at.caption)
    )


def links(at: AppTest) -> list[str]:
    return [link.proto.label for link in at.get("page_link")]


def hold_next_text_call(live) -> threading.Event:
    """The fake OpenAI server answers the next text call only once the test sets the event."""
    gate = threading.Event()
    live.script("chat", Action.held(gate))
    return gate


def held_answered(live) -> bool:
    return [r.reason for r in live.of("chat")].count("scripted:held") == 1


def wait_quiet(job_id: str, timeout: float = 60.0) -> None:
    """Until the job's images, their continuity checks and its narration are done: nothing of
    it calls the text model any more (so the next text call is the one a test holds)."""
    reg = app.current()
    deadline = time.monotonic() + timeout
    while not (
        reg.get(job_id).done
        and not reg.checks_running(job_id)
        and not any(s.checking for s in reg.get(job_id).slots)
        and not narration_busy(job_id)
    ):
        assert time.monotonic() < deadline, "the job never went quiet"
        time.sleep(0.05)


def test_write_story_opens_the_scenes_page_which_writes_it(live):
    gate = hold_next_text_call(live)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="q_hero_name").set_value("Pip").run()
    at.button(key="write_story").click().run()
    # The run the click started is already the Scenes page, showing the story being written.
    assert not at.exception, at.exception
    assert at.title[0].value == "Writing your story"
    task_id = at.query_params["writing"]
    assert task_id == at.session_state.story_task
    assert not at.text_area  # no scene yet
    at.switch_page("pages/scenes.py").run()
    assert at.title[0].value == "Writing your story"
    gate.set()
    settle(at)
    assert held_answered(live)
    assert at.session_state.story.answers["hero_name"] == "Pip"
    assert len(at.text_area) == 20 and "writing" not in at.query_params
    assert at.title[0].value != "Writing your story"


def test_a_reload_while_the_story_is_written_finds_it(live):
    gate = hold_next_text_call(live)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="write_story").click().run()
    task_id = at.query_params["writing"]
    # A reload: a new session with only the address.
    again = AppTest.from_file(APP, default_timeout=30)
    again.query_params["writing"] = task_id
    again.switch_page("pages/scenes.py").run()
    assert not again.exception, again.exception
    assert again.title[0].value == "Writing your story"
    gate.set()
    settle(again)
    assert len(again.text_area) == 20
    assert held_answered(live)
    # Back to the address that named the story being written: it is not taken a second time
    # (taking it again would forget the gallery this session has opened since).
    again.session_state.job_id = "a-gallery-opened-since"
    again.query_params["writing"] = task_id
    again.run()
    assert again.session_state.job_id == "a-gallery-opened-since"
    assert "writing" not in again.query_params and len(again.text_area) == 20


def test_a_story_that_cannot_be_written_is_said_on_the_scenes_page(live, monkeypatch):
    async def broken(settings, answers):  # noqa: ANN001
        raise RuntimeError("the writer fell over")

    monkeypatch.setattr(app, "write_story_async", broken)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input(key="q_hero_name").set_value("Pip").run()
    click_write(at)
    assert not at.exception, at.exception
    assert at.title[0].value == "The story could not be written"
    assert "the writer fell over" in texts(at) and "Your answers are kept." in texts(at)
    assert links(at) == ["Back to the quiz"]
    at.switch_page("pages/quiz.py").run()
    assert at.text_input(key="q_hero_name").value == "Pip"  # the answers are still there
    assert "being written" not in texts(at)


def test_approve_opens_the_gallery_which_prepares_the_images(live):
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    gate = hold_next_text_call(live)  # the scenes' image prompts
    at.button(key="approve_scenes").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Preparing the images"
    task_id = at.query_params["approving"]
    assert task_id == at.session_state.approve_task
    assert at.session_state.approve_page == ("pages/gallery.py", task_id)
    # A reload meanwhile (only the address) shows the same preparation, then the same job.
    again = AppTest.from_file(APP, default_timeout=30)
    again.query_params["approving"] = task_id
    again.switch_page("pages/gallery.py").run()
    assert again.title[0].value == "Preparing the images"
    # The Scenes page, visited meanwhile, links to the progress and cannot approve twice.
    at.switch_page("pages/scenes.py").run()
    assert at.button(key="approve_scenes").disabled
    assert "See its progress" in links(at)

    gate.set()
    at.switch_page("pages/gallery.py")
    settle(at.run())
    job_id = at.session_state.job_id
    assert at.query_params["job"] == job_id and "approving" not in at.query_params
    assert at.title[0].value == at.session_state.story.title
    assert app.current().get(job_id) is not None
    # The Scenes page, visited again, can approve again (nothing is pending).
    at.switch_page("pages/scenes.py").run()
    assert "See its progress" not in links(at)
    assert not at.button(key="approve_scenes").disabled

    for _ in range(100):
        again.run()
        if again.query_params.get("job"):
            break
    assert again.query_params["job"] == job_id


def test_an_approval_that_fails_is_said_on_the_gallery_and_the_scenes_are_kept(live, copy_gallery):
    # A saved hero that is removed from the library between choosing it and approving.
    at = AppTest.from_file(APP, default_timeout=30).run()
    reg = app.current()
    # The hero of this browser's finished gallery (a copy of the template, tests/prefab.py).
    first = copy_gallery(reg, owner=at.session_state.owner)
    hero = heroes.save_from_job(reg, reg.get(first))
    at.session_state.hero_id = hero.id
    at.switch_page("pages/quiz.py").run()
    click_write(at)
    story = at.session_state.story
    heroes.delete(reg, hero.id)
    at.switch_page("pages/scenes.py").run()
    click_approve(at)
    assert not at.exception, at.exception
    assert at.title[0].value == "The images were not started"
    assert "no longer in the library" in texts(at) and "Your scenes are kept." in texts(at)
    assert links(at) == ["Back to the scenes"]
    at.switch_page("pages/scenes.py").run()
    assert at.session_state.story is story and len(at.text_area) == 20
    assert not at.button(key="approve_scenes").disabled


def test_an_approval_this_server_does_not_know_says_approve_again(clean_env):
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["approving"] = "an-approval-from-before-a-restart"
    at.switch_page("pages/gallery.py").run()
    assert not at.exception, at.exception
    assert "The approval was interrupted" in texts(at)
    assert links(at) == ["Back to the scenes"]


def test_a_gallery_link_is_that_gallery_while_this_session_approves_other_scenes(
    live, copy_gallery
):
    at = AppTest.from_file(APP, default_timeout=30).run()
    # This browser's finished gallery (a copy of the template, tests/prefab.py).
    first = copy_gallery(app.current(), owner=at.session_state.owner)
    at.switch_page("pages/quiz.py").run()
    at.text_input(key="q_hero_name").set_value("Bramble").run()  # another story
    click_write(at)
    wait_quiet(first)
    gate = hold_next_text_call(live)
    at.switch_page("pages/scenes.py").run()
    at.button(key="approve_scenes").click().run()
    assert at.title[0].value == "Preparing the images"
    # A link from History to the first story's gallery shows it, not the approval's progress...
    at.query_params.clear()
    at.query_params["job"] = first
    at.switch_page("pages/gallery.py").run()
    assert at.title[0].value != "Preparing the images" and at.query_params["job"] == first
    approving = at.session_state.approve_task
    gate.set()
    # ...and stays that gallery when the approval has ended.
    wait_until(lambda: not app.task(approving).running, timeout=60)
    for _ in range(3):
        at.run()
        assert not at.exception, at.exception
        assert at.query_params["job"] == first
    # The gallery without a job in its address is the approval's (the sidebar's Gallery).
    at.query_params.clear()
    settle(at.run())
    second = at.session_state.job_id
    assert second != first and at.query_params["job"] == second
    assert held_answered(live)


def test_approving_with_the_reference_sheet_first_opens_the_hero_page(live, monkeypatch):
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "true")
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    gate = hold_next_text_call(live)
    at.button(key="approve_scenes").click().run()
    assert not at.exception, at.exception
    page, task_id = at.session_state.approve_page
    assert page == "pages/hero.py" and at.query_params["approving"] == task_id
    assert at.title[0].value == "Preparing the images"
    gate.set()
    at.switch_page("pages/hero.py")
    settle(at.run())
    assert at.title[0].value == "Hero reference sheet"
    job = app.current().get(at.session_state.job_id)
    assert set(job.references) == {"base", "powered"}
    assert not any(s.generations for s in job.slots)  # no scene image before the sheet


def as_if_the_browser_still_showed_the_page_of_the_last_click(at: AppTest, page: str) -> None:
    """A double click's second click is made on the render of the page the first was made on
    (the browser had not yet seen the switch). AppTest cannot click on an old render, so the
    test draws the page again and then tells the session it is still the old render."""
    at.session_state[f"renders_{page}"] = at.session_state[f"last_click_{page}"][0]


def test_a_double_click_on_approve_makes_one_job(clean_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    click_approve(at)
    first = at.session_state.job_id
    reg = app.current()
    jobs = len(reg.store.jobs_where())
    at.switch_page("pages/scenes.py").run()
    as_if_the_browser_still_showed_the_page_of_the_last_click(at, "scenes")
    at.button(key="approve_scenes").click().run()
    assert not at.exception, at.exception
    assert at.query_params["job"] == first  # the same gallery
    assert len(reg.store.jobs_where()) == jobs
    # A click the browser delivers late can be handled after the page was drawn again (seen
    # once over a slow link: a second job): the same scenes open the same gallery.
    at.switch_page("pages/scenes.py").run()
    assert at.button(key="approve_again")  # the way to a new gallery of the same scenes
    at.button(key="approve_scenes").click().run()
    assert not at.exception, at.exception
    assert at.query_params["job"] == first
    assert len(reg.store.jobs_where()) == jobs
    # A new gallery of the same scenes is asked for with its own button.
    at.switch_page("pages/scenes.py").run()
    before = at.session_state.job_id
    at.button(key="approve_again").click().run()
    started = at.session_state.approve_page
    at.switch_page(started[0])
    settle(at.run())
    second = at.session_state.job_id
    assert second not in (first, before) and len(reg.store.jobs_where()) == jobs + 1
    # Changed scenes are a new approval: a new job.
    at.switch_page("pages/scenes.py").run()
    sid = at.session_state.story.id
    at.text_area(key=f"scene_{sid}_1").set_value("Pip wakes before the sun.").run()
    assert not at.get("button") or not any(b.key == "approve_again" for b in at.button)
    click_approve(at)
    assert at.session_state.job_id not in (first, second)
    assert len(reg.store.jobs_where()) == jobs + 2


def test_a_double_click_on_write_my_story_writes_one_story(live, monkeypatch):
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    story = at.session_state.story
    at.switch_page("pages/quiz.py").run()
    as_if_the_browser_still_showed_the_page_of_the_last_click(at, "quiz")
    at.button(key="write_story").click().run()
    assert not at.exception, at.exception
    at.switch_page("pages/scenes.py")
    settle(at.run())
    assert at.session_state.story is story and len(live.of("chat")) == 1  # one story paid for
    at.switch_page("pages/quiz.py").run()
    click_write(at)  # a click on a quiz drawn since, the same answers at once: the same story
    assert at.session_state.story.id == story.id and len(live.of("chat")) == 1
    monkeypatch.setattr(app, "SAME_STORY_SECONDS", 0.0)  # the same answers, a while later
    at.switch_page("pages/quiz.py").run()
    click_write(at)  # a new story
    assert at.session_state.story.id != story.id and len(live.of("chat")) == 2


def test_back_to_a_story_taken_while_another_is_written_shows_that_one(live):
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    taken_id = at.session_state.last_click_quiz[1]
    gate = hold_next_text_call(live)
    at.switch_page("pages/quiz.py").run()
    at.text_input(key="q_hero_name").set_value("Bramble").run()
    at.button(key="write_story").click().run()
    writing = at.session_state.story_task
    at.query_params["writing"] = taken_id  # Back, to the first story's address
    at.switch_page("pages/scenes.py").run()
    assert at.title[0].value == "Writing your story"
    assert at.query_params["writing"] == writing
    gate.set()
    settle(at)
    assert at.session_state.story.answers["hero_name"] == "Bramble"


def test_a_new_story_does_not_show_the_last_story_s_approval(live):
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    gate = hold_next_text_call(live)
    at.button(key="approve_scenes").click().run()  # the last story's approval, still running
    assert at.title[0].value == "Preparing the images"
    at.switch_page("pages/quiz.py").run()
    at.text_input(key="q_hero_name").set_value("Bramble").run()
    gate.set()
    click_write(at)
    assert at.session_state.story.answers["hero_name"] == "Bramble"
    assert "See its progress" not in links(at)
    assert not at.button(key="approve_scenes").disabled


def test_images_started_elsewhere_while_the_hero_page_polls_give_a_link_not_a_switch(
    live, monkeypatch
):
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "true")
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    gate = threading.Event()
    live.script("images", Action.held(gate))  # the hero's first reference drawing
    at.button(key="approve_scenes").click().run()
    at.switch_page("pages/hero.py")
    # The approval may have ended within the click's run (the hero page then took it and dropped
    # ``approve_task``); the page it opened keeps its id either way.
    page, approving = at.session_state.approve_page
    assert page == "pages/hero.py"
    # Until the approval is taken and the drawing runs (the page polls).
    rerun_until(
        at,
        lambda: not app.task(approving).running,
        lambda a: a.title and a.title[0].value == "Hero reference sheet",
        what="the Hero page never showed the drawing",
        check=False,
    )
    job_id = at.session_state.job_id
    studio = app.studio(app.current().settings)
    assert studio.hero_drawing(job_id, "base")
    # Meanwhile the images are started elsewhere (a teammate, the queue), without the sheet.
    studio.start_hero_images(job_id, False)
    gate.set()
    for _ in range(200):
        if any(s.generations for s in studio.get(job_id).slots):
            break
        time.sleep(0.05)
    else:
        pytest.fail("the images never started")
    at.run()
    assert not at.exception, at.exception
    # The page that was polling says so and links to the gallery; it does not switch.
    assert "This story's images are being made." in texts(at)
    assert links(at) == ["Open the gallery"]


def at_once(call, n: int = 4) -> list:  # noqa: ANN001
    """What ``call()`` returned on each of ``n`` threads released at the same moment."""
    go = threading.Barrier(n)
    out: list = []

    def run() -> None:
        go.wait()
        out.append(call())

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_the_same_scenes_approved_twice_at_once_are_one_approval(clean_env):
    """However a late second click reaches the server (seen twice over the slow link: a second
    job), the same person approving the same scenes again within a minute gets the same
    approval; a new gallery asked for on purpose, another person or changed scenes do not."""
    settings = load_settings({})
    s = app.write_story(settings, {"hero_name": "Pip"})
    reg = app.engine(settings)
    ids = at_once(lambda: app.start_approval(settings, s, "me"))
    assert len(set(ids)) == 1
    wait_until(lambda: not app.task(ids[0]).running, timeout=60)
    assert app.task(ids[0]).status == "done"
    assert app.start_approval(settings, s, "me") == ids[0]  # done just now: still the same
    assert len(reg.store.jobs_where()) == 1
    others = [
        app.start_approval(settings, s, "me", again=True),
        app.start_approval(settings, s, "someone else"),
    ]
    s.scenes[0].text = "Pip wakes before the sun."
    others.append(app.start_approval(settings, s, "me"))
    assert len({ids[0], *others}) == 4
    for tid in others:
        wait_until(lambda tid=tid: not app.task(tid).running, timeout=60)
    assert len(reg.store.jobs_where()) == 4


def test_the_same_answers_written_twice_at_once_are_one_story(clean_env, monkeypatch):
    """However a late second click of "Write my story" reaches the server (seen once over the
    slow link: two stories written), the same person asking for a story from the same answers
    while it is written, or just after, gets that story; the scenes' retry, another person,
    changed answers, or the same answers a little later write another."""
    settings = load_settings({})
    answers = {**quiz.defaults(), "hero_name": "Pip"}
    ids = at_once(lambda: app.start_story(settings, answers, "me"))
    assert len(set(ids)) == 1
    wait_until(lambda: not app.task(ids[0]).running, timeout=60)
    assert app.task(ids[0]).status == "done"
    assert app.start_story(settings, answers, "me") == ids[0]  # done just now: still the same
    others = [
        app.start_story(settings, answers),  # the Scenes page's retry of missing scenes
        app.start_story(settings, answers, "someone else"),
        app.start_story(settings, {**answers, "hero_name": "Mo"}, "me"),
    ]
    monkeypatch.setattr(app, "SAME_STORY_SECONDS", 0.0)  # the same answers, a while later
    others.append(app.start_story(settings, answers, "me"))
    assert len({ids[0], *others}) == 5
    for tid in others:
        wait_until(lambda tid=tid: not app.task(tid).running, timeout=60)
        assert app.task(tid).status == "done"

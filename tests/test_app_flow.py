"""The whole flow in offline mode, through the real pages, with AppTest."""

import io
import json
import zipfile

from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.domain.models import SlotStatus
from tests.apptest import click_approve, click_write, rerun_until

from .conftest import APP


def new_app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [m.value for m in at.caption]
    parts += (
        [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.warning]
    )
    return "\n".join(str(p) for p in parts)


def run_until(at: AppTest, predicate, timeout=30.0, state=lambda: True):
    """Rerun the page until ``predicate(at)`` holds for a run made once the product's
    ``state()`` held; between reruns wait on that state. Every run is checked for an exception."""
    try:
        rerun_until(at, state, predicate, timeout=timeout)
    except AssertionError as e:
        raise AssertionError(f"{e}: {[p.value for p in at.progress]} {texts(at)[:600]}") from e


def write_story(at: AppTest) -> None:
    at.run()
    at.selectbox(key="q_discovery").select("A wise mentor").run()
    at.selectbox(key="q_mentor").select("An old tortoise sage").run()
    at.text_input(key="q_hero_name").set_value("Pip").run()
    click_write(at)
    assert not at.exception, at.exception


def test_offline_mode_is_labelled_in_the_sidebar():
    at = new_app().run()
    assert not at.exception
    assert any("Offline mode" in i.value for i in at.sidebar.info)


def test_branch_appears_when_its_answer_is_chosen():
    at = new_app().run()
    labels = [s.label for s in at.selectbox]
    assert "Which element?" in labels and "Who is the mentor?" not in labels
    at.selectbox(key="q_discovery").select("A wise mentor").run()
    at.selectbox(key="q_power").select("Super speed").run()
    labels = [s.label for s in at.selectbox]
    assert "Who is the mentor?" in labels and "Which element?" not in labels


def test_bad_answers_get_messages_and_keep_the_user_on_the_quiz():
    at = new_app().run()
    at.text_input(key="q_hero_name").set_value("").run()
    at.selectbox(key="q_animal").select("Something else…").run()
    at.text_input(key="q_custom_animal").set_value("x" * 41).run()
    click_write(at)
    assert not at.exception
    errs = [e.value for e in at.error]
    assert any("The hero's name" in e and "empty" in e for e in errs)
    assert any("too long" in e and "at most 40" in e for e in errs)
    assert at.session_state["story"] is None
    # What the user typed is still there.
    assert at.text_input(key="q_custom_animal").value == "x" * 41


def test_pages_reached_out_of_order_say_what_to_do_first():
    at = new_app().run()
    at.switch_page("pages/scenes.py").run()
    assert not at.exception
    assert "Answer the quiz first" in texts(at)
    at.switch_page("pages/gallery.py").run()
    assert not at.exception
    assert "No gallery yet" in texts(at)


def test_unknown_gallery_id_says_not_found():
    at = new_app()
    at.query_params["job"] = "made-up-id-123456"
    at.run()
    at.switch_page("pages/gallery.py").run()
    assert not at.exception
    assert "Gallery not found" in texts(at)


def test_whole_offline_flow_quiz_to_zip():
    at = new_app()
    write_story(at)
    # Scenes page: 20 prefilled editors.
    assert len(at.text_area) == 20
    assert "Pip" in at.text_area[0].value
    at.text_area[2].set_value("Pip builds a raft of reeds under a grey sky.").run()
    # Edits survive a page switch and back.
    at.switch_page("pages/quiz.py").run()
    at.switch_page("pages/scenes.py").run()
    assert at.text_area[2].value == "Pip builds a raft of reeds under a grey sky."
    click_approve(at)
    assert not at.exception, at.exception
    job_id = at.query_params["job"]
    assert isinstance(job_id, str) and len(job_id) >= 22
    assert at.progress, "the gallery opened"
    at.switch_page("pages/gallery.py")  # AppTest re-runs the last page it was switched to
    reg = app.current()

    # Every image made and checked against the hero (a checking image waits for its verdict).
    def done() -> bool:
        return reg.get(job_id).done

    run_until(at, lambda a: a.progress and a.progress[0].value == 100 and done(), state=done)
    job = reg.get(job_id)
    assert [s.status for s in job.slots] == [SlotStatus.READY] * 20
    assert job.slots[2].scene.text == "Pip builds a raft of reeds under a grey sky."
    # Reject one: it regenerates with the feedback.
    at.button(key=f"rej_{job_id}_4").click().run()
    at.multiselect(key=f"why_{job_id}_4").select("Hero looks different").run()
    at.button(key=f"no_{job_id}_4").click().run()

    def regenerated() -> bool:
        return reg.get(job_id).done and len(reg.get(job_id).slots[4].versions) == 2

    run_until(at, lambda a: regenerated(), state=regenerated)
    at.run()  # "Approve all" approves what the page showed, so show the new image first
    at.button(key="approve_all").click().run()
    run_until(at, lambda a: a.success)
    assert reg.get(job_id).all_approved
    assert "All images approved" in at.success[0].value
    # The ZIP holds the 20 images and story.json.
    data = at.get("download_button")[0].proto
    assert data.label.startswith("Download")
    from foxpipe import export

    z = zipfile.ZipFile(io.BytesIO(export.build_zip(reg.get(job_id))))
    names = set(z.namelist())
    assert {f"images/scene_{n:02d}.png" for n in range(1, 21)} <= names
    meta = json.loads(z.read("story.json"))
    assert meta["answers"]["hero_name"] == "Pip"
    assert meta["answers"]["mentor"] == "An old tortoise sage"
    assert [s["status"] for s in meta["scenes"]] == ["approved"] * 20
    assert meta["scenes"][2]["text"] == "Pip builds a raft of reeds under a grey sky."
    assert meta["scenes"][4]["versions"] == 2
    assert "prompts.csv" in names


def test_reload_reopens_the_same_gallery():
    at = new_app()
    write_story(at)
    click_approve(at)
    job_id = at.query_params["job"]
    # A reload is a new session that only has the URL.
    again = new_app()
    again.query_params["job"] = job_id
    again.run()
    again.switch_page("pages/gallery.py").run()
    assert not again.exception
    assert again.title[0].value.startswith("Pip")
    assert again.query_params["job"] == job_id


def test_structure_is_asked_first_and_the_later_questions_follow_it():
    at = new_app().run()
    assert at.selectbox[0].key == "q_structure" and at.selectbox[0].value == "Power fantasy"
    at.selectbox(key="q_structure").select("Rescue mission").run()
    labels = [s.label for s in at.selectbox]
    assert "Who must be rescued?" in labels and "Rescued from what?" in labels
    assert "What power does the hero gain?" not in labels and "Who is the rival?" not in labels
    assert any("Act I: The loss" in m.value for m in at.markdown)
    # A branch inside the structure, with its validation message.
    at.selectbox(key="q_rescued").select("Something else…").run()
    click_write(at)
    assert any("Who is it?" in e.value and "empty" in e.value for e in at.error)
    assert at.session_state["story"] is None
    at.text_input(key="q_custom_rescued").set_value("The old village badger").run()
    at.text_input(key="q_hero_name").set_value("Pip").run()
    click_write(at)
    assert not at.exception, at.exception
    story = at.session_state["story"]
    assert story.answers["structure"] == "Rescue mission"
    assert [s.beat for s in story.scenes][:3] == ["Ordinary day", "Ordinary day", "Taken"]
    assert "the old village badger" in " ".join(s.text for s in story.scenes)
    assert "Pip" in at.text_area[0].value  # the scenes page opened with the rescue story
    # Back on the quiz, another structure swaps the questions again.
    at.switch_page("pages/quiz.py").run()
    at.selectbox(key="q_structure").select("Survival journey").run()
    labels = [s.label for s in at.selectbox]
    assert "What is the danger?" in labels and "Who must be rescued?" not in labels

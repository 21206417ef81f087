"""One bad file or record renders its own message: a missing or corrupt image does not take
the gallery down, a damaged scene record shows on its tile only, and one damaged saved job
shows on its own History row."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import ui
from tests.conftest import APP


def images(at: AppTest) -> int:
    return len(at.get("image"))


@pytest.fixture
def finished_gallery():
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="write_story").click().run()
    at.button(key="approve_scenes").click().run()
    reg = ui.REGISTRIES[-1]
    job_id = at.session_state.job_id
    for _ in range(400):
        at.run()
        if reg.get(job_id).done:
            break
    at.run()
    assert images(at) == 20 and not at.exception
    return at, reg, job_id


def test_missing_and_corrupt_image_files_only_affect_their_tiles(finished_gallery):
    at, reg, job_id = finished_gallery
    job = reg.get(job_id)
    corrupt = Path(ui.image_src(job.slots[2].image))
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    missing = Path(ui.image_src(job.slots[7].image))
    missing.unlink()
    at.run()
    assert not at.exception
    assert images(at) == 18
    notes = [w.value for w in at.warning if "missing or damaged" in w.value]
    assert len(notes) == 2


def test_a_damaged_scene_record_shows_on_its_own_tile(finished_gallery):
    at, reg, job_id = finished_gallery

    def damage(j):  # what a job file with a wrong type in it turns into
        j.slots[4].image.seconds = "twelve"
        j.slots[4].image.path = "edit"

    reg.mutate(job_id, damage)
    at.run()
    assert not at.exception, at.exception[0].stack_trace
    errors = [e.value for e in at.error]
    assert any("Scene 5 cannot be shown" in e for e in errors)
    assert images(at) == 20  # every tile still shows its image (scene 5's before its broken line)
    assert any("The progress figures cannot be shown" in w.value for w in at.warning)


def test_one_damaged_saved_job_does_not_break_history(clean_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    ids = []
    for _ in range(3):
        at.switch_page("pages/quiz.py").run()
        at.button(key="write_story").click().run()
        at.switch_page("pages/scenes.py").run()
        at.button(key="approve_scenes").click().run()
        ids.append(at.session_state.job_id)
    for reg in ui.REGISTRIES:  # every job finished and saved, the writer stopped
        for job_id in ids:
            for _ in range(400):
                if reg.get(job_id) is None or reg.get(job_id).done:
                    break
                time.sleep(0.05)
        reg.shutdown()
    jobs = clean_env / "jobs"
    (jobs / f"{ids[0]}.json").write_text(json.dumps({"id": ids[0], "slots": 5}), encoding="utf-8")
    (jobs / f"{ids[1]}.json").write_text("{not json", encoding="utf-8")
    at.switch_page("pages/history.py").run()
    assert not at.exception
    text = " ".join(str(c.value) for c in at.caption)
    assert "no valid list of scenes" in text and "not valid JSON" in text
    assert len(at.get("page_link")) == 1  # the good story can still be opened

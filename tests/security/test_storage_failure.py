"""A full or read-only data folder and a store that refuses writes: every failure is said
plainly, nothing is shown as saved that was not, and nothing hangs."""

from __future__ import annotations

import os

from sqlalchemy import event
from streamlit.testing.v1 import AppTest

from foxpipe import app, ui
from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.models import SlotStatus
from foxpipe.engine import videojobs
from foxpipe.providers.localstore import LocalStore
from tests.conftest import APP, wait_until


def _job(settings, start: bool = True) -> str:
    s = story.offline_story(quiz.defaults())
    prompts = app.prepare_prompts(settings, s).prompts
    return app.engine(settings).create_job(s, prompts, owner="someone", start=start)


def test_a_full_disk_fails_images_with_a_clear_storage_message(clean_env):
    settings = load_settings({})
    reg = app.engine(settings)
    job_id = _job(settings, start=False)
    store = LocalStore(settings.data_path)
    for i in range(20):  # every image file the job will write goes to a device that is always full
        tmp = store.path_for(job_id, i, 1).with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        os.symlink("/dev/full", tmp)
    reg.schedule(job_id, list(range(20)))
    wait_until(lambda: reg.get(job_id).done, timeout=30)
    job = reg.get(job_id)
    assert all(s.status is SlotStatus.FAILED for s in job.slots)
    for s in job.slots:
        assert s.error.startswith("Storage failed"), s.error
        assert "disk is full" in s.error and "Internal error" not in s.error


def _read_only(reg) -> None:
    """Every new connection of the store refuses writes (SQLite's query_only)."""

    @event.listens_for(reg.store.engine, "connect")
    def _ro(dbapi_conn, _record):  # noqa: ANN001, ANN202
        dbapi_conn.execute("PRAGMA query_only=ON")

    reg.store.engine.dispose()


def test_an_approval_the_store_refuses_says_so_and_is_not_shown_as_made(clean_env, copy_gallery):
    settings = load_settings({})
    reg = app.engine(settings)
    job_id = copy_gallery(reg, owner="someone")  # a finished gallery (tests/prefab.py)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["job"] = job_id
    at.switch_page(ui.GALLERY_PAGE)
    at.run()
    owner = reg.get(job_id).owner
    reg.mutate(job_id, lambda j: setattr(j, "owner", at.session_state.owner))  # this reviewer's own
    assert owner
    at.run()
    _read_only(reg)
    at.button(key=f"ok_{job_id}_0").click().run()
    shown = " ".join(w.value for w in at.warning) + " ".join(e.value for e in at.error)
    assert "Not saved" in shown and "could not be written" in shown
    assert reg.get(job_id).slots[0].status is SlotStatus.READY  # nothing claims it was approved


def test_a_video_on_a_read_only_folder_ends_failed_not_starting(clean_env, copy_gallery):
    settings = load_settings({})
    reg = app.engine(settings)
    job_id = copy_gallery(reg, owner="someone")  # a finished gallery (tests/prefab.py)
    reg.approve_all(job_id)
    videos = settings.data_path / "videos"
    videos.parent.mkdir(parents=True, exist_ok=True)
    if videos.exists():
        os.rmdir(videos)
    videos.write_text("not a folder")  # the video folder cannot be made
    assert videojobs.start(reg, job_id) == ""
    wait_until(lambda: reg.get(job_id).video.status in ("done", "failed"), timeout=30)
    v = reg.get(job_id).video
    assert v.status == "failed" and not v.running
    assert "could not" in v.error


def test_a_video_that_cannot_be_recorded_is_never_shown_as_starting(clean_env, copy_gallery):
    settings = load_settings({})
    reg = app.engine(settings)
    job_id = copy_gallery(reg, owner="someone")  # a finished gallery (tests/prefab.py)
    reg.approve_all(job_id)
    _read_only(reg)
    problem = videojobs.start(reg, job_id)
    assert problem.startswith("The video could not be started")
    assert reg.get(job_id).video is None

"""The gallery's Videos section, driven through AppTest: offline, all approved, slideshow."""

from __future__ import annotations

import io
import zipfile

from streamlit.testing.v1 import AppTest

from foxpipe import app as workflow
from tests.apptest import rerun_until
from tests.conftest import APP


def _approved_job_in_app_registry(copy_gallery) -> str:  # noqa: ANN001
    """A finished gallery (a copy of the template, tests/prefab.py: the offline story with its
    prompts and character sheet, no narration) in the app's engine, every image approved by it."""
    return copy_gallery(workflow.current(), owner="tester-0001", approved=True)


def test_slideshow_from_the_gallery_plays_and_is_in_the_zip(copy_gallery):
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["me"] = "tester-0001"  # the owner's own browser
    at.switch_page("pages/gallery.py").run()  # no gallery yet; this makes the app's registry
    job_id = _approved_job_in_app_registry(copy_gallery)
    at.query_params["job"] = job_id
    at.run()
    assert not at.exception
    assert any(h.value == "Videos" for h in at.subheader)
    # With no keys only the local slideshow is offered.
    assert at.radio(key="video_provider").options == [
        "Local slideshow (free, made on this machine)"
    ]
    at.number_input(key="video_seconds").set_value(0.5)
    at.button(key="generate_video").click().run()
    assert not at.exception
    assert at.button(key="generate_video").disabled  # no double start while it runs

    def made() -> bool:  # the engine has ended the video (ffmpeg has finished)
        return not workflow.current().get(job_id).video.running

    # run_every never fires in AppTest: rerun once the engine says the video is made (and now
    # and then while ffmpeg renders); every run is checked for an exception.
    rerun_until(at, made, lambda a: a.get("video"), timeout=120)
    job = workflow.current().get(job_id)
    assert (
        job.video.status == "done" and abs(job.video.duration - 20 * 0.5) < 0.1
    )  # no narration: 0.5 s a scene
    assert not at.button(key="generate_video").disabled
    labels = [b.label for b in at.get("download_button")]
    assert "Download the video (MP4)" in labels and "Download everything (ZIP)" in labels

    from foxpipe.engine import videojobs

    names = set(zipfile.ZipFile(io.BytesIO(videojobs.everything_zip(job))).namelist())
    assert {"story.mp4", "story.srt", "story.json", "prompts.csv"} <= names
    assert sum(n.startswith("images/") for n in names) == 20

"""The gallery's live figures and Stop button, through the real page (AppTest)."""

from __future__ import annotations

import asyncio
import threading

from streamlit.testing.v1 import AppTest

from foxpipe import app, ui
from foxpipe import app as workflow
from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.models import SlotStatus
from foxpipe.providers.offline import OfflineImages
from tests.conftest import APP, wait_until


def test_gallery_shows_figures_and_stop_cancels(monkeypatch):
    # The images are held until Stop is pressed: the job is in flight whatever the machine's load.
    gate = threading.Event()
    drawn = OfflineImages.generate

    async def held(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        await asyncio.to_thread(gate.wait, 60)
        return await drawn(self, *args, **kwargs)

    monkeypatch.setattr(OfflineImages, "generate", held)
    try:
        _figures_and_stop(gate)
    finally:
        gate.set()


def _figures_and_stop(gate: threading.Event) -> None:
    settings = load_settings({})
    reg = app.engine(settings)
    s = story.offline_story(quiz.defaults())
    prompts = workflow.prepare_prompts(settings, s).prompts
    job_id = reg.create_job(s, prompts, owner="someone-0001")

    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["job"] = job_id
    at.query_params["me"] = "someone-0001"  # the owner's own browser
    at.switch_page(ui.GALLERY_PAGE)
    at.run()
    labels = {m.label: m.value for m in at.metric}
    assert set(labels) >= {"Images done", "Images per minute", "Elapsed", "Time left (est.)"}
    assert labels["Images done"].endswith("/ 20")
    assert labels["Time left (est.)"] != "—"  # work in flight: an estimate is shown
    at.button(key="stop_job").click().run()
    gate.set()
    wait_until(lambda: reg.get(job_id).done, timeout=10)
    job = reg.get(job_id)
    assert job.cancelled
    assert any(sl.status is SlotStatus.FAILED and "Stopped" in sl.error for sl in job.slots)
    at.run()
    labels = {m.label: m.value for m in at.metric}
    assert labels["Time left (est.)"] == "—"
    assert at.button(key="retry_failed")  # the failed images can be retried

"""A scene the content policy blocks at every level can still be finished in the browser: a
failed tile approves its earlier image, or takes an image of the user's own, and "Approve all"
then reaches 20/20."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from foxpipe.domain import quiz, story
from foxpipe.domain.lifecycle import SlotEvent, slot_event
from foxpipe.domain.models import SlotStatus
from foxpipe.store import Store, default_url
from tests.fakes.openai_server import Action, FakeOpenAI

from .helpers import key, reject, screenshot

ME = "stuck-owner-token-01"


def queued_job(data_dir: Path) -> str:
    from foxpipe.config import Settings
    from foxpipe.engine.jobs import JobRegistry

    reg = JobRegistry(Settings(data_dir=str(data_dir)))
    try:
        s = story.offline_story(quiz.defaults())
        job_id = reg.create_job(
            s, [f"scene {i + 1}" for i in range(len(s.scenes))], owner=ME, start=False
        )

        def queue(j):  # noqa: ANN001, ANN202
            for sl in j.slots:
                slot_event(sl, SlotEvent.QUEUE)

        reg.mutate(job_id, queue)
        return job_id
    finally:
        reg.store.close()


def wait_slots(store: Store, job_id: str, predicate, timeout: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        if job is not None and predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError("the job did not reach the expected state")


@pytest.mark.e2e
def test_a_blocked_scene_is_finished_by_its_earlier_image_and_by_an_upload(
    start_app, new_page, shots, clean_env, tmp_path
):
    with FakeOpenAI(latency=0.05) as fake:
        job_id = queued_job(clean_env)
        app = start_app(
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=fake.base_url,
            IMAGES_PER_MINUTE="6000",
            OPENAI_USE_REFERENCE="false",
            IMAGE_RETRIES="3",
        )
        store = Store(default_url(clean_env))
        page = new_page()
        page.goto(f"{app.url}/gallery?job={job_id}&me={ME}")
        wait_slots(store, job_id, lambda j: all(s.status is SlotStatus.READY for s in j.slots))
        expect(page.get_by_text("20 / 20 images ready")).to_be_visible()

        # Every retry of scenes 3 and 5 is refused by the content policy, at every level.
        fake.script("images", *[Action.content_policy() for _ in range(40)])
        for n in (3, 5):
            reject(page, job_id, n, "Wrong action")
            wait_slots(store, job_id, lambda j, i=n - 1: j.slots[i].status is SlotStatus.FAILED)
        expect(page.locator(key(f"ok_failed_{job_id}_2"))).to_be_visible()
        screenshot(page, shots / "1-blocked.png")

        # Scene 3: its earlier image is approved as it is.
        page.locator(key(f"ok_failed_{job_id}_2") + " button").first.click()
        wait_slots(store, job_id, lambda j: j.slots[2].status is SlotStatus.APPROVED)

        # Scene 5: an image of the user's own.
        own = tmp_path / "own.png"
        buf = io.BytesIO()
        Image.new("RGB", (320, 480), (30, 140, 90)).save(buf, "PNG")
        own.write_bytes(buf.getvalue())
        page.locator(key(f"tile_own_{job_id}_4")).get_by_text(
            "Use an image of your own"
        ).first.click()
        page.locator(key(f"own_{job_id}_4") + ' input[type="file"]').first.set_input_files(str(own))
        job = wait_slots(store, job_id, lambda j: j.slots[4].status is SlotStatus.READY)
        assert job.slots[4].image.path == "upload" and len(job.slots[4].versions) == 2

        page.keyboard.press("Escape")
        # The page shows the uploaded scene as ready (and checked) before Approve all covers it:
        # 19 to approve, scene 3 is approved already.
        button = page.locator(key("approve_all") + " button").first
        expect(button).to_contain_text("Approve all (19)", timeout=30_000)
        button.click()
        job = wait_slots(store, job_id, lambda j: j.all_approved)
        assert sum(s.status is SlotStatus.APPROVED for s in job.slots) == 20
        expect(page.get_by_text("All images approved.")).to_be_visible()
        screenshot(page, shots / "2-all-approved.png")
        store.close()

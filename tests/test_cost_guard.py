"""The cost guard refuses before spending: per story, per image, per day."""

import threading

import pytest

from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.models import SlotStatus
from foxpipe.engine.generation import Pipeline
from foxpipe.engine.jobs import GuardError, JobRegistry
from foxpipe.providers.base import ImageResult
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.localstore import LocalStore
from foxpipe.providers.offline import render_card

from .conftest import wait_until


class PaidImages:
    """A stand-in for a paid image model: counts what it was asked to make."""

    name = "paid-model"
    supports_reference = False

    def __init__(self):
        self.calls = 0

    async def generate(self, prompt, size, *, scene_number=0, references=None):
        self.calls += 1
        return ImageResult(
            render_card(scene_number, "Triumph", "x", "64x96", False), self.name, "generate"
        )


@pytest.fixture
def paid():
    images = PaidImages()
    regs = []

    def make(**env):
        env.setdefault("continuity", "off")  # automatic fixes are guarded in test_continuity_app.py
        settings = load_settings({k.upper(): v for k, v in env.items()})
        reg = JobRegistry(
            settings,
            pipeline_factory=lambda s, lim: Pipeline(
                images, LocalStore(s.data_path), CsvLog(s.data_path), lim, s
            ),
        )
        regs.append(reg)
        return reg

    yield make, images
    for r in regs:
        r.shutdown()


def new_job(reg):
    s = story.offline_story(quiz.validate(quiz.defaults()).answers)
    return reg.create_job(s, [sc.text for sc in s.scenes], owner="me", size="64x96")


def test_story_limit_refuses_regeneration_without_spending(paid):
    make, images = paid
    reg = make(max_images_per_story=21)
    job_id = new_job(reg)
    wait_until(lambda: reg.get(job_id).done)
    reg.reject(job_id, 0, ["Wrong action"])
    wait_until(lambda: reg.get(job_id).done and len(reg.get(job_id).slots[0].versions) == 2)
    calls = images.calls
    with pytest.raises(GuardError, match="MAX_IMAGES_PER_STORY"):
        reg.reject(job_id, 1, ["Wrong action"])
    assert images.calls == calls == 21
    # The refused image keeps its place: still ready for review.
    assert reg.get(job_id).slots[1].status is SlotStatus.READY
    assert reg.budget_left(reg.get(job_id))["story"] == 0


def test_per_image_regeneration_limit(paid):
    make, images = paid
    reg = make(max_regenerations_per_image=1)
    job_id = new_job(reg)
    wait_until(lambda: reg.get(job_id).done)
    reg.reject(job_id, 3)
    wait_until(lambda: reg.get(job_id).done and len(reg.get(job_id).slots[3].versions) == 2)
    with pytest.raises(GuardError, match="MAX_REGENERATIONS_PER_IMAGE"):
        reg.reject(job_id, 3)
    assert images.calls == 21


class SlowLog(CsvLog):
    """Scene 4's first log row waits for the gate: its run has ended, its task has not."""

    def __init__(self, root, gate):
        super().__init__(root)
        self.gate = gate

    def log_image(self, row):
        if (
            row["scene"] == 4 and row["status"] == "ready"
        ):  # not the review's or the regeneration's row
            self.gate.wait(30)
        super().log_image(row)


def test_a_reject_while_the_last_run_still_logs_is_not_dropped():
    images, gate = PaidImages(), threading.Event()
    reg = JobRegistry(
        load_settings(
            {"MAX_REGENERATIONS_PER_IMAGE": 1, "CONTINUITY": "off"}
        ),  # the run logs its own row
        pipeline_factory=lambda s, lim: Pipeline(
            images, LocalStore(s.data_path), SlowLog(s.data_path, gate), lim, s
        ),
    )
    try:
        job_id = new_job(reg)
        wait_until(lambda: reg.get(job_id).done)  # scene 4 is ready; its row is not logged yet
        reg.reject(job_id, 3)
        # Regenerating, not silently ignored: in flight, or (on a busy machine, before this
        # thread reads it) already made again; a dropped reject leaves one version, ready.
        scene = reg.get(job_id).slots[3]
        assert scene.status.in_flight or len(scene.versions) == 2, scene.status
        gate.set()
        wait_until(lambda: reg.get(job_id).done and len(reg.get(job_id).slots[3].versions) == 2)
        with pytest.raises(GuardError, match="MAX_REGENERATIONS_PER_IMAGE"):
            reg.reject(job_id, 3)
        assert images.calls == 21
    finally:
        gate.set()
        reg.shutdown()


def test_daily_budget_is_shared_by_every_story(paid):
    make, images = paid
    reg = make(daily_image_budget=30)
    first = new_job(reg)
    wait_until(lambda: reg.get(first).done)
    with pytest.raises(GuardError, match="DAILY_IMAGE_BUDGET"):
        new_job(reg)
    assert images.calls == 20
    assert reg.images_today() == 20
    # The budget is kept on disk: a restarted app remembers what it spent today.
    assert make(daily_image_budget=30).images_today() == 20


def test_offline_mode_is_free_and_unguarded():
    reg = JobRegistry(load_settings({"MAX_IMAGES_PER_STORY": 20, "CONTINUITY": "off"}))
    try:
        job_id = new_job(reg)
        wait_until(lambda: reg.get(job_id).done)
        reg.reject(job_id, 0)
        wait_until(lambda: reg.get(job_id).done and len(reg.get(job_id).slots[0].versions) == 2)
        assert reg.images_today() == 0
    finally:
        reg.shutdown()

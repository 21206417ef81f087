"""Never paying twice, at the engine level: clips submitted through videojobs survive a
stop of the registry and are collected by the next one without a second submission."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from foxpipe.domain.models import ClipStatus
from foxpipe.engine import videojobs
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers.video_prices import clip_price
from tests.conftest import wait_until
from tests.fakes.videoapi import FakeHailuo, FakeKling
from tests.video_helpers import (
    HAILUO_KEY,
    KLING_AK,
    KLING_SK,
    approved_job,
    make_clip,
    video_settings,
)


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


@pytest.fixture
def fakes(clip_bytes):
    made = {
        "kling": FakeKling(clip_bytes, KLING_AK, KLING_SK).start(),
        "hailuo": FakeHailuo(clip_bytes, HAILUO_KEY).start(),
    }
    yield made
    for f in made.values():
        f.stop()


@pytest.fixture
def registries():
    made: list[JobRegistry] = []
    yield made
    for r in made:
        r.shutdown()


def settings_for(vendor: str, tmp_path, fake, **kw):
    # The story video at tests/conftest.py's Short size and frame rate (video_settings builds
    # Settings without the environment): no test here looks at its pixels, and the frames
    # sent to the vendor keep their own size (1080x1920: slideshow.output_size of the job).
    kw.setdefault("short_size", "270x480")
    kw.setdefault("short_fps", 12)
    if vendor == "kling":
        return video_settings(
            tmp_path / "data",
            kling_access_key=KLING_AK,
            kling_secret_key=KLING_SK,
            kling_base_url=fake.url,
            **kw,
        )
    return video_settings(
        tmp_path / "data", hailuo_api_key=HAILUO_KEY, hailuo_base_url=fake.url, **kw
    )


def video(reg: JobRegistry, job_id: str):
    j = reg.get(job_id)
    return j.video if j else None


def add_hero_sheet(reg: JobRegistry, job_id: str, tmp_path) -> tuple[int, int]:
    path = tmp_path / "hero.png"
    Image.new("RGB", (300, 200), (250, 120, 0)).save(path)
    reg.mutate(job_id, lambda j: j.references.update(base=str(path)))
    return 300, 200


CASES = [
    ("kling", {"kling_model": "kling-v3-omni"}),
    ("hailuo", {"hailuo_model": "MiniMax-H3"}),
    ("hailuo", {}),
]


@pytest.mark.parametrize(("vendor", "models"), CASES)
def test_restart_collects_every_submitted_clip_without_submitting_again(
    tmp_path, fakes, registries, vendor, models
):
    fake = fakes[vendor]
    settings = settings_for(vendor, tmp_path, fake, **models)
    reg = JobRegistry(settings)
    registries.append(reg)
    job_id = approved_job(reg, 3)
    add_hero_sheet(reg, job_id, tmp_path)
    fake.hold()  # the vendor is still making the clips when the app stops
    assert videojobs.start(reg, job_id, vendor, scenes=[0, 1, 2], seconds_per_scene=0.5) == ""
    wait_until(
        lambda: (
            (v := video(reg, job_id))
            and all(c.status is ClipStatus.SUBMITTED and c.task_id for c in v.clips)
        ),
        timeout=30,
    )
    reg.shutdown()  # the app stops
    saved = reg.store.get_job(job_id)  # what the store kept when the app stopped
    assert [c.status for c in saved.video.clips] == [ClipStatus.SUBMITTED] * 3
    assert sorted(c.task_id.rsplit(":", 1)[-1] for c in saved.video.clips) == sorted(fake.tasks)
    fake.release()  # ... and finishes them while the app is down
    assert fake.submissions == 3

    reg2 = JobRegistry(settings)  # the app starts again on the same data folder
    registries.append(reg2)
    reg2.start()
    v = wait_until(lambda: (x := video(reg2, job_id)) and not x.running and x, timeout=60)
    assert [c.status for c in v.clips] == [ClipStatus.READY] * 3, [c.error for c in v.clips]
    assert v.status == "done" and v.path
    assert fake.submissions == 3 and len(fake.creates()) == 3  # exactly one submission per clip
    assert all(c.submissions == 1 for c in v.clips)
    per_clip = videojobs.clip_maker(settings, vendor).cost_per_clip
    assert v.spent_usd == pytest.approx(3 * per_clip)


def test_a_clip_not_yet_submitted_when_the_app_stops_is_failed_for_retry(
    tmp_path, fakes, registries
):
    fake = fakes["kling"]
    # The submission gets no answer before the stop, however slow the machine: the client
    # and the fake wait 30 s (the fake's threads do not hold the test's end).
    fake.script = ["hang"]
    fake.hang_seconds = 30.0
    settings = settings_for("kling", tmp_path, fake, video_http_timeout=30.0)
    reg = JobRegistry(settings)
    registries.append(reg)
    job_id = approved_job(reg, 2)
    videojobs.start(reg, job_id, "kling", scenes=[0], seconds_per_scene=0.5)
    wait_until(lambda: len(fake.requests) >= 1, timeout=20)
    reg.shutdown()
    reg2 = JobRegistry(settings)
    registries.append(reg2)
    reg2.start()
    v = video(reg2, job_id)
    assert v.clips[0].status is ClipStatus.FAILED and not v.clips[0].task_id
    assert fake.submissions == 0
    assert videojobs.retry_clip(reg2, job_id, 0) == ""  # Retry is the way to submit it
    v = wait_until(lambda: (x := video(reg2, job_id)) and not x.running and x, timeout=60)
    assert v.clips[0].status is ClipStatus.READY and fake.submissions == 1


def two_failed_clips(tmp_path, fakes, registries):  # noqa: ANN001, ANN201
    """A video of two scenes whose clips the vendor failed: (fake, engine, job id, video)."""
    fake = fakes["hailuo"]
    fake.task_outcome = "failed"
    reg = JobRegistry(settings_for("hailuo", tmp_path, fake))
    registries.append(reg)
    job_id = approved_job(reg, 2)
    videojobs.start(reg, job_id, "hailuo", scenes=[0, 1], seconds_per_scene=0.5)
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=60)
    return fake, reg, job_id, v


def test_a_failing_poll_never_resubmits(tmp_path, fakes, registries):
    fake, reg, job_id, v = two_failed_clips(tmp_path, fakes, registries)
    assert all(c.status is ClipStatus.FAILED and "could not make" in c.error for c in v.clips)
    assert fake.submissions == 2  # a task the vendor failed is not submitted again by itself
    fake.task_outcome = "succeed"
    assert videojobs.retry_clip(reg, job_id, 1) == ""
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=60)
    assert v.clip(1).status is ClipStatus.READY and v.clip(1).submissions == 2
    assert fake.submissions == 3
    assert v.spent_usd == pytest.approx(3 * videojobs.clip_cost(reg.settings, "hailuo"))


def test_a_retry_while_the_failed_task_is_still_finishing_runs_after_it(
    tmp_path, fakes, registries
):
    """The failed attempt stores its end, then its task still finishes (assembles, returns):
    a Retry pressed in between runs once that task has ended; it is never left queued."""
    fake, reg, job_id, _ = two_failed_clips(tmp_path, fakes, registries)
    wait_until(lambda: not reg.busy(job_id, "clip1"))  # its own task has ended
    release = threading.Event()

    async def still_finishing() -> None:  # the failed attempt's task, held at its last step
        await asyncio.to_thread(release.wait, 30)

    assert reg.submit(job_id, "clip1", still_finishing)
    fake.task_outcome = "succeed"
    assert videojobs.retry_clip(reg, job_id, 1) == ""
    assert video(reg, job_id).clip(1).status is ClipStatus.QUEUED  # waits for the task before it
    assert videojobs.retry_clip(reg, job_id, 1) != ""  # a second Retry: one submission
    assert fake.submissions == 2
    release.set()
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=30)
    assert v.clip(1).status is ClipStatus.READY and fake.submissions == 3


@pytest.mark.parametrize(("model", "sent"), [("kling-v3-omni", True), ("kling-v2-5-turbo", False)])
def test_the_hero_sheet_goes_with_the_frame_when_the_model_takes_it(
    tmp_path, fakes, registries, model, sent
):
    fake = fakes["kling"]
    reg = JobRegistry(settings_for("kling", tmp_path, fake, kling_model=model))
    registries.append(reg)
    job_id = approved_job(reg, 2)
    sheet = add_hero_sheet(reg, job_id, tmp_path)
    videojobs.start(reg, job_id, "kling", scenes=[1], seconds_per_scene=0.5)
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=60)
    assert v.clips[0].status is ClipStatus.READY, v.clips[0].error
    body = fake.creates()[0]["json"]
    if sent:
        frame, hero = (base64.b64decode(i["image"]) for i in body["image_list"])
        with Image.open(io.BytesIO(frame)) as a, Image.open(io.BytesIO(hero)) as b:
            assert a.size == (1080, 1920) and b.size == sheet
            assert b.getpixel((10, 10))[0] > 200  # the orange sheet, not another frame
        assert "reference sheet" in body["prompt"] and v.clips[0].references == 1
    else:
        assert "image_list" not in body and "image" in body and v.clips[0].references == 0


def test_estimate_uses_the_price_table_and_the_override(tmp_path, fakes):
    s = settings_for(
        "hailuo", tmp_path, fakes["hailuo"], hailuo_model="MiniMax-H3", hailuo_duration=10
    )
    assert videojobs.estimate(s, "hailuo", 20) == pytest.approx(20 * 0.08 * 10)
    assert clip_price("hailuo", "MiniMax-H3", "768P", 10).usd == pytest.approx(0.8)
    choice = next(p for p in videojobs.providers(s) if p.key == "hailuo")
    assert (
        choice.references
        and "checked 2026-11-25" in choice.price_note
        and "MiniMax-H3" in choice.label
    )
    s2 = settings_for("hailuo", tmp_path, fakes["hailuo"], hailuo_cost_per_clip=0.5)
    assert videojobs.estimate(s2, "hailuo", 20) == pytest.approx(10.0)
    assert (
        "your price setting"
        in next(p for p in videojobs.providers(s2) if p.key == "hailuo").price_note
    )


def test_a_submission_without_an_answer_is_not_sent_again(tmp_path, fakes, registries):
    """A create that timed out may have been accepted: it is not retried by itself."""
    fake = fakes["kling"]
    fake.script, fake.hang_seconds = ["hang"], 1.0
    reg = JobRegistry(settings_for("kling", tmp_path, fake, video_http_timeout=0.3, clip_retries=3))
    registries.append(reg)
    job_id = approved_job(reg, 2)
    videojobs.start(reg, job_id, "kling", scenes=[0], seconds_per_scene=0.5)
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=60)
    assert (
        v.clips[0].status is ClipStatus.FAILED and "may still have accepted it" in v.clips[0].error
    )
    assert len(fake.creates()) == 1


def test_a_refused_connection_is_retried(tmp_path, fakes, registries):
    """Nothing reached the vendor: sending it again costs nothing."""
    from tests.conftest import free_port

    # A port nobody listens on, from outside the range any other worker's bind(0) draws from.
    dead = f"http://127.0.0.1:{free_port()}"
    reg = JobRegistry(
        video_settings(
            tmp_path / "data",
            kling_access_key=KLING_AK,
            kling_secret_key=KLING_SK,
            kling_base_url=dead,
            clip_retries=2,
        )
    )
    registries.append(reg)
    job_id = approved_job(reg, 2)
    videojobs.start(reg, job_id, "kling", scenes=[0], seconds_per_scene=0.5)
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=60)
    assert v.clips[0].status is ClipStatus.FAILED and v.clips[0].attempts == 2
    assert "Gave up after 2 attempts" in v.clips[0].error


def test_start_up_collects_clips_of_jobs_nobody_opened(tmp_path, fakes, registries):
    fake = fakes["hailuo"]
    settings = settings_for("hailuo", tmp_path, fake, hailuo_model="MiniMax-H3")
    reg = JobRegistry(settings)
    registries.append(reg)
    job_id = approved_job(reg, 2)
    other = approved_job(reg, 2)  # a job without a video is left alone
    fake.hold()
    videojobs.start(reg, job_id, "hailuo", scenes=[0, 1], seconds_per_scene=0.5)
    wait_until(lambda: all(c.task_id for c in video(reg, job_id).clips), timeout=30)
    reg.shutdown()
    fake.release()
    (tmp_path / "data" / "jobs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "data" / "jobs" / "broken.json").write_text(
        "{not json", encoding="utf-8"
    )  # an old job file

    reg2 = JobRegistry(settings)
    registries.append(reg2)
    fake.hold_downloads()  # both clips are caught while they are fetched
    reg2.start()  # the app's first visit starts the engine: it collects both clips by itself
    wait_until(lambda: fake.downloads_waiting == 2, timeout=30)
    downloading = [ClipStatus.DOWNLOADING] * 2
    assert [c.status for c in video(reg2, job_id).clips] == downloading
    # Already being collected: nothing is started twice, nor set back to "submitted" (which
    # refused the clip's READY: it stayed submitted for ever).
    assert videojobs.resume_all(reg2) == 0
    assert [c.status for c in video(reg2, job_id).clips] == downloading
    assert reg2.read(other, lambda j: j.video) is None  # a job without a video is left alone
    fake.release_downloads()
    v = wait_until(lambda: (x := video(reg2, job_id)) and not x.running and x, timeout=60)
    assert [c.status for c in v.clips] == [ClipStatus.READY] * 2 and fake.submissions == 2


def test_tasks_running_at_the_vendor_stay_within_its_limit(tmp_path, fakes, registries):

    fake = fakes["kling"]  # Kling allows a few tasks at once per resource pack
    reg = JobRegistry(settings_for("kling", tmp_path, fake))
    registries.append(reg)
    job_id = approved_job(reg, 5)
    fake.hold()
    videojobs.start(reg, job_id, "kling", scenes=[0, 1, 2, 3, 4], seconds_per_scene=0.3)
    cap = videojobs.clip_maker(reg.settings, "kling").max_concurrent
    wait_until(lambda: fake.submissions == cap, timeout=30)
    time.sleep(0.5)  # while the vendor works, no further task is started
    assert fake.submissions == cap
    fake.release()
    v = wait_until(lambda: (x := video(reg, job_id)) and not x.running and x, timeout=90)
    assert [c.status for c in v.clips] == [ClipStatus.READY] * 5 and fake.submissions == 5


def test_clips_finishing_together_make_one_story_video(tmp_path, fakes, registries, monkeypatch):
    fake = fakes["hailuo"]
    reg = JobRegistry(settings_for("hailuo", tmp_path, fake))
    registries.append(reg)
    job_id = approved_job(reg, 3)
    from foxpipe.engine import shortjobs

    renders: list[str] = []
    real_render = shortjobs.render

    def counted(*args, **kwargs):  # the real render, counted
        result = real_render(*args, **kwargs)
        renders.append(str(result.video))
        return result

    monkeypatch.setattr(shortjobs, "render", counted)
    fake.hold()
    videojobs.start(reg, job_id, "hailuo", scenes=[0, 1, 2], seconds_per_scene=0.3)
    wait_until(lambda: fake.submissions == 3, timeout=30)
    fake.release()  # all three finish at the same poll
    v = wait_until(
        lambda: (x := video(reg, job_id)) and not x.running and x.status == "done" and x, timeout=90
    )
    # Every clip's task asks for the assembly when it ends (and renders there): once all three
    # tasks have ended, any second assembly has been rendered and counted.
    wait_until(lambda: not any(reg.busy(job_id, f"clip{i}") for i in range(3)), timeout=90)
    assert renders == [v.path] and Path(v.path).name == "story.mp4"

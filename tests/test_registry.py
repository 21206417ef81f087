import json
import threading
from pathlib import Path

import pytest

from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.models import SlotStatus
from foxpipe.engine.jobs import JobRegistry

from .conftest import wait_until


@pytest.fixture
def registry():
    reg = JobRegistry(load_settings({}))
    yield reg
    reg.shutdown()


def make_story():
    return story.offline_story(quiz.validate(quiz.defaults()).answers)


def new_job(reg, start=True):
    s = make_story()
    return reg.create_job(s, [sc.text for sc in s.scenes], owner="tester", size="256x384", start=start)


def test_job_ids_are_unguessable_and_unique(registry):
    ids = {new_job(registry, start=False) for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) >= 22 for i in ids)  # >= 128 bits of URL-safe base64


def test_offline_job_reaches_20_ready_images_on_disk(registry):
    job_id = new_job(registry)
    job = wait_until(lambda: (j := registry.get(job_id)) and j.done and j)
    assert [s.status for s in job.slots] == [SlotStatus.READY] * 20
    for s in job.slots:
        assert s.image is not None
        assert Path(s.image.local_path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wait_until(lambda: registry.running(job_id) == 0)  # tasks end just after their last update


def test_snapshots_are_copies(registry):
    job_id = new_job(registry, start=False)
    snap = registry.get(job_id)
    snap.slots[0].status = SlotStatus.APPROVED
    snap.story.title = "changed"
    fresh = registry.get(job_id)
    assert fresh.slots[0].status is SlotStatus.QUEUED
    assert fresh.story.title != "changed"


def test_concurrent_updates_are_not_lost_and_snapshots_are_consistent(registry):
    job_id = new_job(registry, start=False)
    threads, per_thread, errors = 8, 200, []

    def bump(j):
        # Two fields that must always move together.
        j.slots[0].attempts += 1
        j.slots[1].attempts += 1

    def writer():
        for _ in range(per_thread):
            registry.mutate(job_id, bump)

    def reader():
        for _ in range(per_thread):
            snap = registry.get(job_id)
            if snap.slots[0].attempts != snap.slots[1].attempts:
                errors.append((snap.slots[0].attempts, snap.slots[1].attempts))

    pool = [threading.Thread(target=writer) for _ in range(threads)] + [threading.Thread(target=reader) for _ in range(4)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    final = registry.get(job_id)
    assert final.slots[0].attempts == threads * per_thread
    assert not errors


def test_approve_reject_regenerates_and_keeps_versions(registry):
    job_id = new_job(registry)
    wait_until(lambda: registry.get(job_id).done)
    registry.approve(job_id, [0])
    registry.reject(job_id, 1, ["Wrong action"], "show the water")
    job = wait_until(lambda: (j := registry.get(job_id)) and j.done and j)
    assert job.slots[0].status is SlotStatus.APPROVED
    s1 = job.slots[1]
    assert s1.status is SlotStatus.READY
    assert len(s1.versions) == 2 and s1.current == 1
    assert "FIX FROM REVIEW" in s1.versions[1].prompt and "show the water" in s1.versions[1].prompt
    registry.restore_version(job_id, 1, 0)
    assert registry.get(job_id).slots[1].current == 0
    assert registry.approve_all(job_id) == 19
    assert registry.get(job_id).all_approved


def test_cancel_marks_unfinished_slots_failed(monkeypatch, tmp_path):
    monkeypatch.setenv("FOXPIPE_OFFLINE_DELAY", "0.5")
    reg = JobRegistry(load_settings({}))
    try:
        job_id = new_job(reg)
        reg.cancel(job_id)
        job = wait_until(lambda: (j := reg.get(job_id)) and j.done and j)
        assert all(s.status in (SlotStatus.FAILED, SlotStatus.READY) for s in job.slots), [(s.status, s.error) for s in job.slots]
        assert any("Stopped" in s.error for s in job.slots)
        assert wait_until(lambda: reg.running(job_id) == 0)
        reg.retry_failed(job_id)
        job = wait_until(lambda: (j := reg.get(job_id)) and j.done and j, timeout=30)
        assert all(s.status is SlotStatus.READY for s in job.slots)
    finally:
        reg.shutdown()


def test_job_survives_a_restart_of_the_app(registry, clean_env):
    job_id = new_job(registry)
    wait_until(lambda: registry.get(job_id).done)
    registry.approve(job_id, [0, 1])
    registry.shutdown()
    reborn = JobRegistry(load_settings({}))
    try:
        job = reborn.get(job_id)
        assert job is not None
        assert [s.status for s in job.slots[:3]] == [SlotStatus.APPROVED, SlotStatus.APPROVED, SlotStatus.READY]
        assert job.slots[0].image.local_path
    finally:
        reborn.shutdown()


def test_in_flight_work_is_marked_failed_after_a_restart(registry, clean_env):
    job_id = new_job(registry, start=False)
    path = clean_env / "jobs" / f"{job_id}.json"
    wait_until(path.exists)  # jobs are written by a writer thread, a moment later
    data = json.loads(path.read_text())
    data["slots"][4]["status"] = "generating"
    path.write_text(json.dumps(data))
    reborn = JobRegistry(load_settings({}))
    try:
        job = reborn.get(job_id)
        assert job.slots[4].status is SlotStatus.FAILED
        assert "Retry" in job.slots[4].error
    finally:
        reborn.shutdown()


@pytest.mark.parametrize("bad", ["", "nope", "../../etc/passwd", "x" * 500, None, 42, "a/b"])
def test_unknown_or_malformed_ids_are_not_found(registry, bad):
    assert registry.get(bad) is None


def test_finished_jobs_are_evicted_from_memory_but_kept_on_disk():
    reg = JobRegistry(load_settings({"JOB_TTL_HOURS": "0.0001"}))  # 0.36 s
    try:
        job_id = new_job(reg)
        wait_until(lambda: reg.get(job_id).done)
        reg.approve(job_id, [0])
        wait_until(lambda: job_id not in reg._jobs, timeout=10)
        again = reg.get(job_id)  # reloaded from disk
        assert again.slots[0].status is SlotStatus.APPROVED
    finally:
        reg.shutdown()


def test_shutdown_stops_the_worker_thread():
    reg = JobRegistry(load_settings({}))
    new_job(reg)
    thread = reg._thread
    assert thread.is_alive()
    reg.shutdown()
    assert not thread.is_alive()


def test_a_late_progress_update_cannot_revive_a_stopped_slot(registry):
    from foxpipe.engine.generation import set_slot

    job_id = new_job(registry, start=False)
    registry.mutate(job_id, lambda j: setattr(j.slots[3], "status", SlotStatus.FAILED))
    set_slot(registry, job_id, 3, status=SlotStatus.GENERATING, attempts=2)
    slot = registry.get(job_id).slots[3]
    assert slot.status is SlotStatus.FAILED and slot.attempts == 0
    set_slot(registry, job_id, 4, status=SlotStatus.GENERATING)  # still queued: applies
    assert registry.get(job_id).slots[4].status is SlotStatus.GENERATING

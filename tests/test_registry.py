import asyncio
import threading
from pathlib import Path

import pytest

from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.lifecycle import SlotEvent, slot_event
from foxpipe.domain.models import SlotStatus
from foxpipe.engine.jobs import JobRegistry
from foxpipe.store import Store

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
    return reg.create_job(
        s, [sc.text for sc in s.scenes], owner="tester", size="256x384", start=start
    )


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
    # 8 writers of 50 changes each. The readers read for as long as any writer writes (at
    # least per_thread times each), so every write happens while snapshots are taken. Measured
    # with a broken Store.update_job, 10 tries each: reading and writing in two transactions
    # lost about 3 changes in 4 (as at 8 x 200); storing a change in two commits was seen
    # half-done over 1,000 times a try (8 x 200 with readers of 200 reads each: 168 and more).
    threads, per_thread, errors = 8, 50, []

    def bump(j):
        # Two fields that must always move together.
        j.slots[0].attempts += 1
        j.slots[1].attempts += 1

    def writer():
        for _ in range(per_thread):
            registry.mutate(job_id, bump)

    writers = [threading.Thread(target=writer) for _ in range(threads)]

    def reader():
        reads = 0
        while reads < per_thread or any(w.is_alive() for w in writers):
            snap = registry.get(job_id)
            reads += 1
            if snap.slots[0].attempts != snap.slots[1].attempts:
                errors.append((snap.slots[0].attempts, snap.slots[1].attempts))

    pool = writers + [threading.Thread(target=reader) for _ in range(4)]
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
        assert all(s.status in (SlotStatus.FAILED, SlotStatus.READY) for s in job.slots), [
            (s.status, s.error) for s in job.slots
        ]
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
        assert [s.status for s in job.slots[:3]] == [
            SlotStatus.APPROVED,
            SlotStatus.APPROVED,
            SlotStatus.READY,
        ]
        assert job.slots[0].image.local_path
    finally:
        reborn.shutdown()


def test_after_a_restart_cut_off_requests_fail_and_queued_images_start_again(registry, clean_env):
    job_id = new_job(registry, start=False)

    def hard_kill(j):  # what a killed process leaves in the store
        j.slots[4].status, j.slots[4].generations = SlotStatus.GENERATING, 1
        j.slots[5].status, j.slots[5].generations = SlotStatus.QUEUED, 1

    registry.mutate(job_id, hard_kill)
    registry.shutdown()
    reborn = JobRegistry(load_settings({}))
    try:
        assert reborn.pipeline is not None  # the engine starts (the first page visit does this)
        job = wait_until(
            lambda: (j := reborn.get(job_id)) and j.slots[5].status is SlotStatus.READY and j
        )
        assert job.slots[4].status is SlotStatus.FAILED and "Retry" in job.slots[4].error
        assert job.slots[5].generations == 1  # resumed, not paid for again
        assert job.slots[6].status is SlotStatus.QUEUED  # never started (awaiting the hero sheet)
    finally:
        reborn.shutdown()


@pytest.mark.parametrize("bad", ["", "nope", "../../etc/passwd", "x" * 500, None, 42, "a/b"])
def test_unknown_or_malformed_ids_are_not_found(registry, bad):
    assert registry.get(bad) is None


def test_a_change_is_visible_at_once_to_every_reader_of_the_store(registry):
    job_id = new_job(registry)
    wait_until(lambda: registry.get(job_id).done)
    registry.approve(job_id, [0])
    other = Store(registry.store.url)  # e.g. History in another process
    try:
        assert other.get_job(job_id).slots[0].status is SlotStatus.APPROVED
        assert [r.approved for r in other.list_jobs() if r.id == job_id] == [1]
    finally:
        other.close()


def test_shutdown_stops_the_worker_thread():
    reg = JobRegistry(load_settings({}))
    new_job(reg)
    thread = reg._thread
    assert thread.is_alive()
    reg.shutdown()
    assert not thread.is_alive()


def test_a_late_update_from_a_stopped_run_cannot_revive_the_slot(registry):
    from foxpipe.engine.generation import slot_step

    job_id = new_job(registry, start=False)
    registry.mutate(job_id, lambda j: slot_event(j.slots[3], SlotEvent.QUEUE))  # run 1
    registry.mutate(job_id, lambda j: slot_event(j.slots[3], SlotEvent.FAIL, run=1))  # stopped
    registry.mutate(job_id, lambda j: slot_event(j.slots[3], SlotEvent.QUEUE))  # Retry: run 2
    assert not slot_step(registry, job_id, 3, SlotEvent.START, 1, attempts=2)  # run 1 answers late
    slot = registry.get(job_id).slots[3]
    assert slot.status is SlotStatus.QUEUED and slot.attempts == 0
    assert slot_step(registry, job_id, 3, SlotEvent.START, 2)  # the current run applies
    assert registry.get(job_id).slots[3].status is SlotStatus.GENERATING


def test_a_worker_that_cannot_start_says_why_and_the_next_try_starts(tmp_path):
    """The worker's set-up (imports, clients) may be slow or fail; the caller waits for it,
    gets the reason when it fails, and a later call starts a working worker."""
    from foxpipe.providers.registry import build_pipeline

    calls = []

    def factory(settings, limiter):  # noqa: ANN001, ANN202
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no space left on device")
        return build_pipeline(settings, limiter)

    reg = JobRegistry(load_settings({}), factory, store=Store(f"sqlite:///{tmp_path}/s.db"))
    try:
        with pytest.raises(RuntimeError, match="could not start: no space left on device"):
            new_job(reg)
        job_id = new_job(reg)
        assert wait_until(lambda: reg.get(job_id).done, timeout=30)
        assert all(s.status is SlotStatus.READY for s in reg.get(job_id).slots)
    finally:
        reg.shutdown()


def test_work_submitted_after_running_work_runs_once_it_ends_and_stops_with_it(registry):
    gate, started = threading.Event(), threading.Event()
    order: list[str] = []

    async def first() -> None:
        started.set()
        try:
            await asyncio.to_thread(gate.wait, 30)
        except asyncio.CancelledError:
            order.append("first stopped")
            raise
        order.append("first")

    async def second() -> None:
        order.append("second")

    assert registry.submit("j", "k", first)
    assert not registry.submit("j", "k", second)  # one at a time: refused without ``after``
    assert registry.submit("j", "k", second, after=True)
    assert registry.busy("j", "k") and order == []
    gate.set()
    wait_until(lambda: not registry.busy("j", "k"))
    assert order == ["first", "second"]

    # Stopped while it waits: the work before it (no longer tracked on its own) stops too.
    gate.clear()
    started.clear()
    order.clear()
    assert registry.submit("j", "k", first)
    wait_until(started.is_set)
    assert registry.submit("j", "k", second, after=True)
    registry.stop_work("j", "k")
    wait_until(lambda: order == ["first stopped"])
    assert not registry.busy("j", "k")
    gate.set()


def test_working_says_whether_anything_is_in_flight(registry):
    gate = threading.Event()

    async def hold() -> None:
        await asyncio.to_thread(gate.wait, 30)

    assert not registry.working()
    assert registry.submit("j", "check:3", hold)
    assert registry.working() and registry.working("j") and registry.working("j", "check:")
    assert not registry.working("j", "video") and not registry.working("other")
    gate.set()
    assert wait_until(lambda: not registry.working())
    assert not registry.working("j", "check:")

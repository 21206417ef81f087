"""The lifecycle: every (status, event) pair of the slot, clip and video tables, stale runs, and
Hypothesis over random event sequences and over the engine's reviewer operations."""

from __future__ import annotations

import contextlib
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from foxpipe.config import load_settings
from foxpipe.domain import quiz, story
from foxpipe.domain.lifecycle import (
    CLIP_TABLE,
    RUN_EVENTS,
    SLOT_TABLE,
    TERMINAL,
    VIDEO_TABLE,
    Refused,
    SlotEvent,
    VideoStatus,
    can,
    clip_event,
    slot_event,
    video_event,
)
from foxpipe.domain.models import Clip, ClipStatus, ImageVersion, Scene, Slot, SlotStatus, Video
from foxpipe.engine.jobs import GuardError, JobRegistry

from .conftest import wait_until

S, E, C, V = SlotStatus, SlotEvent, ClipStatus, VideoStatus

# The documented lifecycle (DESIGN.md and the module's docstring), written out independently of
# the module's table: queued -> generating -> ready -> approved; ready -> queued (reject);
# generating -> failed; failed -> queued (retry); a waiting attempt goes back to queued; a run
# stopped while it waited fails; any kept version can be restored or approved.
SLOT_SPEC = {
    (S.QUEUED, E.QUEUE): S.QUEUED,
    (S.READY, E.QUEUE): S.QUEUED,
    (S.FAILED, E.QUEUE): S.QUEUED,
    (S.QUEUED, E.START): S.GENERATING,
    (S.GENERATING, E.WAIT): S.QUEUED,
    (S.GENERATING, E.IMAGE): S.READY,
    (S.QUEUED, E.FAIL): S.FAILED,
    (S.GENERATING, E.FAIL): S.FAILED,
    (S.READY, E.APPROVE): S.APPROVED,
    (S.FAILED, E.APPROVE): S.APPROVED,
    (S.APPROVED, E.UNAPPROVE): S.READY,
    (S.READY, E.RESTORE): S.READY,
    (S.FAILED, E.RESTORE): S.READY,
    (S.APPROVED, E.RESTORE): S.READY,
}

SLOT_PAIRS = list(itertools.product(SlotStatus, SlotEvent))


def new_slot(status: SlotStatus = S.QUEUED, *, image: bool = True, generations: int = 1) -> Slot:
    s = Slot(
        index=4, scene=Scene(5, "beat", "text"), prompt="p", status=status, generations=generations
    )
    if image:
        add_version(s)
    return s


def add_version(s: Slot) -> None:
    s.versions.append(
        ImageVersion(url="u", local_path="/v.png", prompt=s.prompt, model="m", path="offline")
    )
    s.current = len(s.versions) - 1


def state(s: Slot) -> tuple:
    return (s.status, s.generations, s.error, s.current, len(s.versions), s.started, s.finished)


# ---------------------------------------------------------------------------------- slots
def test_the_slot_table_is_the_documented_lifecycle():
    assert SLOT_TABLE == SLOT_SPEC
    assert {S.READY, S.APPROVED, S.FAILED} == TERMINAL
    assert {E.START, E.WAIT, E.IMAGE, E.FAIL} == RUN_EVENTS
    assert set(SLOT_TABLE.values()) == set(SlotStatus)  # every status is reachable
    for status in set(SlotStatus) - TERMINAL:  # whatever is in flight can always fail: no hang
        assert SLOT_TABLE[(status, E.FAIL)] is S.FAILED
    assert {st_ for (st_, ev) in SLOT_TABLE if ev is E.QUEUE} == {
        S.QUEUED,
        S.READY,
        S.FAILED,
    }  # never approved


@pytest.mark.parametrize(
    ("status", "event"), SLOT_PAIRS, ids=[f"{s.value}-{e.value}" for s, e in SLOT_PAIRS]
)
def test_every_slot_pair_is_applied_or_refused(status, event):
    s = new_slot(status, generations=3)
    s.error = "an earlier error"
    run = s.generations if event in RUN_EVENTS else None
    before = state(s)
    expected = SLOT_SPEC.get((status, event))
    if expected is None:
        with pytest.raises(Refused) as e:
            slot_event(s, event, run=run, now=100.0)
        assert not e.value.stale
        assert "scene 5" in e.value.reason and status.value in e.value.reason
        assert state(s) == before  # a refusal changes nothing
        assert not can(s, event)
        return
    assert can(s, event)
    assert slot_event(s, event, run=run, now=100.0) is expected
    assert s.status is expected
    assert s.generations == (4 if event is E.QUEUE else 3)
    if event is E.QUEUE:
        assert s.error == ""
    if event is E.START:
        assert s.started == 100.0
    if event in (E.IMAGE, E.FAIL):
        assert s.finished == 100.0
    if event is E.FAIL:
        assert s.error == "an earlier error"  # the engine writes the reason with it


@pytest.mark.parametrize("event", [E.APPROVE, E.RESTORE])
@pytest.mark.parametrize("status", [S.READY, S.FAILED, S.APPROVED])
def test_approve_and_restore_need_an_image(status, event):
    s = new_slot(status, image=False)
    if (status, event) not in SLOT_TABLE:
        return
    assert not can(s, event)
    with pytest.raises(Refused, match="no image"):
        slot_event(s, event)
    assert s.status is status


@pytest.mark.parametrize("event", sorted(RUN_EVENTS))
@pytest.mark.parametrize("status", list(SlotStatus))
@pytest.mark.parametrize("offset", [-2, -1, 1])
def test_an_event_of_another_run_is_refused_as_stale(status, event, offset):
    s = new_slot(status, generations=3)
    before = state(s)
    with pytest.raises(Refused) as e:
        slot_event(s, event, run=3 + offset)
    assert e.value.stale
    assert state(s) == before


def test_an_old_run_answering_after_a_retry_cannot_touch_the_new_run():
    s = new_slot(S.QUEUED, image=False, generations=0)
    slot_event(s, E.QUEUE)  # run 1
    slot_event(s, E.START, run=1)
    slot_event(s, E.FAIL, run=1)  # stopped
    slot_event(s, E.QUEUE)  # Retry: run 2
    for ev in (E.START, E.IMAGE, E.FAIL, E.WAIT):
        with pytest.raises(Refused):
            slot_event(s, ev, run=1)
    assert (s.status, s.generations) == (S.QUEUED, 2)
    slot_event(s, E.START, run=2)
    with pytest.raises(Refused):
        slot_event(s, E.IMAGE, run=1)
    assert slot_event(s, E.IMAGE, run=2) is S.READY


# ---------------------------------------------------------------------------------- clips
CLIP_SPEC = {
    (C.QUEUED, C.QUEUED),
    (C.QUEUED, C.SUBMITTED),
    (C.SUBMITTED, C.SUBMITTED),
    (C.SUBMITTED, C.DOWNLOADING),
    (C.DOWNLOADING, C.SUBMITTED),
    (C.DOWNLOADING, C.READY),
    (C.QUEUED, C.FAILED),
    (C.SUBMITTED, C.FAILED),
    (C.DOWNLOADING, C.FAILED),
    (C.FAILED, C.QUEUED),
    (C.READY, C.QUEUED),
}
CLIP_PAIRS = list(itertools.product(ClipStatus, ClipStatus))


def test_the_clip_table_is_the_documented_lifecycle():
    assert {k for k, ok in CLIP_TABLE.items() if ok} == CLIP_SPEC
    # a clip in flight can always fail (it never hangs); a finished one is paid for again only by a Retry
    for status in ClipStatus:
        if status.in_flight:
            assert (status, C.FAILED) in CLIP_SPEC
    assert {new for (old, new) in CLIP_SPEC if not old.in_flight} == {C.QUEUED}


@pytest.mark.parametrize(
    ("old", "new"), CLIP_PAIRS, ids=[f"{a.value}-{b.value}" for a, b in CLIP_PAIRS]
)
def test_every_clip_pair_is_applied_or_refused(old, new):
    clip = Clip(index=2, status=old, task_id="task-1", attempts=1, error="e")
    if (old, new) in CLIP_SPEC:
        assert clip_event(clip, new) is new
        assert clip.status is new
        if new is C.QUEUED:
            assert (clip.attempts, clip.task_id, clip.error) == (2, "", "")
        else:
            assert (clip.attempts, clip.task_id) == (1, "task-1")
    else:
        with pytest.raises(Refused) as e:
            clip_event(clip, new)
        assert not e.value.stale and "clip 3" in e.value.reason
        assert (clip.status, clip.attempts, clip.task_id) == (old, 1, "task-1")


@pytest.mark.parametrize("new", [C.SUBMITTED, C.DOWNLOADING, C.READY, C.FAILED])
def test_a_clip_event_of_an_older_task_is_refused(new):
    clip = Clip(index=0, status=C.DOWNLOADING, task_id="task-2")
    with pytest.raises(Refused) as e:
        clip_event(clip, new, task_id="task-1")
    assert e.value.stale and clip.status is C.DOWNLOADING


@pytest.mark.parametrize("late", [C.FAILED, C.DOWNLOADING, C.READY])
def test_an_old_task_answering_right_after_a_retry_is_refused(late):
    """Retry clears the task id until the new task is submitted: the old task's late answer
    must not fail (or advance) the clip in that gap. (Submitting names the new task.)"""
    clip = Clip(index=0, status=C.SUBMITTED, task_id="old-task")
    clip_event(clip, C.FAILED, task_id="old-task")
    clip_event(clip, C.QUEUED)  # Retry
    with pytest.raises(Refused) as e:
        clip_event(clip, late, task_id="old-task")
    assert e.value.stale
    assert clip.status is C.QUEUED
    # the new task's own events apply
    assert clip_event(clip, C.SUBMITTED, task_id="new-task") is C.SUBMITTED
    assert clip.task_id == "new-task"
    with pytest.raises(Refused):
        clip_event(clip, C.FAILED, task_id="old-task")
    assert clip_event(clip, C.DOWNLOADING, task_id="new-task") is C.DOWNLOADING
    assert clip_event(clip, C.READY, task_id="new-task") is C.READY


# ---------------------------------------------------------------------------------- video
VIDEO_SPEC = {
    (V.IDLE, V.RUNNING),
    (V.RUNNING, V.DONE),
    (V.RUNNING, V.FAILED),
    (V.DONE, V.RUNNING),
    (V.FAILED, V.RUNNING),
    (V.RUNNING, V.RUNNING),
}
VIDEO_PAIRS = list(itertools.product(VideoStatus, VideoStatus))


@pytest.mark.parametrize(
    ("old", "new"), VIDEO_PAIRS, ids=[f"{a.value}-{b.value}" for a, b in VIDEO_PAIRS]
)
def test_every_video_pair_is_applied_or_refused(old, new):
    assert {k for k, ok in VIDEO_TABLE.items() if ok} == VIDEO_SPEC
    v = Video(status=old.value)
    if (old, new) in VIDEO_SPEC:
        assert video_event(v, new) is new
        assert v.status == new.value
    else:
        with pytest.raises(Refused) as e:
            video_event(v, new)
        assert "video" in e.value.reason and v.status == old.value


def test_the_video_model_statuses_are_the_tables():
    assert Video().status == V.IDLE.value
    assert {s.value for s in VideoStatus} == {"idle", "running", "done", "failed"}


# ---------------------------------------------------------------------------------- Hypothesis: any event sequence
events = st.tuples(
    st.sampled_from(list(SlotEvent)),
    st.sampled_from(["current", "old", "future", "none"]),
    st.booleans(),  # add an image version before the event (an image came back)
)


@settings(max_examples=300, deadline=None)
@given(seq=st.lists(events, max_size=60), start=st.sampled_from(list(SlotStatus)))
def test_random_event_sequences_keep_every_invariant(seq, start):
    s = new_slot(start, image=start.has_image, generations=1)
    for event, which, img in seq:
        run = {
            "current": s.generations,
            "old": s.generations - 1,
            "future": s.generations + 1,
            "none": None,
        }[which]
        if img and event is E.IMAGE:
            add_version(s)
        before, gen_before = state(s), s.generations
        try:
            slot_event(s, event, run=run)
        except Refused as e:
            assert state(s) == before  # refused: nothing changed
            assert e.stale == (run is not None and run != gen_before)
        else:
            assert run is None or run == gen_before  # a stale run never changes a slot
        assert isinstance(s.status, SlotStatus)
        assert s.generations >= gen_before
        if s.status is S.APPROVED:
            assert s.image is not None


# ---------------------------------------------------------------------------------- Hypothesis: runs like the engine's
class SlotRuns(RuleBasedStateMachine):
    """One slot, reviewer actions and several runs at once, each run following the engine's
    protocol (START, then WAIT and START again, then IMAGE or FAIL), old runs answering late."""

    @initialize()
    def first_run(self) -> None:
        self.slot = Slot(index=0, scene=Scene(1, "b", "t"), prompt="p")
        self.runs: dict[int, str] = {}  # open run -> "queued" | "generating"
        self.max_gen = 0
        self._queue()

    def _queue(self) -> None:
        with contextlib.suppress(Refused):
            slot_event(self.slot, E.QUEUE)
            self.runs[self.slot.generations] = "queued"

    def _send(self, run: int, event: SlotEvent) -> bool:
        before, current = state(self.slot), self.slot.generations
        try:
            slot_event(self.slot, event, run=run)
        except Refused:
            assert state(self.slot) == before
            return False
        assert run == current, "a stale run changed the slot"
        return True

    @rule()
    def reviewer_queues_a_new_run(self) -> None:  # reject, Retry, a continuity fix
        self._queue()

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), outcome=st.sampled_from(["image", "wait", "fail"]))
    def a_run_answers(self, data, outcome) -> None:
        run = data.draw(st.sampled_from(sorted(self.runs)))
        if self.runs[run] == "queued":
            if self._send(run, E.START):
                self.runs[run] = "generating"
            else:
                del self.runs[run]  # stopped or replaced while it waited: it sends nothing
            return
        if outcome == "wait":
            self._send(run, E.WAIT)
            self.runs[run] = "queued"  # its next START is refused if it was replaced
        elif outcome == "image":
            if self._send(run, E.IMAGE):
                add_version(self.slot)
            else:  # a paid-for image of a replaced run is kept as a version
                self.slot.versions.append(
                    ImageVersion(
                        url="u", local_path="/late.png", prompt="p", model="m", path="offline"
                    )
                )
            del self.runs[run]
        else:
            self._send(run, E.FAIL)
            del self.runs[run]

    @rule(event=st.sampled_from([E.APPROVE, E.UNAPPROVE, E.RESTORE]))
    def reviewer_acts(self, event) -> None:
        with contextlib.suppress(Refused):
            slot_event(self.slot, event)

    @rule()
    def stop(self) -> None:  # Stop, the deadline: every open run is failed with its number
        for run in sorted(self.runs):
            self._send(run, E.FAIL)
        self.runs.clear()

    @invariant()
    def holds(self) -> None:
        if not hasattr(self, "slot"):
            return
        s = self.slot
        assert isinstance(s.status, SlotStatus)
        assert s.generations >= self.max_gen
        self.max_gen = s.generations
        if s.status.has_image:
            assert s.image is not None
        if s.status.in_flight:  # something is still working on it
            assert s.generations in self.runs

    def teardown(self) -> None:
        if not hasattr(self, "slot"):
            return
        for run in sorted(self.runs):  # the engine's end of every run: FAIL with its number
            self._send(run, E.FAIL)
        assert self.slot.status in TERMINAL


SlotRuns.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
test_slot_runs = SlotRuns.TestCase


# ---------------------------------------------------------------------------------- Hypothesis: the engine
OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "schedule",
                "approve",
                "approve_all",
                "reject",
                "retry",
                "retry_failed",
                "cancel",
                "restore",
                "wait",
            ]
        ),
        st.integers(0, 19),
    ),
    min_size=1,
    max_size=12,
)


def test_engine_operations_in_any_order_end_with_every_slot_terminal(monkeypatch):
    monkeypatch.setenv("FOXPIPE_OFFLINE_DELAY", "0.002")
    reg = JobRegistry(load_settings({}))
    the_story = story.offline_story(quiz.validate(quiz.defaults()).answers)
    texts = [sc.text for sc in the_story.scenes]

    @settings(max_examples=16, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=OPS)
    def run(ops):
        job_id = reg.create_job(the_story, texts, owner="h", size="256x384")
        gens = [0] * 20
        for op, i in ops:
            try:
                if op == "schedule":
                    reg.schedule(job_id, [i, (i + 7) % 20])
                elif op == "approve":
                    reg.approve(job_id, [i])
                elif op == "approve_all":
                    reg.approve_all(job_id)
                elif op == "reject":
                    reg.reject(job_id, i, ["Wrong colours"], "")
                elif op == "retry":
                    reg.retry(job_id, i)
                elif op == "retry_failed":
                    reg.retry_failed(job_id)
                elif op == "cancel":
                    reg.cancel(job_id)
                elif op == "restore":
                    reg.restore_version(job_id, i, 0)
                else:
                    wait_until(lambda: reg.running(job_id) == 0, timeout=20)
            except (Refused, GuardError):
                pass
            job = reg.get(job_id)
            for k, s in enumerate(job.slots):
                assert s.generations >= gens[k]
                gens[k] = s.generations
                if s.status is S.APPROVED:
                    assert s.image is not None
        # The engine is idle once its image runs and the images' continuity checks have ended.
        wait_until(lambda: reg.running(job_id) == 0 and reg.get(job_id).done, timeout=30)
        job = reg.get(job_id)
        stuck = [
            (s.index, s.status.value, s.generations) for s in job.slots if s.status not in TERMINAL
        ]
        assert not stuck, f"slots left in flight with the engine idle: {stuck}"
        assert job.done
        for s in job.slots:
            if s.status.has_image:
                assert s.image is not None

    try:
        run()
    finally:
        reg.shutdown()

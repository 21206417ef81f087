"""The one place where statuses change: transition tables for image slots, clips and the story
video, and the functions that apply them.

Every status change in foxpipe goes through ``slot_event``, ``clip_event`` or ``video_event``.
They refuse two kinds of change:

- *illegal*: the event makes no sense in the current status (approving an image that is
  still generating, retrying an approved one);
- *stale*: the change comes from a run that is no longer the slot's current one (a request
  that was stopped, or replaced by a Retry, answering late).

A refused worker update is simply dropped (``Refused`` is caught by the engine); a refused
reviewer action tells the reviewer what changed (two reviewers on one gallery).

Slot runs: ``Slot.generations`` is the run number. ``queue`` starts a new run; every later
event of that run carries the run number and is refused once a newer run exists.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from enum import StrEnum

from foxpipe.domain.models import Clip, ClipStatus, Slot, SlotStatus, Video


class Refused(Exception):
    """The transition was not applied; ``reason`` says why, in words for a reviewer."""

    def __init__(self, reason: str, *, stale: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.stale = stale


class SlotEvent(StrEnum):
    QUEUE = "queue"  # new run: first try, reject (regenerate with feedback), retry, fix
    START = "start"  # the request is being sent
    WAIT = "wait"  # an attempt failed and the next one waits its turn
    IMAGE = "image"  # an image came back and was stored
    FAIL = "fail"  # the last retry failed, or the run was stopped / cut off
    APPROVE = "approve"
    UNAPPROVE = "unapprove"  # back to ready (e.g. restoring another version)
    RESTORE = "restore"  # show another stored version (or an uploaded one)


S = SlotStatus
E = SlotEvent

# (status, event) -> new status. Anything missing is illegal.
SLOT_TABLE: dict[tuple[SlotStatus, SlotEvent], SlotStatus] = {
    (S.QUEUED, E.QUEUE): S.QUEUED,  # a new job's first run
    (S.READY, E.QUEUE): S.QUEUED,  # reject: regenerate with feedback; continuity fix
    (S.FAILED, E.QUEUE): S.QUEUED,  # retry
    (S.QUEUED, E.START): S.GENERATING,
    (S.GENERATING, E.WAIT): S.QUEUED,
    (S.GENERATING, E.IMAGE): S.READY,
    (S.QUEUED, E.FAIL): S.FAILED,  # stopped while it waited
    (S.GENERATING, E.FAIL): S.FAILED,
    (S.READY, E.APPROVE): S.APPROVED,
    (S.FAILED, E.APPROVE): S.APPROVED,  # a failed retry keeps its earlier versions
    (S.APPROVED, E.UNAPPROVE): S.READY,
    (S.READY, E.RESTORE): S.READY,
    (S.FAILED, E.RESTORE): S.READY,
    (S.APPROVED, E.RESTORE): S.READY,
}

# Events that belong to one run (the worker's); the others are the reviewer's or the engine's.
RUN_EVENTS = {E.START, E.WAIT, E.IMAGE, E.FAIL}

TERMINAL = {S.READY, S.APPROVED, S.FAILED}


def slot_event(
    slot: Slot, event: SlotEvent | str, *, run: int | None = None, now: float | None = None
) -> SlotStatus:
    """Apply ``event`` to ``slot`` (in place) or raise ``Refused``. ``run`` is the run the
    event belongs to: a worker's event from an older run is refused as stale."""
    event = SlotEvent(event)
    if run is not None and run != slot.generations:
        raise Refused(f"scene {slot.index + 1}: an older run answered late", stale=True)
    new = SLOT_TABLE.get((slot.status, event))
    if new is None:
        raise Refused(f"scene {slot.index + 1} is {slot.status.value}; it cannot {event.value} now")
    if event is E.APPROVE and slot.image is None:
        raise Refused(f"scene {slot.index + 1} has no image to approve")
    if event is E.APPROVE and slot.checking:
        raise Refused(
            f"scene {slot.index + 1} is being checked against the hero; approve it when the check ends"
        )
    if event is E.RESTORE and slot.image is None:
        raise Refused(f"scene {slot.index + 1} has no image to show")
    now = time.time() if now is None else now
    if event is E.QUEUE:
        slot.generations += 1
        slot.error = ""
        slot.checking = False  # a new run: the old image's check no longer holds the slot
    elif event is E.START:
        slot.started = now
    elif event in (E.IMAGE, E.FAIL):
        slot.finished = now
    if event in (E.IMAGE, E.APPROVE, E.RESTORE):
        slot.error = ""
    slot.status = new
    return new


def can(slot: Slot, event: SlotEvent | str) -> bool:
    """Whether ``event`` is legal for the slot now (for enabling buttons)."""
    event = SlotEvent(event)
    if (slot.status, event) not in SLOT_TABLE:
        return False
    if event is E.APPROVE and slot.checking:
        return False
    return event not in (E.APPROVE, E.RESTORE) or slot.image is not None


# ---------------------------------------------------------------------------------- clips
C = ClipStatus

CLIP_TABLE: dict[tuple[ClipStatus, ClipStatus], bool] = {
    (C.QUEUED, C.QUEUED): True,  # the next attempt of a submission the vendor surely did not accept
    (C.QUEUED, C.SUBMITTED): True,  # the vendor returned a task id: stored at once
    (C.SUBMITTED, C.SUBMITTED): True,  # polled again (e.g. after a restart): never resubmitted
    (C.SUBMITTED, C.DOWNLOADING): True,
    (C.DOWNLOADING, C.SUBMITTED): True,  # the download link expired: ask the task again
    (C.DOWNLOADING, C.READY): True,
    (C.QUEUED, C.FAILED): True,
    (C.SUBMITTED, C.FAILED): True,
    (C.DOWNLOADING, C.FAILED): True,
    (C.FAILED, C.QUEUED): True,  # Retry: the only way to pay for a clip again
    (C.READY, C.QUEUED): True,  # make this clip again (the user asked, and was told the price)
}


def clip_event(clip: Clip, new: ClipStatus | str, *, task_id: str | None = None) -> ClipStatus:
    """Move a clip to ``new`` or raise ``Refused``. A poll names the task it polled: once a
    Retry gave the clip a new run, the old task's answer is refused, also in the gap before
    the new task exists. Submitting (queued -> submitted) names the new task and records it."""
    new = ClipStatus(new)
    submitting = clip.status is C.QUEUED and new is C.SUBMITTED
    if task_id is not None and task_id != clip.task_id and not submitting:
        raise Refused(f"clip {clip.index + 1}: an older task answered late", stale=True)
    if not CLIP_TABLE.get((clip.status, new)):
        raise Refused(f"clip {clip.index + 1} is {clip.status.value}; it cannot become {new.value}")
    if new is C.QUEUED:
        clip.attempts += 1
        clip.task_id = ""
        clip.error = ""
    if submitting and task_id:
        clip.task_id = task_id
    clip.status = new
    return new


# ---------------------------------------------------------------------------------- video
class VideoStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


V = VideoStatus

VIDEO_TABLE: dict[tuple[VideoStatus, VideoStatus], bool] = {
    (V.IDLE, V.RUNNING): True,
    (V.RUNNING, V.DONE): True,
    (V.RUNNING, V.FAILED): True,
    (V.DONE, V.RUNNING): True,  # make it again (new music, new voice)
    (V.FAILED, V.RUNNING): True,
    (V.RUNNING, V.RUNNING): True,  # a new stage of the same render
}


def video_event(video: Video, new: VideoStatus | str) -> VideoStatus:
    new = VideoStatus(new)
    old = VideoStatus(video.status)
    if not VIDEO_TABLE.get((old, new)):
        raise Refused(f"the video is {old.value}; it cannot become {new.value}")
    video.status = new.value
    return new


def interrupt_video(video: Video, message: str, keep: Collection[int] = ()) -> None:
    """After a restart: a clip the vendor already accepted (it has a task id) is still being
    made there, paid for, so it stays submitted and is polled again; other work in flight
    is lost: say so (each clip can be retried). Clips in ``keep`` (by index: this process is
    collecting them now) are left as they are."""
    resumable = False
    for c in video.clips:
        if c.index in keep and c.status.in_flight:
            resumable = True
            continue
        if not c.status.in_flight:
            continue
        if c.task_id:
            clip_event(c, C.SUBMITTED)
            c.error = ""
            resumable = True
        else:
            clip_event(c, C.FAILED)
            c.error = message
    if video.status == V.RUNNING and not resumable:
        video_event(video, V.FAILED)
        video.error = message

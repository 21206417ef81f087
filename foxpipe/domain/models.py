"""Plain data: the story, the job and its slots. No Streamlit, no I/O."""

from __future__ import annotations

import copy
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from foxpipe.domain.plain import plain

SCENE_COUNT = 20


def new_id() -> str:
    """An unguessable id (192 bits, URL-safe)."""
    return secrets.token_urlsafe(24)


@dataclass
class Scene:
    number: int
    beat: str
    text: str
    placeholder: bool = False


@dataclass
class Story:
    title: str
    scenes: list[Scene]
    answers: dict[str, str]
    id: str = field(default_factory=new_id)
    source: str = "offline"  # which writer produced it
    problem: str = ""  # what went wrong while writing, shown to the user

    def missing(self) -> list[int]:
        return [s.number for s in self.scenes if s.placeholder]

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Story:
        d = dict(d)
        d["scenes"] = [Scene(**s) for s in d.get("scenes", [])]
        return cls(**d)


class SlotStatus(StrEnum):
    QUEUED = "queued"
    GENERATING = "generating"
    READY = "ready"
    APPROVED = "approved"
    FAILED = "failed"

    @property
    def in_flight(self) -> bool:
        return self in (SlotStatus.QUEUED, SlotStatus.GENERATING)

    @property
    def has_image(self) -> bool:
        return self in (SlotStatus.READY, SlotStatus.APPROVED)


@dataclass
class ImageVersion:
    """One image made for a slot. Slots keep every version, newest last."""

    url: str  # what the browser shows: a Cloudinary URL or a local path
    local_path: str  # the copy on disk, kept even when uploaded
    prompt: str
    model: str
    path: str  # how it was made: "offline", "generate", "edit"
    seconds: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)
    uploaded: bool = False
    thumb_path: str = ""
    created: float = field(default_factory=time.time)
    # Continuity: the check's Verdict.to_dict() ({} until checked), and whether this image was
    # made by an automatic fix (such an image is only ever flagged, never fixed again).
    verdict: dict[str, Any] = field(default_factory=dict)
    auto_fix: bool = False


@dataclass
class Slot:
    index: int  # 0-based; scene number is index + 1
    scene: Scene
    prompt: str
    status: SlotStatus = SlotStatus.QUEUED
    error: str = ""
    attempts: int = 0
    generations: int = 0  # how many times this slot was (re)generated, for the cost guard
    versions: list[ImageVersion] = field(default_factory=list)
    current: int = -1  # index into versions of the image shown
    feedback: str = ""  # the rejection reason turned into a prompt change
    policy_level: int = 0  # 0 plain, 1 sanitized, 2 shortened
    prompt_edited: bool = False  # the reviewer wrote the prompt: it is sent exactly as written
    started: float = 0.0
    finished: float = 0.0
    upload_error: str = ""
    # Continuity and reviews: the reviewer's rejections ({reasons, note, time}); ``checking``:
    # the shown image's continuity check is running (it cannot be approved until it ends);
    # ``auto_fix_run``: the run number of an automatic fix (its image is marked auto_fix).
    rejections: list[dict[str, Any]] = field(default_factory=list)
    checking: bool = False
    auto_fix_run: int = 0

    @property
    def image(self) -> ImageVersion | None:
        if 0 <= self.current < len(self.versions):
            return self.versions[self.current]
        return None


class ClipStatus(StrEnum):
    QUEUED = "queued"
    SUBMITTED = "submitted"  # the provider accepted the task and is making the clip
    DOWNLOADING = "downloading"
    READY = "ready"
    FAILED = "failed"

    @property
    def in_flight(self) -> bool:
        return self in (ClipStatus.QUEUED, ClipStatus.SUBMITTED, ClipStatus.DOWNLOADING)


@dataclass
class Clip:
    """One scene animated by an image-to-video provider."""

    index: int  # the slot's index (scene number - 1)
    status: ClipStatus = ClipStatus.QUEUED
    task_id: str = ""
    url: str = ""  # where the clip is served (the provider's link expires; a hosted copy does not)
    local_path: str = ""
    uploaded: bool = False
    error: str = ""
    attempts: int = 0
    seconds: float = 0.0  # the clip's length
    started: float = 0.0
    finished: float = 0.0
    submissions: int = 0  # tasks the vendor accepted for this scene (each one is paid)
    cost_usd: float = 0.0  # what those tasks cost, from the price table
    references: int = 0  # hero reference sheets sent with the frame


@dataclass
class Video:
    """The story video of a job: a local slideshow, or provider clips joined together."""

    provider: str = "slideshow"  # "slideshow", "kling" or "hailuo"
    scenes: list[int] = field(default_factory=list)  # slot indexes to animate (providers)
    seconds_per_scene: float = 4.0
    captions: bool = True
    status: str = "idle"  # idle, running, done, failed
    stage: str = ""  # what is happening now, for the progress bar
    progress: float = 0.0
    error: str = ""
    clips: list[Clip] = field(default_factory=list)
    path: str = ""  # the final MP4
    srt_path: str = ""
    url: str = ""
    uploaded: bool = False  # the story video is hosted (Cloudinary), not only on this server's disk
    upload_error: str = ""
    duration: float = 0.0
    render_seconds: float = 0.0
    estimate_usd: float = 0.0
    spent_usd: float = 0.0  # what the vendor's accepted tasks cost for this story
    started: float = 0.0
    finished: float = 0.0
    # The finished Short: what the video was made with
    narrated: bool = False  # it carries the narration
    music: str = ""  # "" none, "builtin" the built-in bed, or the uploaded file's name
    music_used: bool = False
    music_message: str = ""  # why the music was left out, for the user
    narration_path: str = ""  # narration.wav: the whole narration on the video's clock
    scene_audio: list[str] = field(default_factory=list)  # narration/scene_NN.wav
    short: dict[str, Any] = field(default_factory=dict)  # ShortResult.to_dict() for story.json

    @property
    def running(self) -> bool:
        return self.status == "running" or any(c.status.in_flight for c in self.clips)

    def clip(self, index: int) -> Clip | None:
        return next((c for c in self.clips if c.index == index), None)

    def interrupt(self, message: str, keep: Collection[int] = ()) -> None:
        """After a restart (see ``lifecycle.interrupt_video``)."""
        from foxpipe.domain.lifecycle import interrupt_video

        interrupt_video(self, message, keep)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Video:
        d = dict(d)
        d["clips"] = [Clip(**{**c, "status": ClipStatus(c["status"])}) for c in d.get("clips", [])]
        return cls(**d)


@dataclass
class Job:
    story: Story
    slots: list[Slot]
    owner: str  # the session that made it
    id: str = field(default_factory=new_id)
    created: float = field(default_factory=time.time)
    character_sheet: str = ""
    image_model: str = "offline"
    size: str = "1024x1536"
    cancelled: bool = False
    deadline: float = 0.0  # wall-clock time after which unfinished slots fail
    started_at: float = 0.0  # when its first image request started (for the achieved rate)
    first_image_at: float = 0.0
    finished_at: float = 0.0
    notice: str = ""  # job-wide message (e.g. out of credit)
    references: dict[str, str] = field(default_factory=dict)  # form -> local path of the hero sheet
    hero_errors: dict[str, str] = field(default_factory=dict)  # form -> why it could not be drawn
    reference_count: int = 0  # reference images drawn (each one paid for, with OpenAI)
    revision: int = 0  # bumped on every change, lets the UI skip identical redraws
    video: Video | None = None  # the story video, once one was asked for
    # The finished Short: narration (foxpipe.domain.narration.NarrationLine, one per scene),
    # voice, style, length and music; written when the scenes are approved
    narration: list[Any] = field(default_factory=list)
    narration_on: bool = True  # the Short is narrated
    narration_state: str = ""  # "", writing, written, failed (the script)
    narration_error: str = ""
    voice: str = ""
    narration_style: str = ""
    short_seconds: float = 60.0  # the Short's length the script is sized to
    music_path: str = ""  # "" none, "builtin", or an uploaded file checked with mix.check_music
    music_name: str = ""
    music_message: str = ""  # why an uploaded track cannot be used
    # Continuity: "off" | "flag" | "fix", and the score below which an image is off model;
    # "" and -1 take the settings' CONTINUITY and CONTINUITY_THRESHOLD.
    continuity: str = ""
    continuity_threshold: int = -1

    def counts(self) -> dict[SlotStatus, int]:
        out = dict.fromkeys(SlotStatus, 0)
        for s in self.slots:
            out[s.status] += 1
        return out

    @property
    def done(self) -> bool:
        """Nothing left for the engine: no image in flight, no continuity check running."""
        return not any(s.status.in_flight or s.checking for s in self.slots)

    @property
    def all_approved(self) -> bool:
        return all(s.status is SlotStatus.APPROVED for s in self.slots)

    def snapshot(self) -> Job:
        return copy.deepcopy(self)

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        d = dict(d)
        d["story"] = Story.from_dict(d["story"])
        slots = []
        for s in d.get("slots", []):
            s = dict(s)
            s["scene"] = Scene(**s["scene"])
            # "rejected" (an earlier version's name for "queued again with feedback")
            s["status"] = SlotStatus("queued" if s["status"] == "rejected" else s["status"])
            s["versions"] = [ImageVersion(**v) for v in s.get("versions", [])]
            slots.append(Slot(**s))
        d["slots"] = slots
        d["video"] = Video.from_dict(d["video"]) if d.get("video") else None  # older files lack it
        if d.get("narration"):
            from foxpipe.domain.narration import NarrationLine

            d["narration"] = [NarrationLine.from_dict(x) for x in d["narration"]]
        return cls(**d)

"""The small interfaces every provider implements. The core imports these, never a vendor."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from foxpipe.domain.continuity import Verdict
from foxpipe.domain.models import Story
from foxpipe.domain.narration import SpeechResult


class Capability(StrEnum):
    """What a provider can do, declared by the provider itself: the engine asks for a
    capability, never for a vendor's name."""

    FREE = "free"  # costs nothing: no cost guard, no budget
    REFERENCES = "supports references"  # takes reference images (the hero sheet)
    HOSTS_MEDIA = "hosts media"  # keeps files somewhere that survives this server's disk
    REUPLOAD = "reupload"  # can upload again a file kept locally after a failed upload
    WORD_TIMINGS = "word timings"  # a voice that reports when each word is spoken


def capabilities(provider: object) -> frozenset[Capability]:
    """The capabilities a provider declares (none when it declares nothing)."""
    return frozenset(getattr(provider, "capabilities", ()) or ())


def can(provider: object, capability: Capability) -> bool:
    return capability in capabilities(provider)


class ProviderError(Exception):
    """A failure a user can read. ``kind`` decides what the pipeline does next:

    - ``retryable``: try again later (429, 5xx, timeouts, connection drops)
    - ``policy``: the content was refused; retry with a safer prompt
    - ``fatal``: stop now (bad key, no credit, no access, bad request)
    """

    def __init__(
        self,
        message: str,
        kind: str = "retryable",
        retry_after: float | None = None,
        code: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.retry_after = retry_after
        self.code = code


@dataclass
class ImageResult:
    data: bytes
    model: str
    path: str  # "offline", "generate" or "edit"
    usage: dict[str, Any] = field(default_factory=dict)
    rate_hint: dict[str, float] = field(default_factory=dict)  # x-ratelimit-* hints


@dataclass
class StoredImage:
    url: str
    local_path: str
    thumb_path: str = ""
    uploaded: bool = False
    error: str = ""


class TextModel(Protocol):
    name: str

    async def write_story(self, answers: dict[str, str]) -> Story: ...

    async def rewrite_scene(self, story: Story, number: int, note: str = "") -> str: ...

    async def create_prompts(self, story: Story, sheet: str) -> list[str]: ...

    async def character_sheet(self, answers: dict[str, str]) -> str: ...

    async def write_narration(
        self, story: Story, seconds: float = 60.0, style: str = "storyteller"
    ) -> list[str]: ...

    async def rewrite_narration_line(
        self, story: Story, lines: list[str], number: int, note: str = ""
    ) -> str: ...


class ImageModel(Protocol):
    name: str
    supports_reference: bool

    async def generate(
        self,
        prompt: str,
        size: str,
        *,
        scene_number: int = 0,
        references: list[bytes] | None = None,
    ) -> ImageResult: ...


class ImageStore(Protocol):
    name: str

    def save(
        self, job_id: str, slot_index: int, version: int, data: bytes, *, tags: list[str]
    ) -> StoredImage: ...


class PromptLog(Protocol):
    name: str

    def log_story(self, row: dict[str, Any]) -> None: ...

    def log_image(self, row: dict[str, Any]) -> None: ...


class VoiceModel(Protocol):
    """Speaks one narration line. ``synthesize`` returns PCM16 mono WAV (and word timings when
    the engine knows them) or raises ProviderError; ``cost_estimate`` is in US$."""

    name: str
    free: bool
    voices: list[str]

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult: ...

    def cost_estimate(self, text: str) -> float: ...


class VisionCheck(Protocol):
    """Compares one image with the hero's reference and says whether it is on model.
    ``reference`` is the reference sheet's bytes, or None when references were skipped (then
    ``reference_text``, the character sheet's hero part, is the reference). Never raises for
    a failed check: it returns a "not_checked" Verdict with the error. ``form`` is the hero's
    form the scene must show ("base" or "powered", from the story's structure; "" lets the
    checker use the power fantasy's rule by scene number)."""

    name: str
    free: bool  # True when a check costs nothing (the embedded checker)

    async def check(
        self,
        reference: bytes | None,
        reference_text: str,
        image: bytes,
        scene_number: int = 0,
        *,
        form: str = "",
    ) -> Verdict: ...

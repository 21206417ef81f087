"""In-process fakes for generation tests: a scriptable ImageModel, an in-memory store and
prompt log, and a minimal JobBook. (HTTP-level behaviour is tested against the loopback
fake OpenAI server; these drive the pipeline's own logic on virtual time.)"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from foxpipe.domain import quiz, story
from foxpipe.domain.models import Job, Slot
from foxpipe.providers.base import ImageResult, ProviderError, StoredImage
from foxpipe.providers.offline import render_card


def tiny_png() -> bytes:
    return render_card(1, "Underdog setup", "x", "64x96", False)


PNG = tiny_png()

OK = "ok"
HANG = "hang"


@dataclass
class Call:
    scene: int
    prompt: str
    started: float
    ended: float = 0.0
    outcome: str = ""  # "ok", "error:<kind>", "cancelled"


class ScriptedImages:
    """Answers each call by the next scripted step for its scene (else ``default``):
    ``OK``, ``HANG`` (never returns until cancelled), a ``ProviderError`` to raise, or a
    number of seconds to take before answering OK. ``latency`` applies to every OK."""

    name = "scripted"
    supports_reference = False

    def __init__(
        self, latency: float = 1.0, default: Any = OK, clock: Callable[[], float] | None = None
    ):
        self.latency = latency
        self.default = default
        self.scripts: dict[int, deque[Any]] = {}
        self.calls: list[Call] = []
        self.clock = clock
        self._lock = threading.Lock()

    def script(self, scene: int, *steps: Any) -> None:
        with self._lock:
            self.scripts.setdefault(scene, deque()).extend(steps)

    def _now(self) -> float:
        return self.clock() if self.clock else asyncio.get_running_loop().time()

    def in_flight(self) -> int:
        with self._lock:
            return sum(1 for c in self.calls if not c.outcome)

    async def generate(
        self,
        prompt: str,
        size: str,
        *,
        scene_number: int = 0,
        references: list[bytes] | None = None,
    ) -> ImageResult:
        with self._lock:
            q = self.scripts.get(scene_number)
            step = q.popleft() if q else self.default
            call = Call(scene_number, prompt, self._now())
            self.calls.append(call)
        try:
            if step == HANG:
                await asyncio.Event().wait()
            if isinstance(step, (int, float)) and not isinstance(step, bool):
                await asyncio.sleep(step)
            elif self.latency:
                await asyncio.sleep(self.latency)
            if isinstance(step, ProviderError):
                call.outcome = f"error:{step.kind}"
                raise step
        except asyncio.CancelledError:
            call.outcome = "cancelled"
            raise
        finally:
            call.ended = self._now()
        call.outcome = OK
        return ImageResult(data=PNG, model="scripted", path="generate")


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self.saved: list[tuple[str, int, int]] = []

    def save(
        self, job_id: str, slot_index: int, version: int, data: bytes, *, tags: list[str]
    ) -> StoredImage:
        self.saved.append((job_id, slot_index, version))
        path = f"/mem/{job_id[:6]}/{slot_index}_{version}.png"
        return StoredImage(url=path, local_path=path)


class MemoryLog:
    name = "memory"

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log_story(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def log_image(self, row: dict[str, Any]) -> None:
        self.rows.append(row)


@dataclass
class Book:
    """The registry's side of generation, for one job, without threads."""

    job: Job
    aborted: list[str] = field(default_factory=list)
    closing: bool = False
    requests: int = 0

    def started_request(self) -> None:
        self.requests += 1

    def read(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        return fn(self.job) if job_id == self.job.id else None

    def mutate(self, job_id: str, fn: Callable[[Job], Any]) -> Any:
        return fn(self.job)

    def abort(self, job_id: str, message: str) -> None:
        self.aborted.append(message)
        self.job.notice = message


def make_story(n: int = 20) -> story.Story:
    s = story.offline_story(quiz.defaults())
    s.scenes = s.scenes[:n]
    return s


def make_job(n: int = 20) -> Job:
    s = make_story(n)
    slots = [
        Slot(index=i, scene=sc, prompt=f"Scene {i + 1} prompt") for i, sc in enumerate(s.scenes)
    ]
    return Job(story=s, slots=slots, owner="tester", character_sheet="A small red fox.")


def prompt_list(s: story.Story) -> list[str]:
    return [f"Scene {sc.number}: {sc.text[:60]}" for sc in s.scenes]

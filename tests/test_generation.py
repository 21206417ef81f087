"""run_slot on virtual time: retries through the limiter, backoff, Retry-After, policy
levels, non-retryable errors, timeouts, failure isolation. No test sleeps."""

from __future__ import annotations

import asyncio

import pytest

from foxpipe.config import Settings
from foxpipe.domain import prompts
from foxpipe.domain.models import SlotStatus
from foxpipe.engine.generation import Pipeline, run_slot
from foxpipe.engine.ratelimit import RateLimiter
from foxpipe.engine.retry import backoff_delay
from foxpipe.providers.base import ProviderError
from tests.imagefakes import HANG, Book, MemoryLog, MemoryStore, ScriptedImages, make_job
from tests.virtualclock import run_virtual


def run_job(
    images: ScriptedImages,
    n: int = 3,
    rate: float = 100,
    cap: int = 10,
    settings: Settings | None = None,
    indexes: list[int] | None = None,
):
    """Run slots of one job on a virtual loop; return (book, pipeline, end time)."""

    async def main():
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(rate, cap, clock=loop.time)
        pipe = Pipeline(
            images=images,
            store=MemoryStore(),
            log=MemoryLog(),
            limiter=limiter,
            settings=settings or Settings(),
            backoff_base=2.0,
            backoff_cap=30.0,
        )
        book = Book(make_job(n))
        await asyncio.gather(*(run_slot(book, pipe, book.job.id, i) for i in (indexes or range(n))))
        return book, pipe, loop.time()

    return run_virtual(main())


def test_all_images_made_and_stored_as_each_finishes():
    images = ScriptedImages(latency=5)
    images.script(2, 50)  # scene 2 is slow
    book, pipe, end = run_job(images, n=3)
    job = book.job
    assert [s.status for s in job.slots] == [SlotStatus.READY] * 3
    assert job.first_image_at and job.started_at
    # The fast images were stored before the slow one finished.
    assert pipe.store.saved[-1][1] == 1
    assert [r["status"] for r in pipe.log.rows] == ["ready"] * 3
    assert end == pytest.approx(50)


def test_retryable_errors_retry_up_to_three_times_through_the_limiter():
    images = ScriptedImages(latency=1)
    boom = ProviderError("server error 500")
    images.script(1, boom, boom, boom, boom)  # 1 try + 3 retries, all fail
    images.script(2, boom, "ok")
    book, pipe, _ = run_job(images, n=3)
    s1, s2, s3 = book.job.slots
    assert s1.status is SlotStatus.FAILED and s1.attempts == 4
    assert "Gave up after 4 attempts" in s1.error
    assert s2.status is SlotStatus.READY and s2.attempts == 2
    assert s3.status is SlotStatus.READY  # one image's failure never blocks the others
    assert (
        pipe.limiter.total_started == len(images.calls) == 4 + 2 + 1
    )  # every retry went through it
    # Exponential backoff: the gaps between scene 1's attempts grow.
    starts = [c.started for c in images.calls if c.scene == 1]
    gaps = [b - a - 1 for a, b in zip(starts, starts[1:], strict=False)]  # minus the 1 s latency
    assert 1.0 <= gaps[0] <= 3.0 and 2.0 <= gaps[1] <= 6.0 and 4.0 <= gaps[2] <= 12.0


def test_backoff_delay_jitter_and_retry_after():
    delays = [backoff_delay(3, 1.0, 30.0) for _ in range(200)]
    assert min(delays) >= 2.0 and max(delays) <= 6.0 and len(set(delays)) > 100
    assert all(backoff_delay(10, 1.0, 30.0) <= 30.0 for _ in range(50))
    assert backoff_delay(1, 1.0, 30.0, retry_after=42.0) == 42.0


def test_retry_after_pauses_the_limiter_for_every_slot():
    images = ScriptedImages(latency=1)
    images.script(1, ProviderError("429", retry_after=40.0))
    images.script(2, 3)  # still running when the 429 comes back
    images.script(3, 3)
    book, pipe, _ = run_job(images, n=5, cap=3)
    assert all(s.status is SlotStatus.READY for s in book.job.slots)
    assert pipe.limiter.pauses == 1
    # Scene 1 failed at t=1; nothing started between then and t=41.
    later = sorted(c.started for c in images.calls if c.started > 0)
    assert all(t >= 41.0 for t in later)
    retry = [c for c in images.calls if c.scene == 1][1]
    assert retry.started >= 41.0


@pytest.mark.parametrize(
    ("error", "aborts"),
    [
        (ProviderError("Bad request: size", kind="fatal", code="invalid_value"), False),
        (ProviderError("Incorrect API key", kind="fatal", code="invalid_api_key"), True),
        (ProviderError("No credit", kind="fatal", code="insufficient_quota"), True),
    ],
)
def test_non_retryable_errors_stop_at_once(error, aborts):
    images = ScriptedImages(latency=1)
    images.script(1, error)
    book, _, _ = run_job(images, n=2, indexes=[0])
    slot = book.job.slots[0]
    assert slot.status is SlotStatus.FAILED and slot.attempts == 1
    assert len(images.calls) == 1
    assert bool(book.aborted) is aborts


def test_policy_blocks_step_through_safer_prompts_then_stop():
    images = ScriptedImages(latency=1)
    block = ProviderError("moderation_blocked", kind="policy", code="moderation_blocked")
    images.script(1, *[block] * prompts.POLICY_LEVELS)
    images.script(2, block, "ok")
    book, _, _ = run_job(images, n=2)
    s1, s2 = book.job.slots
    assert s1.status is SlotStatus.FAILED and "safest prompt" in s1.error
    assert s1.attempts == prompts.POLICY_LEVELS and s1.policy_level == prompts.POLICY_LEVELS - 1
    sent = [c.prompt for c in images.calls if c.scene == 1]
    assert len(set(sent)) == prompts.POLICY_LEVELS  # a different, safer prompt each time
    assert s2.status is SlotStatus.READY and s2.policy_level == 1


def test_per_request_timeout_then_retry():
    images = ScriptedImages(latency=1)
    images.script(1, HANG)
    book, _, end = run_job(images, n=1, settings=Settings(image_timeout=30.0))
    s = book.job.slots[0]
    assert s.status is SlotStatus.READY and s.attempts == 2
    assert images.calls[0].outcome == "cancelled"
    assert 31.0 <= end <= 35.0  # 30 s timeout + a 1-3 s backoff + 1 s


def test_every_slot_terminal_when_everything_hangs():
    images = ScriptedImages(latency=1, default=HANG)
    book, _, end = run_job(images, n=4, settings=Settings(image_timeout=10.0, image_retries=1))
    assert all(s.status is SlotStatus.FAILED for s in book.job.slots)
    assert all("timed out" in s.error for s in book.job.slots)
    assert end < 30

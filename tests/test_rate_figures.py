"""The gallery's rate figures stay honest when the account allows less than configured."""

from __future__ import annotations

import pytest

from foxpipe.config import Settings
from foxpipe.domain.models import ImageVersion, SlotStatus
from foxpipe.engine.jobs import JobRegistry
from foxpipe.engine.ratelimit import RateLimiter
from tests.imagefakes import make_story, prompt_list


@pytest.fixture
def reg(tmp_path):
    settings = Settings(data_dir=str(tmp_path), images_per_minute=20)
    r = JobRegistry(settings, limiter=RateLimiter(20, 10, period=60.0))
    yield r
    r.shutdown()


def test_images_per_minute_never_reads_above_the_limit(reg):
    """20 images at 10 per minute: 10 started at 0 s, 10 at 60 s, all back at 70 s."""
    story = make_story(20)
    job_id = reg.create_job(story, prompt_list(story), owner="me", start=False)
    t0 = 1_000_000.0

    def made(j):  # noqa: ANN001, ANN202
        j.started_at = t0
        for s in j.slots:
            s.status = SlotStatus.READY
            s.started = t0 + (0 if s.index < 10 else 60)
            s.versions = [
                ImageVersion(
                    url="x", local_path="x", prompt="p", model="m", path="generate", seconds=10
                )
            ]
            s.current = 0
        j.finished_at = t0 + 70

    reg.mutate(job_id, made)
    reg.limiter.set_rate(10)
    p = reg.progress(job_id, now=t0 + 70)
    assert p.limit == 10
    assert p.rate <= p.limit


def test_time_left_follows_the_rate_the_account_allows(reg):
    """Configured 20 per minute, the account allows 10: with 10 started in this minute, the
    next 10 wait for the next one, whatever the setting says."""
    story = make_story(20)
    job_id = reg.create_job(story, prompt_list(story), owner="me", start=False)
    now = reg.limiter.clock()
    for _ in range(10):
        reg.limiter.sched.starts.append(now)
    reg.limiter.adopt(10)
    p = reg.progress(job_id)
    assert p.learned == 10 and p.limit == 10
    assert p.eta is not None and p.eta >= 60

"""The account's rate limit, measured where it counts: on the server's side of the wire.

The fake OpenAI server counts requests by their ARRIVAL in its own sliding window (a minute
shortened by ``time_scale``) and answers 429 above its limit. The engine runs its real
OpenAI provider against it while two CPU burners load the machine."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from foxpipe.config import Settings
from foxpipe.domain.models import SlotStatus
from foxpipe.engine.jobs import JobRegistry
from foxpipe.engine.ratelimit import SEND_GUARD_SECONDS
from tests.conftest import wait_until
from tests.fakes.openai_server import FakeOpenAI
from tests.imagefakes import make_story, prompt_list

# Two CPU burners load the machine: these run on the browser tests' worker, so never beside a
# browser test (the other worker's tests may run beside them: more load, as intended).
pytestmark = pytest.mark.one_worker

# "per minute" becomes per 10 s: the shortest window whose send guard is the app's 0.5 s (the
# guard is at most a twentieth of the window, foxpipe/engine/jobs.py).
SCALE = 6.0
PERIOD = 60.0 / SCALE


@pytest.fixture
def burners() -> Iterator[None]:
    """Two busy processes: the 2-core machine is loaded while the images go out."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait(5)


def registry(fake: FakeOpenAI, data, rate: float) -> JobRegistry:
    settings = Settings(
        openai_api_key="sk-test",
        openai_base_url=fake.base_url,
        images_per_minute=rate,
        image_timeout=10.0,
        data_dir=str(data),
        openai_use_reference=False,
        image_retries=4,
    )
    return JobRegistry(settings, period=PERIOD)


def run_job(reg: JobRegistry, n: int = 20) -> str:
    story = make_story(n)
    job_id = reg.create_job(story, prompt_list(story), owner="me")
    wait_until(lambda: reg.get(job_id).done, timeout=120, interval=0.2)
    return job_id


def most_in_a_window(times: list[float], period: float) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + period) for t in times), default=0)


def test_no_request_over_the_limit_by_arrival_time_under_load(tmp_path, burners):
    with FakeOpenAI(rate_limit=10, time_scale=SCALE, latency=0.2, ratelimit_headers=False) as fake:
        reg = registry(fake, tmp_path, rate=10)
        try:
            job_id = run_job(reg)
            job = reg.get(job_id)
            guard = reg.limiter.sched.guard
        finally:
            reg.shutdown()
        assert guard == SEND_GUARD_SECONDS  # the app's own guard, not one shrunk with the window
        arrivals = [r.t for r in fake.requests if r.kind in ("generations", "edits")]
        assert all(s.status is SlotStatus.READY for s in job.slots)
        assert fake.rate_limited == 0, f"{fake.rate_limited} requests arrived over the limit"
        assert most_in_a_window(arrivals, PERIOD) <= 10


def test_a_setting_above_the_account_costs_a_few_429s_and_is_remembered(tmp_path):
    # Images take 0.33-1 s each, a thirtieth to a tenth of the window (real ones: tens of
    # seconds of a minute, never all alike); a 429 is instant.
    with FakeOpenAI(
        rate_limit=10,
        time_scale=SCALE,
        latency=2 / 3,
        latency_jitter=1 / 3,
        ratelimit_headers=False,
    ) as fake:
        reg = registry(fake, tmp_path, rate=20)
        try:
            job_id = run_job(reg)
            job = reg.get(job_id)
            learned = reg.limiter.learned_rate
            progress = reg.progress(job_id)
        finally:
            reg.shutdown()
        assert all(s.status is SlotStatus.READY for s in job.slots)
        assert fake.rate_limited <= 3, f"{fake.rate_limited} x 429 for 20 images"
        assert learned is not None and 8 <= learned <= 10
        assert progress.limit == learned and progress.learned == learned
        # A restart keeps what the account allows: the new engine starts at the learned rate.
        again = registry(fake, tmp_path, rate=20)
        try:
            again.start()
            assert again.limiter.rate == learned
            assert again.limiter.learned_rate == learned
        finally:
            again.shutdown()
        # A changed setting is believed again (the account may have been upgraded).
        other = registry(fake, tmp_path, rate=30)
        try:
            other.start()
            assert other.limiter.rate == 30
        finally:
            other.shutdown()

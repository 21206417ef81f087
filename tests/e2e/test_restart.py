"""Stopping the app mid-generation (SIGTERM, what a platform sends) and starting it again on the
same store: every image OpenAI answered is kept, nothing is paid for twice, and the queued
images continue by themselves when the gallery is opened again."""

from __future__ import annotations

import signal
import time

import pytest

from .helpers import read_job, start_job, wait_job


@pytest.mark.e2e
def test_sigterm_mid_generation_keeps_answered_images_and_queued_ones_continue(
    start_app, new_page, fake_openai
):
    fake = fake_openai
    fake.latency = 2.0  # each image takes 2 s: the stop lands while requests are out
    env = dict(
        OPENAI_API_KEY="sk-test-e2e-0000",
        OPENAI_BASE_URL=fake.base_url,
        OPENAI_USE_REFERENCE="false",
        IMAGES_PER_MINUTE="600",
        MAX_CONCURRENT_IMAGES="3",
        IMAGE_TIMEOUT="30",
        CHAT_TIMEOUT="10",
        SHUTDOWN_GRACE_SECONDS="20",
    )
    app = start_app(**env)
    page = new_page()
    job = start_job(page, app.url)
    wait_job(
        app.data_dir,
        job,
        lambda j: sum(s["status"] == "ready" for s in j["slots"]) >= 3,
        timeout=60,
    )
    sent_before = len([r for r in fake.of("images")])

    app.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    app.proc.wait(40)
    stopped_in = time.monotonic() - t0
    answered = [r for r in fake.of("images") if r.status == 200]
    stored = read_job(app.data_dir, job)
    made = sum(len(s["versions"]) for s in stored["slots"])
    assert len(fake.of("images")) >= sent_before
    # Every image the server answered (and billed) is in the store: the stop waited for them.
    assert made == len(answered), (made, len(answered), app.log_tail())
    assert not any(s["status"] == "generating" for s in stored["slots"])
    queued = [s["index"] for s in stored["slots"] if s["status"] == "queued"]
    assert queued, "everything finished before the stop: nothing left to continue"
    assert not any(s["status"] == "failed" for s in stored["slots"]), (
        "queued images must not fail on a stop"
    )

    # Start again on the same store; opening the gallery link is all a user does.
    app2 = start_app(**env)
    page2 = new_page()
    page2.goto(f"{app2.url}/gallery?job={job}")
    final = wait_job(
        app2.data_dir, job, lambda j: all(s["status"] == "ready" for s in j["slots"]), timeout=90
    )
    answered_total = [r for r in fake.of("images") if r.status == 200]
    assert len(answered_total) == 20, "an image was paid for twice (or lost)"
    assert all(len(s["versions"]) == 1 for s in final["slots"])
    print(f"stopped in {stopped_in:.1f} s with {len(queued)} images queued; {made} kept")

"""An outsider's "Clear cache": a client that never gives the password opens Streamlit's
websocket and sends the clear-cache BackMsg (Streamlit's own protobuf class) while a signed-in
reviewer watches a job run. The engine stays the one it was: no second engine or worker, no
request over the account's limit, and the password lockout is not reset."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from streamlit.proto.BackMsg_pb2 import BackMsg
from websockets.sync.client import connect

from foxpipe.config import Settings
from foxpipe.domain import quiz, story
from foxpipe.domain.lifecycle import SlotEvent, slot_event
from foxpipe.engine.jobs import JobRegistry
from tests.fakes.openai_server import FakeOpenAI

PASSWORD = "correct-horse-42"
LIMIT = 10


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def queued_job(data_dir: Path) -> str:
    """A 20-image job waiting in the app's store: the app's engine picks it up when it starts."""
    reg = JobRegistry(Settings(data_dir=str(data_dir)))
    try:
        s = story.offline_story(quiz.defaults())
        job_id = reg.create_job(
            s, [f"scene {i + 1}" for i in range(len(s.scenes))], owner="someone", start=False
        )

        def queue(j):  # noqa: ANN001, ANN202  (queued by a run that was never sent, as before a restart)
            for sl in j.slots:
                slot_event(sl, SlotEvent.QUEUE)

        reg.mutate(job_id, queue)
        return job_id
    finally:
        reg.store.close()


def clear_cache_from_outside(url: str, times: int, between) -> None:  # noqa: ANN001
    """Send the clear-cache BackMsg ``times`` times on one websocket that never signed in,
    calling ``between()`` after each (the reviewer's page runs again meanwhile)."""
    ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
    with connect(ws_url, subprotocols=["streamlit"], open_timeout=10) as ws:
        for _ in range(times):
            msg = BackMsg()
            msg.clear_cache = True
            ws.send(msg.SerializeToString())
            time.sleep(0.5)
            between()


def sign_in(page, url: str, password: str) -> None:
    page.goto(url)
    page.locator('input[type="password"]').fill(password)
    page.get_by_role("button", name="Enter").click()


@pytest.mark.e2e
def test_clear_cache_from_an_outsider_leaves_the_engine_alone(
    start_app, new_page, tmp_path, clean_env
):
    with FakeOpenAI(rate_limit=LIMIT, latency=0.3, ratelimit_headers=False) as fake:
        job_id = queued_job(clean_env)
        app = start_app(
            APP_PASSWORD=PASSWORD,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=fake.base_url,
            IMAGES_PER_MINUTE=str(LIMIT),
            MAX_CONCURRENT_IMAGES="10",
            OPENAI_USE_REFERENCE="false",
            PASSWORD_FAILURES_PER_CLIENT="3",
        )
        reviewer = new_page()
        sign_in(reviewer, f"{app.url}/gallery?job={job_id}", PASSWORD)
        expect(reviewer.get_by_text("Images done")).to_be_visible()
        deadline = time.monotonic() + 30
        while len(fake.of("images")) < LIMIT and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(fake.of("images")) == LIMIT, app.log_tail()  # the first minute's images went out

        # Someone else guesses until locked out.
        guesser = new_page()
        for _ in range(3):
            sign_in(guesser, app.url, "wrong")
            time.sleep(1.2)
        expect(guesser.get_by_text("Too many wrong passwords")).to_be_visible()

        before = threads(app.proc.pid)

        def reviewer_reloads() -> None:  # full runs of History and the gallery ask for the engine
            reviewer.get_by_role("link", name="History").click()
            expect(reviewer.get_by_text("Open a gallery to review")).to_be_visible()
            reviewer.get_by_role("link", name="Gallery").click()
            expect(reviewer.get_by_text("Images done")).to_be_visible()

        clear_cache_from_outside(app.url, 5, reviewer_reloads)
        time.sleep(2)

        # One engine, one worker; nothing more was sent in this minute; the lockout holds.
        # A cache holding the engine would leave one more worker (and its pools) per message.
        assert threads(app.proc.pid) <= before + 2
        assert len(fake.of("images")) == LIMIT and fake.rate_limited == 0
        sign_in(guesser, app.url, PASSWORD)
        expect(guesser.get_by_text("Too many wrong passwords")).to_be_visible()
        expect(
            reviewer.get_by_text("Images done")
        ).to_be_visible()  # the signed-in reviewer is unaffected

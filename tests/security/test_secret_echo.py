"""An endpoint that echoes the API key in its errors (as typed, upper- or lower-cased): no
log line, page message, saved job or log file of the app contains it, in any letter case."""

from __future__ import annotations

import logging

import httpx  # noqa: F401  (imported up front: the SDK's lazy first import of httpx from many threads at once can race)
import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app, safety
from foxpipe.config import Settings
from foxpipe.domain.models import SlotStatus
from tests.apptest import click_approve, click_write, settle, settle_job
from tests.conftest import APP
from tests.fakes.openai_server import Action

KEY = "sk-Echo-7f3Kq9ZpX2mN"
ECHOES = (KEY, KEY.upper(), KEY.lower(), KEY.swapcase())


def echo(i: int) -> Action:
    return Action.bad_request(
        f"Invalid value for 'prompt' with key {ECHOES[i % len(ECHOES)]}: check it."
    )


def page_text(at: AppTest) -> str:
    parts = [
        str(e.value)
        for e in (
            *at.markdown,
            *at.caption,
            *at.title,
            *at.warning,
            *at.error,
            *at.info,
            *at.success,
            *at.sidebar.markdown,
            *at.text,
            *at.text_area,
            *at.exception,
        )
    ]
    return "\n".join(parts)


def leaks(text: str) -> bool:
    return KEY.lower() in text.lower()


@pytest.fixture
def echoing(monkeypatch, fake_openai):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "false")
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    monkeypatch.setenv("IMAGE_RETRIES", "0")
    return fake_openai


def test_redact_is_case_insensitive():
    s = Settings(openai_api_key=KEY)
    for e in ECHOES:
        assert not leaks(s.redact(f"error: {e}!")) and "•••" in s.redact(e)


def test_log_filter_redacts_message_args_and_traceback():
    safety.install_log_redaction()
    safety.register_secrets([KEY])
    handler_records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            handler_records.append(record)

    logger = logging.getLogger("foxpipe.some.child")
    h = Keep()
    logger.addHandler(h)
    try:
        logger.warning("upper %s lower %s", KEY.upper(), KEY.lower())
        try:
            raise RuntimeError(KEY.swapcase())
        except RuntimeError:
            logger.exception("failed with %r", {"key": KEY})
    finally:
        logger.removeHandler(h)
    text = "\n".join(logging.Formatter().format(r) for r in handler_records)
    assert len(handler_records) == 2 and "RuntimeError" in text and not leaks(text)


def test_echoed_key_reaches_no_log_page_or_saved_job(echoing, clean_env, caplog):
    caplog.set_level(logging.DEBUG)
    echoing.script("chat", *[echo(i) for i in range(3)])
    at = AppTest.from_file(APP, default_timeout=30).run()
    click_write(at)
    assert not at.exception
    story_page = page_text(at)
    assert "could not be written" in story_page  # the echoing error did reach the page
    assert not leaks(story_page)

    echoing.reset()
    echoing.script("images", *[echo(i) for i in range(40)])
    settle(at.button(key="retry_story").click().run())
    click_approve(at)
    assert not at.exception
    reg = app.current()
    job_id = at.session_state.job_id
    settle_job(at, job_id)
    job = reg.get(job_id)
    assert all(s.status is SlotStatus.FAILED for s in job.slots)
    gallery_page = page_text(at)
    assert "OpenAI refused the request" in gallery_page
    assert not leaks(gallery_page)
    assert [r.status for r in echoing.of("images")] == [400] * 20  # every answer echoed the key
    assert not any(leaks(s.error) for s in job.slots) and not leaks(job.notice or "")

    assert "key" in caplog.text  # the failures were logged...
    assert not leaks(caplog.text)  # ...without the key
    app.shutdown(grace=0)  # the store's write-ahead log is folded into the database file
    files = [
        p
        for p in clean_env.rglob("*")
        if p.is_file() and p.suffix in (".db", ".csv", ".txt", ".log", ".json")
    ]
    assert any(p.suffix == ".db" for p in files)
    for p in files:
        assert not leaks(p.read_bytes().decode("utf-8", errors="replace")), p

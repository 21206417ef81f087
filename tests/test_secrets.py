"""Secrets never reach the UI, the logs, exceptions shown to users, or exported files."""

from __future__ import annotations

import io
import logging
import zipfile

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.engine import videojobs
from tests.apptest import click_approve, click_write, settle_job
from tests.conftest import APP
from tests.fakes.openai_server import Action

KEY = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
SECRETS = {
    "OPENAI_API_KEY": KEY,
    "KLING_ACCESS_KEY": "kling-access-5a4b3c2d1e0f",
    "KLING_SECRET_KEY": "kling-secret-0f1e2d3c4b5a",
    "HAILUO_API_KEY": "hailuo-key-77aa88bb99cc",
    "APP_PASSWORD": "team-pass-31415926",
}


def page_dump(at: AppTest) -> str:
    """Everything the page tree holds, values and labels included."""
    return (
        repr(at._tree)
        + "".join(repr(e.proto) for e in at.main)
        + "".join(repr(e.proto) for e in at.sidebar)
    )


def assert_clean(text: str, where: str) -> None:
    for name, value in SECRETS.items():
        assert value not in text, f"{name} leaked into {where}"


@pytest.fixture
def keyed(monkeypatch, fake_openai, caplog):
    for k, v in SECRETS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("IMAGES_PER_MINUTE", "6000")
    monkeypatch.setenv("OPENAI_USE_REFERENCE", "false")
    monkeypatch.setenv("IMAGE_TIMEOUT", "10")
    caplog.set_level(logging.DEBUG)  # every logger, the SDKs' included
    fake_openai.api_key = KEY
    return fake_openai


def enter(at: AppTest) -> AppTest:
    at.run()
    at.text_input(key="gate_password").set_value(SECRETS["APP_PASSWORD"])
    at.button[0].click().run()
    return at


def test_a_whole_story_with_keys_leaks_nothing(keyed, caplog, clean_env):
    at = enter(AppTest.from_file(APP, default_timeout=30))
    click_write(at)
    click_approve(at)
    reg = app.current()
    job_id = at.session_state.job_id
    # The page is checked at every run while the images are made, and once they are.
    settle_job(at, job_id, each=lambda a: assert_clean(page_dump(a), "the page"))
    reg.approve_all(job_id)
    at.run()
    assert_clean(page_dump(at), "the page")
    job = reg.get(job_id)
    assert job.all_approved
    # Exported files.
    for data in (videojobs.everything_zip(job),):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for name in z.namelist():
                assert_clean(z.read(name).decode("latin-1"), f"the ZIP's {name}")
    # Everything the app wrote to disk: the store (database and its write-ahead log), logs, images.
    app.shutdown(grace=0)  # the store's write-ahead log is folded into the database file
    files = [p for p in clean_env.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files) and any(p.suffix == ".csv" for p in files)
    for p in files:
        assert_clean(p.read_bytes().decode("latin-1"), str(p.relative_to(clean_env)))
    # Every log line, at every level.
    assert len(caplog.records) > 20
    for rec in caplog.records:
        assert_clean(rec.getMessage(), f"log line from {rec.name}")


def test_an_error_that_echoes_the_key_is_redacted_before_the_user_sees_it(keyed, caplog):
    echo = Action.unauthorized()
    echo.message = f"Incorrect API key provided: {KEY}. You can find your key at platform.example."
    keyed.script("chat", echo, echo, echo)
    at = enter(AppTest.from_file(APP, default_timeout=30))
    click_write(at)
    assert not at.exception
    dump = page_dump(at)
    assert "refused" in dump or "Incorrect API key" in dump  # the user is told what happened
    assert_clean(dump, "the page after a 401")
    for rec in caplog.records:
        assert_clean(rec.getMessage(), f"log line from {rec.name}")

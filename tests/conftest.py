"""Shared fixtures: an isolated data folder, fast offline rendering, fresh caches."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "streamlit_app.py")

# Every variable the app reads; tests start from none of them set.
APP_ENV = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "CLOUDINARY_URL", "CLOUDINARY_PRESET", "GOOGLE_SHEET_ID",
    "GOOGLE_SERVICE_ACCOUNT", "KLING_ACCESS_KEY", "KLING_SECRET_KEY", "HAILUO_API_KEY", "APP_PASSWORD",
    "IMAGES_PER_MINUTE", "MAX_CONCURRENT_IMAGES",
    "TTS_BASE_URL", "TTS_MODEL", "TTS_VOICE", "TTS_API_KEY", "OPENAI_VOICE_MODEL", "OPENAI_VOICE",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in APP_ENV:
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "data"
    monkeypatch.setenv("FOXPIPE_DATA_DIR", str(data))
    monkeypatch.setenv("FOXPIPE_OFFLINE_DELAY", "0.01")
    yield data


@pytest.fixture(autouse=True)
def fresh_password_limiter():
    """The wrong-password limiter is process-wide on purpose: start every test from none."""
    from foxpipe import access

    access.LIMITER.reset()
    yield
    access.LIMITER.reset()


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    """st.cache_resource outlives an AppTest: clear it, and stop any worker it held."""
    yield
    from foxpipe import app

    app.shutdown(grace=0)
    from foxpipe.providers import registry as services

    services.close_shared()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05):
    """Poll until predicate() is truthy; return its value or fail with the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


from tests.fakes.openai_server import fake_openai  # noqa: E402, F401  (fixture for every test)
from tests.pg import pg_database, pg_server  # noqa: E402, F401  (a real PostgreSQL, started on demand)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> str:
    """A store URL on an empty database: a SQLite file, or a fresh database on the session's
    throwaway PostgreSQL (started the first time a test asks for it)."""
    if request.param == "sqlite":
        folder = tmp_path / "store"
        folder.mkdir(exist_ok=True)
        return f"sqlite:///{(folder / 'foxpipe.db').as_posix()}"
    return request.getfixturevalue("pg_database")

"""Password guessing is limited for the whole app: parallel sessions together get no more wrong
tries than the limit, a new session does not reset it, and no guess is ever logged."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest.mock import MagicMock

import pytest
from streamlit.runtime import Runtime
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.runtime.scriptrunner.script_cache import ScriptCache
from streamlit.testing.v1 import AppTest

from foxpipe import access, ui
from tests.conftest import APP

PASSWORD = "correct horse battery"
SESSIONS = 8
GUESSES = 3


@pytest.fixture
def parallel_apptests(monkeypatch):
    """AppTest sets a mock Runtime as a process global at the start of each run and clears it at
    the end; with runs in parallel threads one run's end would pull it from under another. While
    it is cleared, Runtime.instance() answers with a spare mock instead of raising.

    Each AppTest also has its own ScriptCache, so the sessions compile the page in parallel,
    where the app's one server has one cache whose lock compiles one script at a time. On
    Python 3.11 parallel compiles can fail with "SystemError: AST constructor recursion depth
    mismatch" (CPython gh-106905: the AST recursion counter is shared by every thread), so the
    compiles here take one process-wide lock too, as in the app."""
    spare = MagicMock(spec=Runtime)
    spare.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: cls._instance or spare))
    compiling = threading.Lock()
    get_bytecode = ScriptCache.get_bytecode

    def one_compile_at_a_time(self: ScriptCache, script_path: str) -> Any:
        with compiling:
            return get_bytecode(self, script_path)

    monkeypatch.setattr(ScriptCache, "get_bytecode", one_compile_at_a_time)


@pytest.fixture
def gated(monkeypatch, parallel_apptests):
    monkeypatch.setenv("APP_PASSWORD", PASSWORD)
    monkeypatch.setenv("PASSWORD_FAILURES_PER_CLIENT", "5")
    monkeypatch.setenv("PASSWORD_FAILURES_OVERALL", "20")
    checked: list[float] = []
    lock = threading.Lock()

    def pause(seconds: float) -> None:  # every compared wrong password pauses once
        with lock:
            checked.append(seconds)
        time.sleep(0.02)  # short, so the sessions overlap

    monkeypatch.setattr(ui, "_pause", pause)
    return checked


def guess(at: AppTest, word: str) -> AppTest:
    at.text_input[0].set_value(word)
    return at.button[0].click().run()


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_parallel_sessions_cannot_exceed_the_limit_and_a_new_session_is_locked(gated, caplog):
    caplog.set_level(logging.INFO)
    sessions = [AppTest.from_file(APP, default_timeout=60).run() for _ in range(SESSIONS)]
    words = [[f"guess-{s}-{g}-zq" for g in range(GUESSES)] for s in range(SESSIONS)]

    def attack(n: int) -> None:
        for w in words[n]:
            guess(sessions[n], w)

    with ThreadPoolExecutor(SESSIONS) as pool:
        list(pool.map(attack, range(SESSIONS)))
    assert not [at.exception for at in sessions if at.exception]
    # 24 guesses were sent; only 5 were compared (all sessions share one client address here).
    assert len(gated) == 5
    assert access.LIMITER.failures() == 5
    assert sum("Too many wrong passwords" in errors(at) for at in sessions) >= SESSIONS - 2

    fresh = AppTest.from_file(APP, default_timeout=60).run()
    guess(fresh, PASSWORD)
    assert "Too many wrong passwords" in errors(fresh)
    assert not fresh.selectbox  # still at the gate, even with the right password

    failures = [
        r.getMessage() for r in caplog.records if "[ACCESS] wrong password" in r.getMessage()
    ]
    assert len(failures) == 5
    assert not [w for ws in words for w in ws if w in caplog.text]
    assert PASSWORD not in caplog.text


def test_overall_limit_holds_across_client_addresses():
    limiter = access.GuessLimiter()
    barrier = threading.Barrier(40)

    def one(n: int) -> bool:
        barrier.wait()
        return isinstance(limiter.acquire(f"10.0.0.{n}", 5, 12), access.Attempt)

    with ThreadPoolExecutor(40) as pool:
        allowed = sum(pool.map(one, range(40)))
    assert allowed == 12 and limiter.failures() == 12


def test_window_slides_and_a_right_password_is_not_counted():
    now = [1000.0]
    limiter = access.GuessLimiter(clock=lambda: now[0])
    attempts = [limiter.acquire("a", 3, 100) for _ in range(3)]
    assert all(isinstance(a, access.Attempt) for a in attempts)
    wait = limiter.acquire("a", 3, 100)
    assert wait == pytest.approx(60.0)
    assert isinstance(limiter.acquire("b", 3, 100), access.Attempt)  # another address is not locked
    limiter.refund(attempts[0])  # that one was the right password
    assert isinstance(limiter.acquire("a", 3, 100), access.Attempt)
    now[0] += 60.5
    assert limiter.failures("a") == 0 and isinstance(limiter.acquire("a", 3, 100), access.Attempt)

"""AppTest helpers: AppTest never fires ``st.fragment(run_every=...)`` by itself, so a test
reruns the script until the step running in the background has ended, as the polling
fragment would."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

PENDING = ("story_task", "approve_task", "rewrite_task", "preview_task", "story_retry")
# The queue of stories runs on the engine, not in a session: tests wait for it with
# ``settle_queue`` below.


def pending(at: AppTest) -> bool:
    """A background step of this session is running (a story, a rewrite, an approval, the
    hero sheet being drawn, a voice preview, narration lines being written or spoken)."""
    keys = list(at.session_state.keys())
    if any(k in at.session_state and at.session_state[k] for k in PENDING):
        return True
    if any(str(k).startswith("hero_polling_") and at.session_state[k] for k in keys):
        return True
    return narration_busy(at.session_state.get("voice_job"))


def narration_busy(job_id: str | None) -> bool:
    """The narration of the job the Voice page showed is being written, spoken or rewritten."""
    from foxpipe import app
    from foxpipe.engine import shortjobs

    reg = app.current()
    if not job_id or reg is None:
        return False
    return (
        shortjobs.writing(reg, job_id)
        or shortjobs.speaking(reg, job_id)
        or bool(shortjobs.rewriting(reg, job_id))
    )


def queue_pending() -> bool:
    """The engine's queue of stories still has a story waiting or being made."""
    from foxpipe import app
    from foxpipe.channel import queue

    reg = app.current()
    if reg is None:
        return False
    items = queue.items(reg)
    if any(i.state in (queue.WRITING, queue.IMAGES) for i in items):
        return True
    return not queue.paused(reg) and any(i.state == queue.WAITING for i in items)


def settle_queue(at: AppTest, timeout: float = 120.0) -> AppTest:
    """Rerun until the queue has nothing waiting or being made (or is paused), or fail."""
    deadline = time.monotonic() + timeout
    while queue_pending():
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not settle within {timeout}s")
        time.sleep(0.1)
        at.run()
    return at.run()


def checking(at: AppTest) -> bool:
    """The open gallery's continuity checks are running (or a slot still waits for its verdict).
    Not part of ``pending``: AppTest reruns the page the test last switched to, so rerunning
    while checks run would take a page that just switched to the gallery back to where it was;
    wait on the gallery itself with ``settle_checks``."""
    from foxpipe import app

    reg = app.current()
    job_id = at.query_params.get("job") or at.session_state.get("job_id")
    if isinstance(job_id, list):
        job_id = job_id[0] if job_id else None
    if reg is None or not isinstance(job_id, str):
        return False
    job = reg.get(job_id)
    return bool(reg.checks_running(job_id)) or (
        job is not None and any(s.checking for s in job.slots)
    )


def settle(at: AppTest, timeout: float = 60.0) -> AppTest:
    """Rerun until no background step of this session is pending (or fail)."""
    deadline = time.monotonic() + timeout
    while pending(at):
        if time.monotonic() > deadline:
            raise AssertionError(f"a background step did not end within {timeout}s")
        time.sleep(0.05)
        at.run()
    return at


def settle_checks(at: AppTest, timeout: float = 60.0) -> AppTest:
    """Rerun the gallery until its continuity checks have ended (or fail)."""
    deadline = time.monotonic() + timeout
    while checking(at):
        if time.monotonic() > deadline:
            raise AssertionError(f"the continuity checks did not end within {timeout}s")
        time.sleep(0.05)
        at.run()
    return at.run()


def _state(at: AppTest, key: str) -> object:
    return at.session_state.get(key)


def click_write(at: AppTest, timeout: float = 60.0) -> AppTest:
    """Press the quiz's "Write my story". With valid answers the app opens the Scenes page at
    once and writes the story there in the background: follow it (AppTest reruns the page a
    test last switched to) and wait for the story."""
    at.button(key="write_story").click().run()
    if not _state(at, "quiz_errors"):  # the answers were valid: the story was started
        at.switch_page("pages/scenes.py")
    return settle(at, timeout)


def click_approve(at: AppTest, timeout: float = 60.0) -> AppTest:
    """Press "Approve scenes". The app opens the gallery (or the Hero page, when the hero's
    reference sheet comes first) at once and prepares the images there: follow it and wait
    until the job is made."""
    before = _state(at, "approve_page")
    at.button(key="approve_scenes").click().run()
    started = _state(at, "approve_page")
    if started and started != before:  # (page, task): an approval was started
        at.switch_page(started[0])
    return settle(at, timeout)

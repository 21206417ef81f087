"""AppTest helpers: AppTest never fires ``st.fragment(run_every=...)`` by itself, so a test
reruns the script until the step running in the background has ended, as the polling
fragment would."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

PENDING = ("story_task", "approve_task", "rewrite_task")


def pending(at: AppTest) -> bool:
    """A background step of this session is running (a story, a rewrite, an approval, the
    hero sheet being drawn)."""
    keys = list(at.session_state.keys())
    if any(k in at.session_state and at.session_state[k] for k in PENDING):
        return True
    return any(str(k).startswith("hero_polling_") and at.session_state[k] for k in keys)


def checking(at: AppTest) -> bool:
    """The open gallery's continuity checks are running (or a slot still waits for its verdict).
    Not part of ``pending``: AppTest reruns the page the test last switched to, so rerunning
    while checks run would take a page that just switched to the gallery back to where it was;
    wait on the gallery itself with ``settle_checks``."""
    from foxpipe import app

    reg = app.current()
    job_id = at.query_params.get("job") or (at.session_state["job_id"] if "job_id" in at.session_state else None)  # noqa: SIM401  (AppTest state has no get)
    if isinstance(job_id, list):
        job_id = job_id[0] if job_id else None
    if reg is None or not isinstance(job_id, str):
        return False
    job = reg.get(job_id)
    return bool(reg.checks_running(job_id)) or (job is not None and any(s.checking for s in job.slots))


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

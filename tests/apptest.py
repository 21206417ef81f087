"""AppTest helpers: AppTest never fires ``st.fragment(run_every=...)`` by itself, so a test
reruns the script until the step running in the background has ended, as the polling
fragment would. Between reruns the helpers wait on the product's own state (the app's task
table, the engine's work), not on reruns: a rerun takes 50-150 ms and competes for the GIL
with the very step it waits for. The page is rerun as soon as the state says the step has
ended (and, while it runs, at most every ``REFRESH`` seconds, as the browser's polling
fragment does), so each test still asserts on what the page shows at the end."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamlit.testing.v1 import AppTest

# How often a page is rerun while the state it waits on has not changed: the app's own
# polling period (GALLERY_REFRESH, 1 s). A rerun also comes as soon as the state has changed.
REFRESH = 1.0
# How often the product's state is looked at between reruns (cheap reads, no page run).
POLL = 0.02
# Never two reruns closer than this (a page that keeps a step pending after the product says
# it ended is rerun as often as before, not back to back).
GAP = 0.05

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


def steps_running(at: AppTest) -> bool:
    """What ``pending`` names (in the session the last run left) is still running in the
    product: its task in the app's task table, the hero's drawing on the engine, the
    narration. False once all of it has ended: the next rerun takes the results."""
    from foxpipe import app

    for k in PENDING:
        value = at.session_state.get(k)
        if isinstance(value, (tuple, list)) and value:  # rewrite_task: (scene, task id)
            value = value[-1]
        if isinstance(value, str) and (t := app.task(value)) is not None and t.running:
            return True
    for k in list(at.session_state.keys()):
        job = str(k).removeprefix("hero_polling_")
        if job != str(k) and at.session_state[k] and engine_running(job, "hero-"):
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


def engine_running(job_id: str | None = None, prefix: str = "") -> bool:
    """The engine has work in flight: an image, an upload, or other background work (a task,
    a hero drawing, a check, a video, the queue); only a job's work whose key starts with
    ``prefix`` when ``job_id`` is given. Read from the engine's own tables."""
    from foxpipe import app

    reg = app.current()
    return reg is not None and reg.working(job_id, prefix)


def wait_state(ready: Callable[[], object], deadline: float, what: str) -> bool:
    """Sleep (short sleeps, no page run) until ``ready()`` holds, or the engine has nothing in
    flight (a page may start the next step), or ``REFRESH`` seconds have passed (the page's
    own polling period). Fails past ``deadline``. Whether ``ready()`` held."""
    until = time.monotonic() + REFRESH
    while True:
        if ready():
            return True
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"{what}: still not done at the deadline")
        if now > until or not engine_running():
            return False
        time.sleep(POLL)


def rerun_until(
    at: AppTest,
    ready: Callable[[], object],
    page: Callable[[AppTest], object] | None = None,
    timeout: float = 60.0,
    what: str = "the page never reached the expected state",
    check: bool = True,
    each: Callable[[AppTest], object] | None = None,
) -> AppTest:
    """Rerun the page until the product's state ``ready()`` holds, and ``page(at)`` holds for
    a run made once it did; between reruns wait on the state (``wait_state``). With ``check``,
    every run is checked for an exception; ``each(at)`` is called after every run (checks of
    the page while the work goes on). Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = -GAP
    while True:
        was_ready = wait_state(ready, deadline, what)
        last = _run_spaced(at, last)
        if check:
            assert not at.exception, at.exception
        if each is not None:
            each(at)
        if was_ready and (page is None or page(at)):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(what)


def settle_job(
    at: AppTest,
    job_id: str,
    timeout: float = 120.0,
    each: Callable[[AppTest], object] | None = None,
) -> AppTest:
    """Rerun the gallery until the job's images have all ended (``each(at)`` after every run),
    then once more; or fail."""
    from foxpipe import app

    reg = app.current()
    assert reg is not None, "no engine: open the page first"
    return rerun_until(
        at,
        lambda: reg.get(job_id).done,
        timeout=timeout,
        check=False,
        each=each,
        what=f"the gallery never finished within {timeout}s",
    )


def _run_spaced(at: AppTest, last: float) -> float:
    """Rerun the page, at least ``GAP`` seconds after the last run started at ``last``; the
    time this run started."""
    time.sleep(max(0.0, last + GAP - time.monotonic()))
    started = time.monotonic()
    at.run()
    return started


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
    """Wait until the queue has nothing waiting or being made (or is paused), rerunning the
    page as its polling fragment would, then rerun it once more; or fail."""
    what = f"the queue did not settle within {timeout}s"
    return rerun_until(at, lambda: not queue_pending(), timeout=timeout, what=what, check=False)


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
    """Rerun until no background step of this session is pending (or fail): wait until the
    product says the pending steps have ended, rerun so the page takes them, and again only
    while the page has started another."""
    deadline = time.monotonic() + timeout
    what = f"a background step did not end within {timeout}s"
    last = -GAP
    while pending(at):
        if time.monotonic() > deadline:
            raise AssertionError(what)
        wait_state(lambda: not steps_running(at), deadline, what)
        last = _run_spaced(at, last)
    return at


def settle_checks(at: AppTest, timeout: float = 60.0) -> AppTest:
    """Wait until the gallery's continuity checks have ended (rerunning it as its polling
    fragment would), then rerun it; or fail."""
    what = f"the continuity checks did not end within {timeout}s"
    return rerun_until(at, lambda: not checking(at), timeout=timeout, what=what, check=False)


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

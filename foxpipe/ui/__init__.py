"""The thin Streamlit adapter: settings from st.secrets, the cached registry, session
state, the sidebar. Pages use these; the rest of the package never imports streamlit."""

from __future__ import annotations

import hmac
import logging
import os
import runpy
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import streamlit as st

from foxpipe import access, safety
from foxpipe import app as workflow
from foxpipe.config import Settings, load_settings
from foxpipe.domain import quiz
from foxpipe.domain.models import new_id
from foxpipe.engine.jobs import JobRegistry

log = logging.getLogger(__name__)

QUIZ_PAGE = "pages/quiz.py"
SCENES_PAGE = "pages/scenes.py"
HERO_PAGE = "pages/hero.py"
GALLERY_PAGE = "pages/gallery.py"
HISTORY_PAGE = "pages/history.py"
LIBRARY_PAGE = "pages/library.py"  # the hero library
QUEUE_PAGE = "pages/queue.py"  # the queue of stories
VOICE_PAGE = "pages/voice.py"  # the finished Short: narrator, lines, music


def _secrets() -> tuple[dict[str, Any], str]:
    """st.secrets as a dict; a missing file is fine, a broken one is reported."""
    try:
        return {k: st.secrets[k] for k in st.secrets}, ""
    except FileNotFoundError:
        return {}, ""
    except Exception as e:  # a secrets.toml that does not parse
        name = type(e).__name__
        if "NotFound" in name:
            return {}, ""
        return (
            {},
            "`.streamlit/secrets.toml` could not be read (is it valid TOML?); using the environment only.",
        )


def settings() -> Settings:
    if "_settings" not in st.session_state:
        secrets, problem = _secrets()
        s = load_settings(secrets)
        extra: dict[str, Any] = {"auth_configured": "auth" in secrets}
        if problem:
            extra["problems"] = (*s.problems, problem)
        st.session_state._settings = Settings(**{**s.__dict__, **extra})
        safety.install_log_redaction()
        safety.register_secrets(st.session_state._settings.secret_values())
    return st.session_state._settings


def registry() -> JobRegistry:
    """The process's engine (never in a Streamlit cache: see foxpipe.app.engine). The app's
    first page run on a new engine picks up the queue of stories from the store (the command
    line, which makes the same engine, leaves the queue to the app)."""
    reg = workflow.engine(settings())
    with _QUEUE_LOCK:
        if reg not in _QUEUE_RECOVERED:
            _QUEUE_RECOVERED.add(reg)
            from foxpipe.channel import queue

            queue.recover(reg)
    return reg


def studio() -> workflow.Studio:
    """What the pages do and read (foxpipe.app.Studio), on the process's engine."""
    registry()  # a new engine picks up the queue of stories first
    return workflow.studio(settings())


_QUEUE_LOCK = threading.Lock()
_QUEUE_RECOVERED: weakref.WeakSet[JobRegistry] = (
    weakref.WeakSet()
)  # engines whose queue was picked up


# ------------------------------------------------------------------ who is using the app
# The owner of each story: the signed-in e-mail when the app uses st.login; otherwise an id
# kept in the browser's address as ``?me=...`` (Streamlit 1.67 has no API to write a cookie or
# local storage without a custom frontend component). It survives reloads and bookmarks of any
# page; a link shared from the address bar carries it along, so the app's share links leave it
# out. It is a convenience ("Mine" in History, asking before acting on someone else's gallery),
# not an access control: the password or the sign-in is.
ME_PARAM = "me"


def _valid_token(value: Any) -> bool:
    return (
        isinstance(value, str)
        and 8 <= len(value) <= 64
        and all(c.isascii() and (c.isalnum() or c in "-_") for c in value)
    )


def _signed_in_email() -> str:
    try:
        if st.user.is_logged_in:
            return str(st.user.get("email", "") or "")
    except Exception:  # no sign-in configured
        pass
    return ""


def me() -> str:
    """Who is using the app (see above)."""
    ss = st.session_state
    email = _signed_in_email()
    if email:
        ss.owner = email
        return email
    token = st.query_params.get(ME_PARAM)
    if "owner" not in ss or "@" in str(ss.owner):
        ss.owner = token if _valid_token(token) else new_id()
    if token != ss.owner:
        st.query_params[ME_PARAM] = ss.owner  # on every page, so a reload or bookmark keeps it
    return ss.owner


def not_mine(job: Any) -> bool:
    """A gallery someone else made (acting on it asks first)."""
    return bool(getattr(job, "owner", "")) and job.owner != me()


def init_state() -> None:
    ss = st.session_state
    me()
    if "answers" not in ss:
        ss.answers = quiz.defaults()
    ss.setdefault("quiz_errors", {})
    ss.setdefault("story", None)
    ss.setdefault("job_id", None)
    ss.setdefault("hero_id", None)  # a saved hero the next story is made with


def current_job_id() -> str | None:
    jid = st.query_params.get("job") or st.session_state.get("job_id")
    return jid if isinstance(jid, str) and jid else None


def ui_store_label(eng: workflow.Studio) -> str:
    if eng.store_is_sqlite:
        return "a local SQLite file (set DATABASE_URL to keep stories across restarts on Community Cloud)"
    return "PostgreSQL (stories survive restarts)"


def sidebar() -> None:
    s = settings()
    eng = studio()
    # Problems first, then the statuses: a provider records its state before its problem, so
    # this order never shows a problem beside a status that predates it.
    problems = [
        p for p in (*s.problems, *workflow.runtime_problems(s), eng.store_problem, eng.problem) if p
    ]
    statuses = workflow.service_status(s)
    with st.sidebar:
        st.subheader("Services")
        if s.offline:
            st.info(
                "**Offline mode**: stories and images are made on this machine by the built-in "
                "writer and renderer. Add `OPENAI_API_KEY` for real stories and images.",
                icon=":material/cloud_off:",
            )
        for svc in statuses:
            icon = ":material/check_circle:" if svc.live else ":material/radio_button_unchecked:"
            st.markdown(f"{icon} **{svc.name}**: {svc.detail}")
        st.markdown(f":material/database: **Store**: {ui_store_label(eng)}")
        for p in problems:
            st.warning(p, icon=":material/warning:")
        if s.openai_live and not s.app_password:
            st.warning(
                "Real keys are live and the app has no password: anyone with the link can spend "
                "on this account. Set `APP_PASSWORD`.",
                icon=":material/lock_open:",
            )


def _pause(seconds: float) -> None:
    time.sleep(seconds)


def client_address() -> str:
    """The browser's address as Streamlit sees it (behind a proxy, the proxy's: then the
    overall limit is what protects the password)."""
    try:
        ip = st.context.ip_address
    except Exception:  # no request context (bare script runs)
        ip = None
    return ip if isinstance(ip, str) and ip else access.UNKNOWN_CLIENT


def allowed() -> bool:
    """Whether this session may see the app (password given, or signed in)."""
    s = settings()
    if s.auth_configured:
        if not st.user.is_logged_in:
            return False
        return email_allowed(str(st.user.get("email") or ""), s.allowed_email_domains)
    return not s.app_password or bool(st.session_state.get("authenticated"))


def email_allowed(email: str, domains: str) -> bool:
    wanted = [d.strip().lower().lstrip("@") for d in domains.split(",") if d.strip()]
    if not wanted:
        return True
    return "@" in (email or "") and email.rsplit("@", 1)[1].lower() in wanted


def _check_password() -> None:
    """Wrong passwords are limited for the whole process (per client address and overall,
    foxpipe.access.LIMITER), so neither parallel sessions nor a new session get more tries."""
    ss = st.session_state
    s = settings()
    given = ss.get("gate_password", "")
    ss.gate_password = ""
    client = client_address()
    attempt = access.LIMITER.acquire(
        client, s.password_failures_per_client, s.password_failures_overall
    )
    if not isinstance(attempt, access.Attempt):
        ss.gate_message = f"Too many wrong passwords. Try again in {int(attempt) + 1} s."
        log.warning("[ACCESS] password check refused: too many wrong passwords (client %s)", client)
        return
    if hmac.compare_digest(given.encode(), s.app_password.encode()):
        access.LIMITER.refund(attempt)
        ss.authenticated = True
        ss.gate_message = ""
        log.info("[ACCESS] signed in with the team password (client %s)", client)
        return
    # Never the guess itself: only that it failed, from where, and how many in the window.
    log.warning(
        "[ACCESS] wrong password (client %s; %d wrong in the last minute from it, %d in all)",
        client,
        access.LIMITER.failures(client),
        access.LIMITER.failures(),
    )
    _pause(1)  # slows guessing; outside the limiter's lock
    wait = access.LIMITER.wait(client, s.password_failures_per_client, s.password_failures_overall)
    ss.gate_message = (
        f"Too many wrong passwords. Try again in {int(wait) + 1} s." if wait else "Wrong password."
    )


def access_gate() -> None:
    """Render only the sign-in (password form or OIDC login) and stop, until allowed."""
    if allowed():
        return
    s = settings()
    st.title("foxpipe")
    if s.auth_configured:
        if st.user.is_logged_in:
            st.error("This account's e-mail domain is not allowed here.", icon=":material/block:")
            st.button("Log out", on_click=st.logout)
        else:
            st.caption("Sign in with your team account to continue.")
            st.button("Log in", on_click=st.login, type="primary", icon=":material/login:")
        st.stop()
    with st.form("gate"):
        st.text_input("Team password", type="password", key="gate_password")
        st.form_submit_button("Enter", on_click=_check_password, type="primary")
    if msg := st.session_state.get("gate_message"):
        st.error(msg, icon=":material/lock:")
    st.stop()


def entry_gate() -> None:
    """Called by streamlit_app.py after st.navigation: the gate, then the sidebar."""
    access_gate()
    sidebar()
    st.session_state._entry_ran = True  # only once the gate let this run through


ENTRY = Path(__file__).resolve().parents[2] / "streamlit_app.py"


def page_start() -> None:
    """First line of every page. Streamlit runs a ``pages/`` script on its own, without the
    entry file, until st.navigation has run once in the process (its multipage v1 path: the
    first request to a fresh server, e.g. a shared /gallery?job=… link). Then the entry file
    runs here instead: the page config, the app's navigation, the gate and the sidebar, and
    the requested page through st.navigation, exactly as on any other visit."""
    if st.session_state.pop("_entry_ran", False):
        return
    runpy.run_path(str(ENTRY), run_name="__foxpipe_entry__")
    st.stop()  # the page already ran inside the entry file


_PERF_LOG = os.environ.get("FOXPIPE_PERF_LOG", "")
_perf_lock = threading.Lock()


def record_timing(name: str, started: float) -> None:
    """Append how long a UI step took (ms) to FOXPIPE_PERF_LOG, for the load benchmark."""
    if _PERF_LOG:
        ms = (time.perf_counter() - started) * 1000
        with _perf_lock, open(_PERF_LOG, "a", encoding="utf-8") as f:
            f.write(f"{name} {ms:.2f}\n")


def require_job(reg: workflow.Studio, missing: str, back: str, back_label: str) -> Any:
    """The job named by the URL (or this session), or a message and a link back, and stop."""
    job_id = current_job_id()
    need(job_id is not None, missing, back, back_label)
    assert job_id is not None  # need() stopped the page otherwise
    try:
        job = reg.load(job_id)
    except workflow.StoreError as e:  # stored, but unreadable (or the store is down): say which
        st.error(e.message, icon=":material/error:")
        st.page_link(HISTORY_PAGE, label="Back to History", icon=":material/arrow_back:")
        st.stop()
    if job is None:
        st.error(
            "Gallery not found. The link may be mistyped or the job was removed.",
            icon=":material/search_off:",
        )
        st.page_link(QUIZ_PAGE, label="Start a new story", icon=":material/arrow_back:")
        st.stop()
    st.session_state.job_id = job.id
    return job


def need(condition: bool, message: str, page: str, label: str) -> None:
    """Guard for a page reached out of order: say what to do first, link back, stop."""
    if not condition:
        st.info(message, icon=":material/info:")
        st.page_link(page, label=label, icon=":material/arrow_back:")
        st.stop()


def plain(text: Any) -> str:
    """User or service text for an element that renders Markdown (st.markdown, st.caption,
    st.title, st.error, ...), shown literally: no link, image, HTML or formatting in it takes
    effect."""
    return safety.escape_markdown(text)


def show_image(src: str, **kwargs: Any) -> bool:
    """st.image, or a short note in its place when the file is missing or damaged: one bad
    file must not take the rest of the page down with it."""
    try:
        st.image(src, **kwargs)
        return True
    except Exception as e:  # a missing, truncated or corrupt file (Streamlit decodes it here)
        log.warning(
            "[GALLERY] image %s could not be shown: %s",
            os.path.basename(str(src)),
            type(e).__name__,
        )
        st.warning(
            "This image's file is missing or damaged on the server.", icon=":material/broken_image:"
        )
        return False


def image_src(img: Any) -> str:
    """What a gallery tile shows: a scaled Cloudinary URL when uploaded, else the local thumbnail."""
    if img.uploaded:
        return workflow.thumbnail_url(img.url)
    return img.thumb_path or img.local_path


def ended_task(state_key: str, param: str) -> workflow.Task | None:
    """For a fragment polling a background step (story writing, writing it again): while the
    task named by ``st.session_state[state_key]`` runs, show its stage and progress and return
    None; once it has ended, forget it (the session key and the address's ``param``) and
    return it."""
    t = workflow.task(st.session_state.get(state_key))
    if t is None:
        return None
    if t.running:
        st.info(t.stage, icon=":material/hourglass_top:")
        st.progress(min(0.95, (time.time() - t.started) / 60), text="This takes up to a minute.")
        return None
    st.session_state.pop(state_key, None)
    st.query_params.pop(param, None)
    return t


# ---------------------------------------------------------------- switching pages
# A page switch made by the script (st.switch_page) while a polling fragment of the page is
# armed (``st.fragment(run_every=...)``) races the browser: a poll sent just before the new page
# reached it reruns the old page's fragment after the new page has drawn, and Streamlit then
# clears the new page (and drops the connection on the new page's next refresh). So a page
# switches only in a run that a click started with nothing polling, and the work the click
# started is polled on the page it opened: the story being written on the Scenes page, the
# approval on the gallery (or the Hero page). Navigation from the sidebar or a page link is
# safe: the browser stops its timers itself first.


def taken(task_id: str) -> bool:
    """Whether this session already took the result of this background task (the browser's
    Back button reruns a page with an earlier address, which may still name it)."""
    return task_id in st.session_state.get("taken_tasks", ())


def take(task_id: str) -> None:
    st.session_state.setdefault("taken_tasks", set()).add(task_id)


# A second click on a button that switches pages can reach the server before the browser saw
# the first click's switch: it was made on the same render of the page. Pages count the renders
# that drew such a button (``rendered``), right after drawing it; a click made on the render the
# last click was made on is the same click again (``same_click``).
def rendered(page: str) -> None:
    key = f"renders_{page}"
    st.session_state[key] = st.session_state.get(key, 0) + 1


def clicked(page: str, started: Any) -> None:
    """Remember what this click on the page's switching button started."""
    st.session_state[f"last_click_{page}"] = (st.session_state.get(f"renders_{page}", 0), started)


def same_click(page: str) -> Any:
    """What the last click on this page's switching button started, when this click was made on
    the same render of the page (a double click); else None."""
    last = st.session_state.get(f"last_click_{page}")
    if last and last[0] == st.session_state.get(f"renders_{page}", 0):
        return last[1]
    return None


def approval() -> Any:
    """At the top of the page "Approve scenes" opened: while the scenes' image prompts are
    written in the background (the task is in the address, ``?approving=``, so a reload finds
    it), show its progress and stop the page; once it has ended, take its job into the session
    and the address and let the page go on (returned: the ended approval, else None), or say
    why there is none, with a link back. An address naming a job (a link from History, the
    queue, a teammate) is that job's page, even while this session approves other scenes."""
    tid = st.query_params.get("approving") or (
        None if st.query_params.get("job") else st.session_state.get("approve_task")
    )
    if not tid:
        return None
    if taken(tid):  # Back to an address of an approval already taken: nothing to do
        st.query_params.pop("approving", None)
        if st.session_state.get("approve_task") == tid:
            st.session_state.pop("approve_task", None)
        return None
    t = workflow.task(tid)
    if t is None or not t.running:
        take(tid)
        if st.session_state.get("approve_task") == tid:
            st.session_state.pop("approve_task", None)
        st.query_params.pop("approving", None)
    if t is None:  # not known to this server: it restarted before the job was made
        if current_job_id() is None:
            st.warning(
                "The approval was interrupted (the app restarted); approve the scenes again.",
                icon=":material/warning:",
            )
            st.page_link(SCENES_PAGE, label="Back to the scenes", icon=":material/arrow_back:")
            st.stop()
        return None
    if t.status == "done":
        st.session_state.job_id = t.result.job_id
        st.query_params["job"] = t.result.job_id
        if t.result.problem:
            st.session_state.prompt_notice = t.result.problem
        return t.result
    if t.status == "failed":
        st.title("The images were not started")
        st.error(plain(t.error), icon=":material/error:")
        st.caption("Your scenes are kept.")
        st.page_link(SCENES_PAGE, label="Back to the scenes", icon=":material/arrow_back:")
        st.stop()
    st.session_state.approve_task = tid
    if st.query_params.get("approving") != tid:
        st.query_params["approving"] = tid
    wait_for(tid, "Preparing the images")
    return None


def wait_for(tid: str, title: str) -> None:
    """Show the progress of the background task ``tid`` under ``title`` and stop the page; once
    the task has ended, one full run of this same page (nothing is switched) takes its result."""
    st.title(title)
    _progress(tid)
    st.stop()


@st.fragment(run_every=0.5)
def _progress(tid: str) -> None:
    t = workflow.task(tid)
    if t is not None and t.running:
        st.info(t.stage, icon=":material/hourglass_top:")
        st.progress(min(0.95, (time.time() - t.started) / 60), text="This takes up to a minute.")
        return
    st.rerun()

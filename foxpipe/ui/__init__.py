"""The thin Streamlit adapter: settings from st.secrets, the cached registry, session
state, the sidebar. Pages use these; the rest of the package never imports streamlit."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from typing import Any

import streamlit as st

from foxpipe.config import Settings, load_settings
from foxpipe.domain import quiz
from foxpipe.domain.models import new_id
from foxpipe.engine.jobs import JobRegistry
from foxpipe.providers import registry as services

log = logging.getLogger(__name__)

QUIZ_PAGE = "pages/quiz.py"
SCENES_PAGE = "pages/scenes.py"
HERO_PAGE = "pages/hero.py"
GALLERY_PAGE = "pages/gallery.py"
HISTORY_PAGE = "pages/history.py"


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
        return {}, "`.streamlit/secrets.toml` could not be read (is it valid TOML?); using the environment only."


def settings() -> Settings:
    if "_settings" not in st.session_state:
        secrets, problem = _secrets()
        s = load_settings(secrets)
        extra: dict[str, Any] = {"auth_configured": "auth" in secrets}
        if problem:
            extra["problems"] = (*s.problems, problem)
        st.session_state._settings = Settings(**{**s.__dict__, **extra})
    return st.session_state._settings


def _settings_key(s: Settings) -> str:
    return hashlib.sha256(repr(s).encode()).hexdigest()


REGISTRIES: list[JobRegistry] = []  # every registry made in this process, for clean shutdown


@st.cache_resource(show_spinner=False)
def _registry(key: str, _settings: Settings) -> JobRegistry:
    reg = JobRegistry(_settings)
    REGISTRIES.append(reg)
    from foxpipe.engine import videojobs

    videojobs.resume_all(reg)  # clips paid for before a restart are collected, never resubmitted
    return reg


def registry() -> JobRegistry:
    s = settings()
    return _registry(_settings_key(s), s)


def init_state() -> None:
    ss = st.session_state
    if "owner" not in ss:
        ss.owner = new_id()
    if "answers" not in ss:
        ss.answers = quiz.defaults()
    ss.setdefault("quiz_errors", {})
    ss.setdefault("story", None)
    ss.setdefault("job_id", None)


def current_job_id() -> str | None:
    jid = st.query_params.get("job") or st.session_state.get("job_id")
    return jid if isinstance(jid, str) and jid else None


def sidebar() -> None:
    s = settings()
    with st.sidebar:
        st.subheader("Services")
        if s.offline:
            st.info(
                "**Offline mode**: stories and images are made on this machine by the built-in "
                "writer and renderer. Add `OPENAI_API_KEY` for real stories and images.",
                icon=":material/cloud_off:",
            )
        for svc in services.status(s):
            icon = ":material/check_circle:" if svc.live else ":material/radio_button_unchecked:"
            st.markdown(f"{icon} **{svc.name}**: {svc.detail}")
        for p in (*s.problems, *services.runtime_problems(s)):
            st.warning(p, icon=":material/warning:")
        if s.openai_live and not s.app_password:
            st.warning(
                "Real keys are live and the app has no password: anyone with the link can spend "
                "on this account. Set `APP_PASSWORD`.",
                icon=":material/lock_open:",
            )


MAX_TRIES = 5


def _pause(seconds: float) -> None:
    time.sleep(seconds)


LOCKOUT_SECONDS = 60


def allowed() -> bool:
    """Whether this session may see the app (password given, or signed in)."""
    s = settings()
    if s.auth_configured:
        if not st.user.is_logged_in:
            return False
        return email_allowed(st.user.get("email", ""), s.allowed_email_domains)
    return not s.app_password or bool(st.session_state.get("authenticated"))


def email_allowed(email: str, domains: str) -> bool:
    wanted = [d.strip().lower().lstrip("@") for d in domains.split(",") if d.strip()]
    if not wanted:
        return True
    return "@" in (email or "") and email.rsplit("@", 1)[1].lower() in wanted


def _check_password() -> None:
    ss = st.session_state
    now = time.time()
    if now < ss.get("gate_locked_until", 0):
        ss.gate_message = f"Too many wrong passwords. Try again in {int(ss.gate_locked_until - now) + 1} s."
        return
    given = ss.get("gate_password", "")
    if hmac.compare_digest(given.encode(), settings().app_password.encode()):
        ss.authenticated = True
        ss.gate_failures = 0
        ss.gate_message = ""
        return
    _pause(1)  # slows guessing
    ss.gate_failures = ss.get("gate_failures", 0) + 1
    if ss.gate_failures >= MAX_TRIES:
        ss.gate_locked_until = now + LOCKOUT_SECONDS
        ss.gate_failures = 0
        ss.gate_message = f"Too many wrong passwords. Try again in {LOCKOUT_SECONDS} s."
    else:
        ss.gate_message = "Wrong password."
    ss.gate_password = ""


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


def page_start() -> None:
    """First line of every page. Streamlit runs a ``pages/`` script on its own (without
    the entry file) when st.navigation has not yet run in the process (its multipage v1
    compatibility path, and every AppTest run): the state, gate and sidebar must then
    come from here, or a deep link would skip the access gate."""
    if st.session_state.pop("_entry_ran", False):
        return
    init_state()
    access_gate()
    sidebar()


_PERF_LOG = os.environ.get("FOXPIPE_PERF_LOG", "")
_perf_lock = threading.Lock()


def record_timing(name: str, started: float) -> None:
    """Append how long a UI step took (ms) to FOXPIPE_PERF_LOG, for the load benchmark."""
    if _PERF_LOG:
        ms = (time.perf_counter() - started) * 1000
        with _perf_lock, open(_PERF_LOG, "a", encoding="utf-8") as f:
            f.write(f"{name} {ms:.2f}\n")


def require_job(reg: JobRegistry, missing: str, back: str, back_label: str) -> Any:
    """The job named by the URL (or this session), or a message and a link back, and stop."""
    job_id = current_job_id()
    need(job_id is not None, missing, back, back_label)
    job = reg.get(job_id)
    if job is None:
        st.error("Gallery not found. The link may be mistyped or the job was removed.",
                 icon=":material/search_off:")
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


def image_src(img: Any) -> str:
    """What a gallery tile shows: a scaled Cloudinary URL when uploaded, else the local thumbnail."""
    if img.uploaded:
        from foxpipe.providers.cloudinary import thumbnail_url

        return thumbnail_url(img.url)
    return img.thumb_path or img.local_path

"""The thin Streamlit adapter: settings from st.secrets, the cached registry, session
state, the sidebar. Pages use these; the rest of the package never imports streamlit."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import streamlit as st

from foxpipe import quiz, services
from foxpipe.config import Settings, load_settings
from foxpipe.jobs import JobRegistry
from foxpipe.models import new_id

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
        if problem:
            s = Settings(**{**s.__dict__, "problems": (*s.problems, problem)})
        st.session_state._settings = s
    return st.session_state._settings


def _settings_key(s: Settings) -> str:
    return hashlib.sha256(repr(s).encode()).hexdigest()


REGISTRIES: list[JobRegistry] = []  # every registry made in this process, for clean shutdown


@st.cache_resource(show_spinner=False)
def _registry(key: str, _settings: Settings) -> JobRegistry:
    reg = JobRegistry(_settings)
    REGISTRIES.append(reg)
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
        for p in s.problems:
            st.warning(p, icon=":material/warning:")
        if s.openai_live and not s.app_password:
            st.warning(
                "Real keys are live and the app has no password: anyone with the link can spend "
                "on this account. Set `APP_PASSWORD`.",
                icon=":material/lock_open:",
            )


def need(condition: bool, message: str, page: str, label: str) -> None:
    """Guard for a page reached out of order: say what to do first, link back, stop."""
    if not condition:
        st.info(message, icon=":material/info:")
        st.page_link(page, label=label, icon=":material/arrow_back:")
        st.stop()

"""The access gate: password (with lockout) or OIDC sign-in with a domain allow-list."""

import time

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import access, ui

from .conftest import APP


@pytest.fixture
def gated(monkeypatch):
    monkeypatch.setenv("APP_PASSWORD", "correct horse")
    monkeypatch.setattr(ui, "_pause", lambda s: None)  # the 1 s pause after a wrong try
    return AppTest.from_file(APP, default_timeout=30)


def visible_text(at) -> str:
    return " ".join(
        str(e.value) for e in [*at.markdown, *at.error, *at.info, *at.title, *at.caption]
    )


def test_nothing_but_the_password_form_renders(gated):
    gated.run()
    assert not gated.exception
    assert len(gated.text_input) == 1 and gated.text_input[0].label == "Team password"
    assert not gated.selectbox and not gated.button[1:] and not gated.sidebar.markdown
    assert "Who is your hero" not in visible_text(gated)


def test_deep_link_to_gallery_is_gated_too(gated):
    gated.query_params["job"] = "whatever-id-12345"
    gated.run()
    gated.switch_page("pages/gallery.py").run()
    assert len(gated.text_input) == 1
    assert "Gallery" not in visible_text(gated)


def test_wrong_password_is_refused_and_right_one_opens(gated):
    gated.run()
    gated.text_input[0].set_value("nope")
    gated.button[0].click().run()
    assert any("Wrong password" in e.value for e in gated.error)
    assert not gated.selectbox
    gated.text_input[0].set_value("correct horse")
    gated.button[0].click().run()
    assert not gated.exception
    assert any(s.label == "Who is the hero?" for s in gated.selectbox)


def test_five_wrong_tries_lock_the_session_for_a_minute(gated, monkeypatch):
    gated.run()
    for _ in range(5):
        gated.text_input[0].set_value("bad")
        gated.button[0].click().run()
    assert any("Too many wrong passwords" in e.value for e in gated.error)
    # Even the right password is refused while locked.
    gated.text_input[0].set_value("correct horse")
    gated.button[0].click().run()
    assert not gated.selectbox
    assert any("Try again in" in e.value for e in gated.error)
    # After the minute it works.
    monkeypatch.setattr(access.LIMITER, "clock", lambda: time.monotonic() + 61)
    gated.text_input[0].set_value("correct horse")
    gated.button[0].click().run()
    assert any(s.label == "Who is the hero?" for s in gated.selectbox)


def test_wrong_password_waits_a_second(monkeypatch):
    monkeypatch.setenv("APP_PASSWORD", "pw-123456")
    pauses = []
    monkeypatch.setattr(ui, "_pause", pauses.append)
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.text_input[0].set_value("x")
    at.button[0].click().run()
    assert pauses == [1]


def test_oidc_login_when_auth_is_configured():
    at = AppTest.from_file(APP, default_timeout=30)
    at.secrets["auth"] = {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "x" * 32,
        "client_id": "id",
        "client_secret": "secret",
        "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
    }
    at.secrets["ALLOWED_EMAIL_DOMAINS"] = "example.org"
    at.user = {"is_logged_in": False}
    at.run()
    assert [b.label for b in at.button] == ["Log in"]
    at.user = {"is_logged_in": True, "email": "ann@elsewhere.com"}
    at.run()
    assert any("not allowed" in e.value for e in at.error)
    at.user = {"is_logged_in": True, "email": "ann@example.org"}
    at.run()
    assert not at.exception
    assert any(s.label == "Who is the hero?" for s in at.selectbox)


@pytest.mark.parametrize(
    "email, domains, ok",
    [
        ("a@x.org", "", True),
        ("a@x.org", "x.org", True),
        ("a@X.ORG", "x.org, y.org", True),
        ("a@z.org", "x.org", False),
        ("", "x.org", False),
        ("a@evilx.org", "x.org", False),
    ],
)
def test_email_domain_allow_list(email, domains, ok):
    assert ui.email_allowed(email, domains) is ok

"""Who made each story: History shows "Mine" by default and "Team" as a choice, and acting on
someone else's gallery asks once."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from foxpipe import app, ui
from foxpipe.config import load_settings
from foxpipe.domain.models import SlotStatus
from tests.conftest import APP

ME, TEAMMATE = "me-token-0001", "teammate-token-0002"


def job_of(copy_gallery, owner: str, title: str) -> str:  # noqa: ANN001
    """A finished gallery of ``owner`` (a copy of the template, tests/prefab.py) in the app's
    engine."""
    return copy_gallery(app.engine(load_settings({})), owner=owner, title=title)


def page(path: str, me: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["me"] = me
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(path)
    return at.run()


def text(at: AppTest) -> str:
    return " ".join(m.value for m in at.markdown)


def test_the_browser_id_is_kept_in_the_address_and_reused(clean_env):
    at = AppTest.from_file(APP, default_timeout=30).run()
    token = at.session_state.owner
    assert at.query_params["me"] == [token] or at.query_params["me"] == token
    again = page(ui.HISTORY_PAGE, token)
    assert again.session_state.owner == token  # a reload or bookmark is the same person


def test_history_shows_mine_by_default_and_the_team_on_request(clean_env, copy_gallery):
    job_of(copy_gallery, ME, "My fox story")
    job_of(copy_gallery, TEAMMATE, "Their owl story")
    at = page(ui.HISTORY_PAGE, ME)
    assert "My fox story" in text(at) and "Their owl story" not in text(at)
    at.session_state["history_whose"] = "Team"
    at.run()
    assert "My fox story" in text(at) and "Their owl story" in text(at)


def test_acting_on_someone_elses_gallery_asks_once(clean_env, copy_gallery):
    job_id = job_of(copy_gallery, TEAMMATE, "Their owl story")
    reg = app.current()
    at = page(ui.GALLERY_PAGE, ME, job=job_id)
    at.button(key=f"ok_{job_id}_0").click().run()
    assert reg.get(job_id).slots[0].status is SlotStatus.READY  # not yet: asked first
    assert at.button(key="confirm_other")
    at.button(key="confirm_other").click().run()
    assert reg.get(job_id).slots[0].status is SlotStatus.APPROVED
    at.button(key=f"ok_{job_id}_1").click().run()  # asked once per gallery
    assert reg.get(job_id).slots[1].status is SlotStatus.APPROVED


def test_my_own_gallery_asks_nothing(clean_env, copy_gallery):
    job_id = job_of(copy_gallery, ME, "My fox story")
    at = page(ui.GALLERY_PAGE, ME, job=job_id)
    at.button(key=f"ok_{job_id}_0").click().run()
    assert app.current().get(job_id).slots[0].status is SlotStatus.APPROVED

"""The app with Cloudinary and Google Sheets (loopback fakes), with bad configuration, and the
History page: AppTest runs of the real pages."""

from __future__ import annotations

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.config import load_settings
from foxpipe.domain.models import SlotStatus
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.registry import prompt_log
from tests.apptest import click_approve, click_write, rerun_until
from tests.conftest import APP, wait_until
from tests.fakes.cloudinary_server import CloudinaryServer
from tests.fakes.sheets_server import SheetsServer, make_key, point_gspread_at


@pytest.fixture(scope="module")
def key():
    return make_key()


@pytest.fixture
def cld():
    with CloudinaryServer() as state:
        yield state


@pytest.fixture
def sheets(key, monkeypatch):
    with SheetsServer(key[1]) as state:
        point_gspread_at(monkeypatch, state.base)
        yield state


def run_until(at: AppTest, predicate, timeout: float = 30.0, state=lambda: True) -> AppTest:
    """Rerun the page until ``predicate(at)`` holds for a run made once the product's
    ``state()`` held; between reruns wait on that state. Every run is checked for an exception."""
    return rerun_until(
        at, state, predicate, timeout=timeout, what="the app never reached the expected state"
    )


def sidebar_warnings(at: AppTest) -> list[str]:
    return [w.value for w in at.sidebar.warning]


def sidebar_text(at: AppTest) -> str:
    return "\n".join(m.value for m in at.sidebar.markdown)


def fresh_sidebar() -> AppTest:
    """A new session's first run. AppTest 1.67 keeps the entry script's sidebar elements only on
    the first run of a session under st.navigation (seen with a two-line app), so each sidebar
    check uses a fresh session."""
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def make_gallery(at: AppTest) -> str:
    """Quiz -> story -> approve scenes -> gallery; returns the job id once every image is made."""
    at.run()
    click_write(at)
    click_approve(at)
    at.run()
    job_id = (
        at.query_params["job"][0]
        if isinstance(at.query_params["job"], list)
        else at.query_params["job"]
    )

    def done() -> bool:
        reg = app.current()
        job = reg.get(job_id)
        return bool(job and job.done)

    run_until(at, lambda a: done(), state=done)  # its last run renders the finished job
    return job_id


def image_urls(at: AppTest) -> list[str]:
    return [img.proto.imgs[0].url for img in at.get("image")]


def test_gallery_uploads_to_cloudinary_and_logs_to_sheets(cld, sheets, key, monkeypatch, clean_env):
    monkeypatch.setenv("CLOUDINARY_URL", cld.url())
    monkeypatch.setenv("GOOGLE_SHEET_ID", sheets.sheet_id)
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", json.dumps(sheets.service_account(key[0])))
    at = AppTest.from_file(APP, default_timeout=30)
    job_id = make_gallery(at)
    text = sidebar_text(fresh_sidebar())
    assert "**Image hosting**: Cloudinary" in text and "**Prompt log**: Google Sheets" in text
    urls = image_urls(at)
    assert len(urls) == 20 and all(
        u.startswith(f"{cld.base}/{cld.cloud}/image/upload/c_scale,w_360/") for u in urls
    )
    assert len(cld.assets) == 20

    at.button(key="approve_all").click().run()
    plog = prompt_log(load_settings())
    assert plog.name == "sheets" and plog.flush(20)
    stories = sheets.rows("stories")[1:]
    assert len(stories) == 1 and stories[0][2] == job_id
    images = sheets.rows("images")[1:]
    assert sorted((r[3], r[8]) for r in images) == sorted(
        [(n, "ready") for n in range(1, 21)] + [(n, "approved") for n in range(1, 21)]
    )
    assert all(r[7].startswith(cld.base) for r in images)  # the hosted URL is logged


def test_failed_upload_offers_retry_upload(cld, monkeypatch):
    monkeypatch.setenv("CLOUDINARY_URL", cld.url())
    cld.fail(400, 400)  # not retried by the uploader: two images stay local
    at = AppTest.from_file(APP, default_timeout=30)
    job_id = make_gallery(at)
    buttons = [b for b in at.button if b.key and b.key.startswith("upload_")]
    assert len(buttons) == 2
    assert sum("Not uploaded" in c.value for c in at.caption) == 2

    reg = app.current()
    clicked: set[str] = set()
    deadline = time.monotonic() + 20
    while any(s.upload_error for s in reg.get(job_id).slots):
        assert time.monotonic() < deadline, (
            [(s.index, s.upload_error) for s in reg.get(job_id).slots if s.upload_error],
            [c.status for c in cld.calls],
            clicked,
        )
        fresh = [
            b for b in at.button if b.key and b.key.startswith("upload_") and b.key not in clicked
        ]
        if fresh:  # press each tile's "Retry upload" once
            clicked.add(fresh[0].key)
            fresh[0].click().run()
        else:  # the retried uploads run: wait on them, then show their outcome
            wait_until(lambda: not reg.uploads_running(job_id), timeout=20)
            at.run()
        assert not at.exception
    assert len(clicked) == 2
    run_until(at, lambda a: not any(b.key and b.key.startswith("upload_") for b in a.button))
    assert len(cld.assets) == 20
    job = app.current().get(job_id)
    assert all(s.image.uploaded for s in job.slots)


def test_bad_configuration_is_explained_and_the_app_runs_locally(monkeypatch, clean_env):
    monkeypatch.setenv("CLOUDINARY_URL", "cloudinary://only-a-key@cloud")
    monkeypatch.setenv("GOOGLE_SHEET_ID", "sheet-xyz")
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", '{"type": "service_account", "private_key": ')
    at = AppTest.from_file(APP, default_timeout=30)
    job_id = make_gallery(at)
    side = fresh_sidebar()
    warnings = " ".join(sidebar_warnings(side))
    assert "CLOUDINARY_URL must look like cloudinary://API_KEY:API_SECRET@CLOUD_NAME" in warnings
    assert "GOOGLE_SERVICE_ACCOUNT is not valid JSON" in warnings
    assert "only-a-key" not in warnings
    assert "**Image hosting**: Local files" in sidebar_text(
        side
    ) and "**Prompt log**: Local CSV" in sidebar_text(side)

    job = app.current().get(job_id)
    assert all(s.status is SlotStatus.READY and not s.image.uploaded for s in job.slots)
    assert CsvLog(clean_env).read("stories")["job_id"].tolist() == [job_id]
    # Each image's log row is written just after its slot shows it: wait for the 20th.
    wait_until(lambda: len(CsvLog(clean_env).read("images")) == 20, timeout=10)


def test_a_sheet_that_404s_shows_in_the_sidebar(sheets, key, monkeypatch, clean_env):
    monkeypatch.setenv("GOOGLE_SHEET_ID", "sheet-that-does-not-exist")
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT", json.dumps(sheets.service_account(key[0])))
    fresh_sidebar()  # the app's first run starts opening the sheet, in the background
    plog = prompt_log(load_settings())
    wait_until(lambda: "404" in plog.problem, timeout=20)  # the sheet is known to be missing
    side = fresh_sidebar()  # a new session's sidebar says so
    warning = next(w for w in sidebar_warnings(side) if "404" in w)
    assert (
        "GOOGLE_SHEET_ID was not found" in warning
        and sheets.service_account(key[0])["client_email"] in warning
    )
    assert "**Prompt log**: Local CSV for now" in sidebar_text(side)
    job_id = make_gallery(
        AppTest.from_file(APP, default_timeout=30)
    )  # the story still goes through
    rows = CsvLog(clean_env).read("stories")
    assert rows["job_id"].tolist() == [job_id]
    assert prompt_log(load_settings()).flush(10)
    assert CsvLog(clean_env).read("stories")["marker"].tolist() == ["NoSheet_404"]


def test_history_lists_past_stories_and_reopens_their_gallery(clean_env, copy_gallery):
    owner = "reviewer-0001"
    # A finished gallery of this browser (a copy of the template, tests/prefab.py), approved
    # on its page.
    job_id = copy_gallery(app.engine(load_settings({})), owner=owner)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["me"] = owner
    at.query_params["job"] = job_id
    at.switch_page("pages/gallery.py").run()
    assert not at.exception
    title = at.title[0].value
    at.button(key="approve_all").click().run()
    assert app.current().get(job_id).all_approved

    hist = AppTest.from_file(APP, default_timeout=30)
    hist.query_params["me"] = at.session_state.owner  # the same browser: its stories are "Mine"
    hist.switch_page("pages/history.py").run()
    assert not hist.exception
    entry = " ".join(m.value for m in hist.main.markdown)
    assert title in entry and "20 / 20 images approved" in entry
    links = [link for link in hist.get("page_link") if "Open gallery" in link.proto.label]
    assert len(links) == 1 and job_id in links[0].proto.query_string

    gallery = AppTest.from_file(APP, default_timeout=30)
    gallery.query_params["job"] = job_id
    gallery.switch_page("pages/gallery.py").run()
    assert not gallery.exception and gallery.title[0].value == title


def test_history_is_empty_at_first():
    at = AppTest.from_file(APP, default_timeout=30)
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert "No stories yet" in at.info[0].value

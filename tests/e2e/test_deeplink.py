"""A gallery link that is the very first request after the app starts renders like any visit:
the app's navigation, the wide layout and the gallery's title (not Streamlit's page list)."""

from __future__ import annotations

import pytest

from foxpipe.config import load_settings
from foxpipe.engine.jobs import JobRegistry
from tests.imagefakes import make_story

from .helpers import screenshot


@pytest.mark.e2e
def test_first_request_is_a_gallery_link(start_app, new_page, shots, clean_env):
    reg = JobRegistry(load_settings({}))  # a gallery made before this server started
    try:
        story = make_story()
        job_id = reg.create_job(story, [s.text for s in story.scenes], owner="someone", start=False)
    finally:
        reg.shutdown()
        reg.store.close()
    app = start_app()
    page = new_page()
    page.goto(f"{app.url}/gallery?job={job_id}")
    page.get_by_role("heading", name=story.title).wait_for(timeout=30_000)
    # The app's own navigation (top bar), not the automatic list of the pages/ folder.
    nav = page.locator('[data-testid="stTopNavLinkContainer"], header [data-testid="stNavLink"]')
    assert nav.count() >= 1, "the app's navigation is missing"
    for name in ("Quiz", "Gallery", "History"):
        assert page.get_by_role("link", name=name).count() >= 1, name
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0, (
        "Streamlit's pages/ listing is shown"
    )
    # The wide layout of the app (set by the entry file).
    main = page.locator('[data-testid="stMainBlockContainer"]').first
    assert main.bounding_box()["width"] > 1000
    assert page.title() == "foxpipe"
    screenshot(page, shots / "gallery-first-request.png")

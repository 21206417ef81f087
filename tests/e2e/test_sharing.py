"""Scenario 4: a second browser (another session) sees a gallery only through its link."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import (
    key,
    main_text,
    screenshot,
    shown_scenes,
    start_job,
    wait_images,
    wait_shown,
)


@pytest.mark.e2e
def test_gallery_link_opens_it_in_another_session(start_app, new_page, shots):
    app = start_app(
        FOXPIPE_OFFLINE_DELAY="0.05", MAX_CONCURRENT_IMAGES="4"
    )  # no need to watch them arrive
    mine = new_page()
    job = start_job(mine, app.url)
    wait_images(mine, 20)
    title = mine.locator('[data-testid="stMain"] h1').first.inner_text()

    other = new_page()  # a new browser context: its own cookies, its own Streamlit session
    other.goto(app.url + "/gallery")
    expect(other.get_by_text("No gallery yet")).to_be_visible()
    assert title not in main_text(other)
    screenshot(other, shots / "1-other-session-without-link.png")
    other.goto(app.url + "/scenes")
    expect(other.get_by_text("Answer the quiz first")).to_be_visible()
    expect(other.locator(key("approve_scenes"))).to_have_count(0)

    other.goto(f"{app.url}/gallery?job={job}")
    expect(other.locator('[data-testid="stMain"] h1').first).to_have_text(title)
    wait_images(other, 20)
    wait_shown(other, lambda shown: set(shown) == set(range(1, 21)))
    expect(other.locator(key(f"ok_{job}_0"))).to_be_visible()
    screenshot(other, shots / "2-other-session-with-link.png")

    made_up = "Zz" + job[2:][::-1]  # same shape as a real id, but no such job
    other.goto(f"{app.url}/gallery?job={made_up}")
    expect(other.get_by_text("Gallery not found")).to_be_visible()
    assert title not in main_text(other) and not shown_scenes(other)
    screenshot(other, shots / "3-made-up-id.png")

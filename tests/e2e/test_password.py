"""Scenario 5: with APP_PASSWORD set, nothing but the password form renders until it is given."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import key, main_text, screenshot

PASSWORD = "correct-horse-42"


def assert_only_the_gate(page) -> None:
    expect(page.locator('input[type="password"]')).to_be_visible()
    text = main_text(page)
    for leak in ("Who is your hero?", "Gallery", "Scenes", "Offline mode", "Services"):
        assert leak not in text, f"{leak!r} rendered before the password"
    assert (
        page.locator('[data-testid="stSidebar"]').count() == 0
        or not page.locator('[data-testid="stSidebar"]').inner_text().strip()
    )
    expect(page.get_by_role("link", name="Quiz")).to_have_count(0)
    expect(page.locator(key("write_story"))).to_have_count(0)


@pytest.mark.e2e
def test_password_gate(start_app, new_page, shots):
    app = start_app(APP_PASSWORD=PASSWORD)
    page = new_page()

    page.goto(app.url + "/")
    assert_only_the_gate(page)
    screenshot(page, shots / "1-password.png")

    # A deep link is held at the gate too.
    page.goto(app.url + "/gallery?job=some-job-id")
    assert_only_the_gate(page)
    expect(page.get_by_text("Gallery not found")).to_have_count(0)

    page.locator('input[type="password"]').fill("not-the-password")
    page.get_by_role("button", name="Enter").click()
    expect(page.get_by_text("Wrong password.")).to_be_visible()
    assert_only_the_gate(page)
    screenshot(page, shots / "2-wrong-password.png")

    page.locator('input[type="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Enter").click()
    # In: the deep link survived the gate (this made-up job is not found), the pages show.
    expect(page.get_by_text("Gallery not found")).to_be_visible()
    expect(page.locator('input[type="password"]')).to_have_count(0)
    page.get_by_role("link", name="Quiz").click()
    expect(page.locator(key("write_story"))).to_be_visible()
    expect(page.get_by_text("Offline mode")).to_be_visible()
    screenshot(page, shots / "3-after-password.png")

"""Review in bulk in a real browser: tick several tiles, approve them together, reject
others with one reason; the compact review mode answers its keyboard shortcuts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from foxpipe.domain.models import SlotStatus
from foxpipe.store import Store, default_url

from .helpers import key, screenshot, start_job, wait_idle, wait_images


def stored(data_dir: Path, job: str):  # noqa: ANN201
    store = Store(default_url(data_dir))
    try:
        return store.get_job(job)
    finally:
        store.close()


def wait_stored(data_dir: Path, job: str, predicate, timeout: float = 60.0):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = stored(data_dir, job)
        if last is not None and predicate(last):
            return last
        time.sleep(0.2)
    raise AssertionError(
        f"job did not reach the state: {[s.status for s in last.slots] if last else None}"
    )


def tick(page, job: str, i: int) -> None:  # noqa: ANN001
    page.locator(key(f"sel_{job}_{i}") + " label").click()
    wait_idle(page)


@pytest.mark.e2e
def test_bulk_approve_and_reject_in_the_browser(start_app, new_page, shots):
    app = start_app()
    page = new_page()
    job = start_job(page, app.url)
    wait_images(page, 20)
    wait_stored(app.data_dir, job, lambda j: j.done)
    page.wait_for_timeout(1500)  # the gallery's last refresh shows every tile's checkbox
    wait_idle(page)

    for i in (0, 1, 2):
        tick(page, job, i)
    page.locator(key("bulk_approve") + " button").click()
    wait_idle(page)
    expect(page.get_by_text("Approved 3 image(s).")).to_be_visible()
    j = wait_stored(app.data_dir, job, lambda j: j.slots[2].status is SlotStatus.APPROVED)
    assert [s.status for s in j.slots[:4]] == [SlotStatus.APPROVED] * 3 + [SlotStatus.READY]
    screenshot(page, shots / "1-approved.png")

    for i in (3, 4):
        tick(page, job, i)
    page.get_by_text("Reject selected").first.click()
    page.locator(key("bulk_reject") + " button").click()
    wait_idle(page)
    j = wait_stored(
        app.data_dir, job, lambda j: j.done and all(len(j.slots[i].versions) == 2 for i in (3, 4))
    )
    assert all(j.slots[i].feedback and j.slots[i].generations == 2 for i in (3, 4))
    assert j.slots[5].generations == 1 and j.slots[0].status is SlotStatus.APPROVED
    screenshot(page, shots / "2-rejected.png")

    # Compact review: N moves to the next ready scene, A approves it.
    page.locator(key("bulk_compact") + " label").click()
    wait_idle(page)
    expect(page.get_by_text("Keys: N next")).to_be_visible()
    page.locator("h1").first.click()  # focus the page, not a text field
    first = page.get_by_text(" of 20").first.inner_text()
    page.keyboard.press("n")
    # The next scene shows, and the run that shows it has ended, before the next key: a key
    # pressed while that run still streams its elements may meet a button being redrawn.
    expect(page.get_by_text(" of 20").first).not_to_have_text(first)
    wait_idle(page)
    shown = int(page.get_by_text(" of 20").first.inner_text().split()[1])
    page.keyboard.press("a")
    wait_idle(page)
    wait_stored(
        app.data_dir, job, lambda j: j.slots[shown - 1].status is SlotStatus.APPROVED, timeout=20
    )
    screenshot(page, shots / "3-compact.png")

"""Scenario 3: reloading the gallery mid-generation reopens the same job, which carries on."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .helpers import (
    query_param,
    read_job,
    screenshot,
    start_job,
    stored_job_ids,
    wait_images,
    wait_job,
    wait_shown,
)


@pytest.mark.e2e
def test_reload_mid_generation_continues_the_same_job(start_app, new_page, shots):
    app = start_app()
    page = new_page()
    job = start_job(page, app.url)
    wait_images(page, 3)
    before = read_job(app.data_dir, job)
    ready_before = {
        s["index"]: s["versions"][0]["created"] for s in before["slots"] if s["status"] == "ready"
    }
    assert 3 <= len(ready_before) < 20, "the job finished before the reload: nothing to continue"
    loaded_at = page.evaluate("() => window.__fox.loadedAt")

    page.reload()
    page.wait_for_function("(t) => window.__fox && window.__fox.loadedAt !== t", arg=loaded_at)
    assert query_param(page, "job") == job
    expect(page.get_by_text("images ready")).to_be_visible()
    # What was made before the reload is shown at once; the rest keeps arriving.
    counts = wait_images(page, len(ready_before))
    assert counts[-1] < 20, (
        "everything was done right after the reload: nothing was seen continuing"
    )
    screenshot(page, shots / "1-gallery-after-reload.png")
    counts += wait_images(page, 20)
    assert len(set(counts)) >= 3, f"no images arrived after the reload: {counts}"
    screenshot(page, shots / "2-gallery-complete.png")

    after = wait_job(app.data_dir, job, lambda j: all(s["status"] == "ready" for s in j["slots"]))
    # The same job carried on: the images made before the reload were not made again, and no
    # second job was started.
    for i, created in ready_before.items():
        assert [v["created"] for v in after["slots"][i]["versions"]] == [created]
    assert stored_job_ids(app.data_dir) == [job]
    wait_shown(page, lambda shown: set(shown) == set(range(1, 21)))

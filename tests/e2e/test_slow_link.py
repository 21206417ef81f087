"""The app's own page switches over a slow link: what the server sends reaches the browser
0.7 s late (a far or busy server). While the browser waits, the page it still shows keeps
polling; a switch made while the old page polled would let such a poll rerun the old page after
the new one had drawn, and Streamlit would then clear the new page (``Bad delta path``) and drop
the connection. The app switches only at a click, with nothing polling; the new page polls."""

from __future__ import annotations

import contextlib
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.fakes.openai_server import Action

from .helpers import (
    at_page,
    key,
    main_text,
    open_quiz,
    query_param,
    story_id,
    wait_images,
    wait_shown,
    write_story,
)
from .slowlink import SlowLink


@contextlib.contextmanager
def slow_page(app, new_page, said: list[str]):  # noqa: ANN001
    """A browser page that reaches the app through the slow link; the errors it logs go to
    ``said``."""
    port = urlparse(app.url).port
    assert port is not None
    with SlowLink(port, LATE) as link:
        page = new_page()
        page.on("console", lambda m: said.append(m.text) if m.type == "error" else None)
        yield link, page


def stored_jobs(data_dir) -> list[str]:  # noqa: ANN001
    """The ids of the jobs in the app's own store."""
    from foxpipe.store import Store, default_url

    store = Store(default_url(data_dir))
    try:
        return [j.id for j in store.jobs_where()]
    finally:
        store.close()


# Seconds; longer than the app's polling (0.5 s) and its gallery refresh (the test's 0.4 s).
LATE = 0.7


@pytest.mark.e2e
def test_page_switches_land_on_a_slow_link(start_app, new_page):
    app = start_app(FOXPIPE_OFFLINE_DELAY="0.05", MAX_CONCURRENT_IMAGES="4", GALLERY_REFRESH="0.4")
    said: list[str] = []  # the errors the browser logged
    with slow_page(app, new_page, said) as (link, page):
        open_quiz(page, link.url)
        write_story(page)  # the quiz switches to the Scenes page, which writes the story
        sid = story_id(page)
        page.wait_for_timeout(LATE * 3 * 1000)  # a poll left on the quiz would have landed now
        assert page.url.startswith(link.url + "/scenes")
        expect(page.locator(key(f"scene_{sid}_1"))).to_be_visible()

        # A double click on Approve: one approval, one job.
        page.locator(key("approve_scenes") + " button").dblclick()
        page.wait_for_url(at_page("gallery", "job"), timeout=30_000)
        job = query_param(page, "job")
        wait_images(page, 20, timeout=90)
        wait_shown(page, lambda shown: set(shown) == set(range(1, 21)))
        page.wait_for_timeout(LATE * 3 * 1000)
        assert urlparse(page.url).path.endswith("/gallery") and f"job={job}" in page.url
        expect(page.locator(key(f"ok_{job}_0"))).to_be_visible()
        assert "Approve all" in main_text(page)
    assert stored_jobs(app.data_dir) == [job]
    assert not [s for s in said if "delta path" in s or "disconnected" in s], said


@pytest.mark.e2e
def test_the_hero_page_path_holds_on_a_slow_link(start_app, new_page, fake_openai):
    """With OpenAI (the fake server): the story and the image prompts each take 1.5 s, so the
    Scenes page and then the Hero page poll them over the slow link; the Hero page polls its two
    drawings; its Approve opens the gallery."""
    fake_openai.script("chat", Action.ok(delay=1.5), Action.ok(delay=1.5))
    app = start_app(
        OPENAI_API_KEY="sk-test-e2e-0000",
        OPENAI_BASE_URL=fake_openai.base_url,
        IMAGES_PER_MINUTE="600",
        CHAT_TIMEOUT="10",
        IMAGE_TIMEOUT="10",
        GALLERY_REFRESH="0.4",
    )
    said: list[str] = []  # the errors the browser logged
    with slow_page(app, new_page, said) as (link, page):
        open_quiz(page, link.url)
        # A double click: the second click reaches the server before the browser saw the
        # switch (0.7 s late), from the quiz it still shows. One story is written.
        page.locator(key("write_story") + " button").dblclick()
        page.wait_for_url(at_page("scenes"), timeout=30_000)
        page.locator(key("approve_scenes") + " button").wait_for(timeout=30_000)
        assert len(fake_openai.of("chat")) == 1
        page.locator(key("approve_scenes") + " button").dblclick()
        page.wait_for_url(at_page("hero", "job"), timeout=30_000)
        approve_hero = page.locator(key("hero_approve") + " button")
        expect(approve_hero).to_be_enabled(timeout=30_000)
        page.wait_for_timeout(LATE * 3 * 1000)
        assert urlparse(page.url).path.endswith("/hero")
        approve_hero.click()
        page.wait_for_url(at_page("gallery", "job"), timeout=30_000)
        wait_images(page, 20, timeout=90)
        page.wait_for_timeout(LATE * 3 * 1000)
        assert urlparse(page.url).path.endswith("/gallery")
    assert not [s for s in said if "delta path" in s or "disconnected" in s], said
    assert len(stored_jobs(app.data_dir)) == 1

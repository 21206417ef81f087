"""Scenario 2: the whole flow against the fake OpenAI server through the real SDK, with a
content-policy block and a 429 in the middle of the 20 images."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from tests.fakes.openai_server import Action

from .helpers import (
    at_page,
    choose,
    download_zip,
    edit_scene,
    key,
    main_text,
    make_slideshow,
    open_quiz,
    query_param,
    screenshot,
    shown_scenes,
    wait_images,
    wait_job,
    write_story,
)

EDITED = "Rusty studies the old map by moonlight, tracing the path to the mountain."


@pytest.mark.e2e
def test_whole_flow_against_the_fake_openai_server(start_app, new_page, shots, fake_openai):
    fake = fake_openai
    fake.latency = 0.15
    app = start_app(
        OPENAI_API_KEY="sk-test-e2e-0000",
        OPENAI_BASE_URL=fake.base_url,
        IMAGES_PER_MINUTE="600",
        CHAT_TIMEOUT="10",
        IMAGE_TIMEOUT="10",
    )
    page = new_page()

    open_quiz(page, app.url)
    expect(page.get_by_text("OpenAI (gpt-5.4-mini, gpt-image-2)")).to_be_visible()
    choose(page, "power", "Super speed")
    expect(page.locator(key("q_element"))).to_have_count(0)
    screenshot(page, shots / "1-quiz.png")

    sid = write_story(page)
    assert len(fake.of("chat")) == 1 and "Super speed" in fake.of("chat")[0].prompt
    edit_scene(page, sid, 3, EDITED)
    screenshot(page, shots / "2-scenes.png")

    # Approving the scenes opens the hero's reference sheet, drawn through the fake.
    page.locator('[data-testid="stMain"]').evaluate("m => m.scrollTo(0, 0)")
    page.locator(key("approve_scenes") + " button").click()
    page.wait_for_url(at_page("hero", "job"))
    approve_hero = page.locator(key("hero_approve") + " button")
    expect(approve_hero).to_be_enabled(timeout=30_000)
    expect(page.locator('[data-testid="stMain"] img')).to_have_count(2)
    job = query_param(page, "job")
    screenshot(page, shots / "3-hero.png")

    # The 5th scene image is blocked by the content policy, the 9th gets a 429 (Retry-After 2 s).
    ok = Action.ok()
    fake.script(
        "images",
        ok,
        ok,
        ok,
        ok,
        Action.moderation(),
        ok,
        ok,
        ok,
        Action.rate_limited(retry_after=2),
    )
    before = len(fake.requests)
    approve_hero.click()
    page.wait_for_url(at_page("gallery", "job"))
    retrying_seen = False
    deadline = time.monotonic() + 60
    while len(shown_scenes(page)) < 20 and time.monotonic() < deadline:
        if not retrying_seen and "trying again" in main_text(page):
            retrying_seen = True
            screenshot(page, shots / "4-gallery-generating.png")
        page.wait_for_timeout(100)
    wait_images(page, 20, timeout=5)
    assert retrying_seen, "the gallery never said a failed attempt was being tried again"
    screenshot(page, shots / "5-gallery-complete.png")

    state = wait_job(app.data_dir, job, lambda j: all(s["status"] == "ready" for s in j["slots"]))
    scene_reqs = [r for r in fake.requests[before:] if r.kind in ("generations", "edits")]
    reasons = [r.reason for r in scene_reqs]
    assert "scripted:moderation" in reasons and "scripted:rate_limited" in reasons, reasons
    assert len(scene_reqs) == 22  # 20 images + the blocked one + the rate-limited one
    blocked = scene_reqs[reasons.index("scripted:moderation")]
    limited = scene_reqs[reasons.index("scripted:rate_limited")]
    # The blocked scene was retried with a safer prompt; the rate-limited one waited its turn.
    retried = [s for s in state["slots"] if s["attempts"] > 1]
    assert len(retried) == 2, [(s["index"], s["attempts"]) for s in state["slots"]]
    assert any(s["policy_level"] >= 1 for s in retried)
    # Retry-After paused the queue: within the next two requests there is a gap of 2 s
    # (a request already admitted when the 429 came back may still go out at once).
    later = sorted(r.wall for r in scene_reqs if r.wall > limited.wall)
    gaps = [b - a for a, b in zip([limited.wall, *later], later, strict=False)]
    assert max(gaps[:2]) >= 1.9, f"Retry-After was not honoured: {gaps[:3]}"
    assert all(s["versions"][-1]["path"] == "edit" for s in state["slots"])
    assert blocked.prompt not in [s["versions"][-1]["prompt"] for s in state["slots"]]
    assert state["slots"][2]["scene"]["text"] == EDITED

    # The page shows every image ready (and checked) before Approve all covers all 20: a click
    # on an earlier render approves what that render showed, as it should.
    button = page.locator(key("approve_all") + " button").first
    expect(button).to_contain_text("Approve all (20)", timeout=30_000)
    button.click()
    expect(page.get_by_text("All images approved.")).to_be_visible()
    screenshot(page, shots / "6-gallery-approved.png")

    # The slideshow without burned-in captions (the .srt is still made), then everything.
    make_slideshow(page, seconds=0.5, captions=False)
    expect(page.locator('[data-testid="stMain"] video track')).to_have_count(1)  # subtitles instead
    screenshot(page, shots / "7-video.png")
    z = download_zip(page, "download_everything")
    names = set(z.namelist())
    assert {f"images/scene_{n:02d}.png" for n in range(1, 21)} <= names, sorted(names)
    assert {"story.mp4", "story.srt", "story.json", "prompts.csv"} <= names
    assert z.read("story.mp4")[4:8] == b"ftyp"
    story = json.loads(z.read("story.json"))
    assert story["image_model"] == "gpt-image-2"
    assert [s["status"] for s in story["scenes"]] == ["approved"] * 20
    assert story["scenes"][2]["text"] == EDITED

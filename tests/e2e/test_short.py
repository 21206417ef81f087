"""The finished Short in a real browser, offline: the narration is written on approval and
spoken by the basic offline voice beside the images; the Voice page shows the lines with
their audio; the gallery makes the narrated video, which plays, and the ZIP holds the
narration."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import expect

from .helpers import (
    approve_scenes,
    download,
    download_zip,
    key,
    open_quiz,
    query_param,
    record_timing,
    screenshot,
    type_answer,
    wait_idle,
    wait_images,
    write_story,
)


@pytest.mark.e2e
def test_narrated_short_in_the_browser(start_app, new_page, shots):
    app = start_app(SHORT_SIZE="270x480", SHORT_FPS="12", FOXPIPE_OFFLINE_DELAY="0.05")
    page = new_page()
    open_quiz(page, app.url)
    type_answer(page, "hero_name", "Pip")
    write_story(page)
    job = approve_scenes(page)
    wait_images(page, 20, timeout=120)
    me = query_param(page, "me")  # this browser's token: typed links keep it, as a bookmark would

    # The Voice step: the offline voice is named as such; the 20 lines, each with its audio.
    page.goto(f"{app.url}/voice?job={job}&me={me}")
    expect(page.get_by_text("Basic offline voice.")).to_be_visible(timeout=30_000)
    expect(
        page.get_by_text("20 of 20 lines spoken").or_(page.get_by_text("19 of 19 lines spoken"))
    ).to_be_visible(timeout=90_000)
    page.reload()
    lines = page.locator('[data-testid="stMain"] [data-testid="stTextInput"] input')
    expect(lines).to_have_count(20, timeout=30_000)
    assert page.locator('[data-testid="stMain"] audio').count() >= 18
    screenshot(page, shots / "short-1-voice.png")

    # The gallery: approve all, make the video: the narrated Short plays in the page.
    page.goto(f"{app.url}/gallery?job={job}&me={me}")
    button = page.locator(key("approve_all") + " button").first
    expect(button).to_contain_text("Approve all (20)", timeout=30_000)  # every image checked
    button.click()
    expect(page.get_by_text("All images approved.")).to_be_visible(timeout=30_000)
    wait_idle(page)
    started = time.monotonic()
    page.locator(key("generate_video") + " button").click()
    page.get_by_text("Story video ready").wait_for(timeout=180_000)
    record_timing(
        f"[e2e] narrated Short (270x480, 12 fps): {time.monotonic() - started:.1f} s from click to video shown"
    )
    video = page.locator('[data-testid="stMain"] video').first
    video.wait_for()
    expect(page.get_by_text("Narrated", exact=False).first).to_be_visible()
    screenshot(page, shots / "short-2-video.png")
    mp4 = download(page, "download_video")
    assert mp4[4:8] == b"ftyp"
    z = download_zip(page, "download_everything")
    names = set(z.namelist())
    assert {"story.mp4", "story.srt", "narration.wav", "story.json"} <= names, sorted(names)
    assert z.read("narration.wav")[:4] == b"RIFF"
    assert sum(n.startswith("narration/scene_") for n in names) >= 18
    meta = json.loads(z.read("story.json"))
    assert meta["short"]["video"]["narrated"] is True
    assert " --> " in z.read("story.srt").decode()

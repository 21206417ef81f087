"""Scenario 1: the whole flow in the embedded mode, in a real browser, as a user does it."""

from __future__ import annotations

import csv
import io
import json
import statistics
import time

import pytest
from playwright.sync_api import expect

from foxpipe.domain.quiz import OTHER

from .helpers import (
    approve_scenes,
    choose,
    click_time,
    download,
    download_zip,
    edit_scene,
    first_seen,
    key,
    main_text,
    make_slideshow,
    open_quiz,
    read_job,
    record_timing,
    reject,
    scene_box,
    screenshot,
    status_history,
    tile,
    type_answer,
    wait_images,
    wait_job,
    wait_shown,
    write_story,
)

EDITED = "Pip hides behind a mossy log and practises a brave face while the pack laughs nearby."


@pytest.mark.e2e
def test_whole_flow_in_the_embedded_mode(start_app, new_page, shots):
    app = start_app()
    page = new_page()

    # Quiz, taking a branch: a mentor instead of an artifact, then "Something else…".
    open_quiz(page, app.url)
    loaded_at = page.evaluate("() => window.__fox.loadedAt")
    expect(page.locator(key("q_artifact"))).to_have_count(1)
    choose(page, "discovery", "A wise mentor")
    expect(page.locator(key("q_mentor"))).to_be_visible()
    expect(page.locator(key("q_artifact"))).to_have_count(0)
    choose(page, "mentor", OTHER)
    type_answer(page, "custom_mentor", "A one-eyed heron who once ruled the marsh")
    type_answer(page, "hero_name", "Pip")
    screenshot(page, shots / "1-quiz.png")

    # Story: 20 scenes written from the answers; edit scene 3.
    sid = write_story(page)
    expect(page.locator('[class*="st-key-scene_"] textarea')).to_have_count(20)
    assert "Pip" in main_text(page)
    assert "heron" in " ".join(scene_box(page, sid, n).input_value() for n in range(1, 21))
    edit_scene(page, sid, 3, EDITED)
    screenshot(page, shots / "2-scenes.png")

    # Approve: the gallery opens and the images arrive one by one, without a reload.
    page.locator('[data-testid="stMain"]').evaluate("m => m.scrollTo(0, 0)")
    job = approve_scenes(page)
    approved_at = click_time(page, "approve_scenes")
    counts = wait_images(page, 4)
    assert counts[-1] < 20, "all images were there at once: nothing arrived one by one"
    screenshot(page, shots / "3-gallery-generating.png")
    counts += wait_images(page, 20)
    assert counts == sorted(counts), f"images disappeared: {counts}"
    assert len(set(counts)) >= 6, f"images did not arrive one by one: {counts}"
    assert page.evaluate("() => window.__fox.loadedAt") == loaded_at, "the page was reloaded"
    expect(page.get_by_text("20 / 20 images ready")).to_be_visible()
    screenshot(page, shots / "4-gallery-complete.png")

    # Timing: slot ready (job JSON) -> its <img> visible in the page.
    state = wait_job(app.data_dir, job, lambda j: all(s["status"] == "ready" for s in j["slots"]))
    seen = first_seen(page)
    lags = [seen[s["index"] + 1] - s["finished"] for s in state["slots"]]
    assert min(lags) > -0.05, f"an image was visible before its slot was ready: {lags}"
    refresh = float(app.env["GALLERY_REFRESH"])
    first_image = min(seen.values()) - approved_at
    record_timing(
        f"[e2e] ready -> visible: median {statistics.median(lags):.2f} s, max {max(lags):.2f} s "
        f"over 20 images (target <= refresh {refresh:g} s + 0.5 s = {refresh + 0.5:g} s)"
    )
    record_timing(f"[e2e] 'Approve scenes' click -> first visible image: {first_image:.2f} s")
    assert state["slots"][2]["scene"]["text"] == EDITED

    # Reject scene 5: the tile goes back to work, then offers the new version.
    assert status_history(page, 5)[-1] == "ready"
    scene5_v1 = wait_shown(page, lambda shown: 5 in shown)[5]
    reject(page, job, 5, "Hero looks different")
    wait_job(
        app.data_dir,
        job,
        lambda j: (
            len(j["slots"][4]["versions"]) == 2
            and j["slots"][4]["status"] == "ready"
            and not j["slots"][4]["checking"]  # its continuity check has given its verdict
        ),
    )
    expect(tile(page, 5).get_by_text("Version", exact=True)).to_be_visible()
    expect(tile(page, 5).locator('[data-testid="stSelectbox"] input')).to_have_value("Version 2")
    history = status_history(page, 5)
    assert history[-1] == "ready" and set(history[-3:-1]) & {
        "regenerating",
        "queued",
        "generating",
    }, history
    wait_shown(page, lambda shown: shown.get(5) not in (None, scene5_v1))  # version 2 shows
    assert read_job(app.data_dir, job)["slots"][4]["feedback"], (
        "the rejection reason did not reach the prompt"
    )

    # Approve all, download the ZIP.
    # The page shows every image ready (its refresh follows the last check) before Approve all.
    expect(page.locator(key("approve_all") + " button")).to_contain_text("(20)", timeout=20_000)
    page.locator(key("approve_all") + " button").click()
    expect(page.get_by_text("All images approved.")).to_be_visible()
    final = wait_job(
        app.data_dir, job, lambda j: all(s["status"] == "approved" for s in j["slots"])
    )
    screenshot(page, shots / "5-gallery-approved.png")

    z = download_zip(page)
    names = set(z.namelist())
    assert {f"images/scene_{n:02d}.png" for n in range(1, 21)} <= names, sorted(names)
    assert {"story.json", "prompts.csv"} <= names
    story = json.loads(z.read("story.json"))
    assert story["job_id"] == job and story["title"] == final["story"]["title"]
    assert [s["status"] for s in story["scenes"]] == ["approved"] * 20
    assert story["scenes"][2]["text"] == EDITED
    assert story["scenes"][4]["versions"] == 2
    assert story["answers"]["custom_mentor"] == "A one-eyed heron who once ruled the marsh"
    rows = list(csv.reader(io.StringIO(z.read("prompts.csv").decode())))
    assert len(rows) == 21 and rows[3][3] == EDITED
    assert z.read("images/scene_05.png")[:8] == b"\x89PNG\r\n\x1a\n"

    # The slideshow: made on this machine, shown in the page, in the "everything" ZIP.
    started = time.monotonic()
    make_slideshow(page, seconds=0.5)
    record_timing(
        f"[e2e] narrated Short of 20 scenes (SHORT_SIZE {app.env['SHORT_SIZE']}, captions): "
        f"{time.monotonic() - started:.1f} s from click to video shown"
    )
    screenshot(page, shots / "6-video.png")
    mp4 = download(page, "download_video")
    assert mp4[4:8] == b"ftyp", mp4[:16]
    everything = download_zip(page, "download_everything")
    names = set(everything.namelist())
    assert {"story.mp4", "story.srt", "story.json", "prompts.csv", "narration.wav"} <= names, (
        sorted(names)
    )
    assert {f"images/scene_{n:02d}.png" for n in range(1, 21)} <= names
    assert everything.read("story.mp4") == mp4
    # The finished Short: captions follow the narration (written from the scenes on approval)
    srt = everything.read("story.srt").decode()
    story = json.loads(everything.read("story.json"))
    spoken = [x["text"] for x in story["short"]["narration"] if x["text"]]
    assert srt.count(" --> ") >= len(spoken) >= 18
    assert (
        story["short"]["video"]["narrated"]
        and story["short"]["narration"][2]["text"].split()[0] in srt
    )

"""The finished Short through the real pages with AppTest, offline: the narration is
written on approval and spoken by espeak-ng beside the images, the Voice page edits a
line and speaks it again, a music upload that is not audio gets a message, and the
gallery's video is the narrated Short (narration, captions, music) in the ZIP."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from foxpipe import app
from foxpipe.domain.narration import LineStatus
from foxpipe.engine import videojobs
from tests.apptest import click_approve, click_write, settle
from tests.conftest import APP, wait_until

pytestmark = pytest.mark.usefixtures("needs_espeak")


@pytest.fixture(autouse=True)
def small_short(monkeypatch):
    # The same pipeline on fewer pixels and frames: an even size (h264 4:2:0) at 6 fps.
    monkeypatch.setenv("SHORT_SIZE", "144x256")
    monkeypatch.setenv("SHORT_FPS", "6")
    monkeypatch.setenv("SHORT_PRERENDER", "true")  # the app's default: segments on approval
    monkeypatch.setenv("NARRATION_AUTO", "true")  # and the lines spoken on approval
    monkeypatch.setenv("NARRATION_SECONDS", "15")  # the shortest Short: fewer frames, same steps


def probe(path: str) -> str:
    import subprocess

    import imageio_ffmpeg

    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", path],
        capture_output=True,
        text=True,
        timeout=60,
    ).stderr


def test_offline_flow_reaches_a_narrated_short():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="q_hero_name").set_value("Pip").run()
    click_write(at)
    at.switch_page("pages/scenes.py").run()
    click_approve(at)
    assert not at.exception, at.exception
    job_id = at.query_params["job"]
    reg = app.current()
    # The narration is written on approval and spoken (free offline voice) beside the images.
    job = wait_until(lambda: (j := reg.get(job_id)) is not None and j.narration and j, timeout=60)
    assert len(job.narration) == 20 and sum(1 for x in job.narration if x.text) >= 18

    # The Voice step: the basic offline voice is named, 20 lines editable, audio per line.
    at.switch_page("pages/voice.py").run()
    settle(at, timeout=120)
    assert not at.exception, at.exception
    assert any("Basic offline voice" in i.value for i in at.info)
    job = reg.get(job_id)
    assert all(x.status in (LineStatus.READY, LineStatus.EMPTY) for x in job.narration)
    lines = [t for t in at.text_input if t.label.startswith("Line ")]
    assert len(lines) == 20
    assert len(at.get("audio")) >= 18  # every spoken line plays
    # Edit line 3, speak it again: only it changes.
    first_audio = job.narration[0].audio_path
    lines[2].set_value("Pip hums a tiny song to the moon.").run()
    assert reg.get(job_id).narration[2].status is LineStatus.QUEUED
    at.button(key="speak_lines").click().run()
    settle(at, timeout=60)
    job = reg.get(job_id)
    assert (
        job.narration[2].status is LineStatus.READY
        and job.narration[2].text == "Pip hums a tiny song to the moon."
    )
    assert job.narration[0].audio_path == first_audio
    # A short preview of the chosen voice.
    at.button(key="preview_voice").click().run()
    settle(at, timeout=30)
    assert any(a.proto.url for a in at.get("audio"))
    # Music that is not audio: a clear message, the Short is made without it.
    at.radio(key="music_choice").set_value("upload").run()
    fake = Path(job.narration[0].audio_path).with_name("song.mp3")
    fake.write_text("this is not music")
    from foxpipe.engine import shortjobs

    message = shortjobs.set_music(reg, job_id, "upload", "song.mp3", fake.read_bytes())
    assert "not an audio file" in message
    at.run()
    assert any("not an audio file" in w.value for w in at.warning)
    at.radio(key="music_choice").set_value("builtin").run()
    assert reg.get(job_id).music_path == "builtin"

    # The gallery: approve all, make the video: the finished Short.
    at.switch_page("pages/gallery.py").run()
    wait_until(lambda: reg.get(job_id).done, timeout=120)
    at.run()
    at.button(key="approve_all").click().run()
    assert reg.get(job_id).all_approved
    assert any("Narration" in m.value and "ready" in m.value for m in at.markdown)
    # The app's default: every segment is rendered in the background before it is asked for.
    from foxpipe.engine import shortjobs as sj

    segments = sj.short_dir(reg, job_id) / "segments"
    wait_until(
        lambda: (
            not reg.busy(job_id, sj.PRERENDER_KEY) and len(list(segments.glob("seg_*.mp4"))) == 20
        ),
        timeout=180,
        interval=0.5,
    )
    at.button(key="generate_video").click().run()
    assert not at.exception, at.exception  # the page while the Short renders
    # ffmpeg renders in the engine: wait on the job's video state, then show the page again.
    wait_until(
        lambda: (v := reg.get(job_id).video) is not None and v.status != "idle" and not v.running,
        timeout=300,
        interval=0.2,
    )
    at.run()
    assert not at.exception, at.exception
    assert at.get("video")
    job = reg.get(job_id)
    v = job.video
    assert v.status == "done" and v.narrated and v.music_used
    info = probe(v.path)
    assert "Video: h264" in info and "Audio: aac" in info
    assert abs(v.duration - v.short["scenes"][-1]["end"]) < 0.1
    assert any("Narrated" in c.value for c in at.caption)
    names = set(zipfile.ZipFile(io.BytesIO(videojobs.everything_zip(job))).namelist())
    assert {"story.mp4", "story.srt", "narration.wav", "story.json"} <= names
    assert sum(n.startswith("narration/scene_") for n in names) >= 18
    meta = json.loads(zipfile.ZipFile(io.BytesIO(videojobs.everything_zip(job))).read("story.json"))
    short = meta["short"]
    assert short["narrated"] and short["video"]["narration"] == "narration.wav"
    assert short["narration"][2]["text"] == "Pip hums a tiny song to the moon."
    assert short["narration"][2]["audio"] in names
    # captions inside their scene's narration span
    spans = {s["index"]: s for s in short["video"]["scenes"]}
    for c in short["video"]["captions"]:
        s = spans[c["scene"]]
        assert s["start"] - 1e-3 <= c["start"] < c["end"] <= s["speech_end"] + 1e-3

"""``python -m foxpipe make`` end to end, offline, as a subprocess: two answer files (with
bad music: the videos are still made), bad answers (exit 2 with the quiz's messages), its
jobs in the app's store (History); where one and several answer files write."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import zipfile
from argparse import ArgumentParser
from pathlib import Path

import imageio_ffmpeg
import pytest

from foxpipe import history
from foxpipe import make as make_mod
from foxpipe.config import load_settings
from foxpipe.engine.jobs import JobRegistry
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("needs_espeak")


def make(args: list[str], data_dir, timeout: float = 400) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "TTS_", "KLING_", "HAILUO_"))
    }
    env.update(
        FOXPIPE_DATA_DIR=str(data_dir),
        FOXPIPE_OFFLINE_DELAY="0.01",
        # The whole pipeline on few pixels and frames: an even 144x256 (h264 4:2:0) at 6 fps.
        SHORT_SIZE="144x256",
        SHORT_FPS="6",
    )
    return subprocess.run(
        [sys.executable, "-m", "foxpipe", "make", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def streams(path) -> str:
    return subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    ).stderr


def check_outputs(folder, hero: str) -> dict:
    for name in ("story.mp4", "story.srt", "story.json", "narration.wav", "foxpipe.zip"):
        assert (folder / name).is_file() and (folder / name).stat().st_size > 0, name
    info = streams(folder / "story.mp4")
    assert "Video: h264" in info and "Audio: aac" in info and "1080x1920" not in info
    meta = json.loads((folder / "story.json").read_text())
    assert meta["answers"]["hero_name"] == hero
    assert [s["status"] for s in meta["scenes"]] == ["approved"] * 20
    assert meta["short"]["video"]["narrated"] and meta["short"]["video"]["file"] == "story.mp4"
    names = set(zipfile.ZipFile(folder / "foxpipe.zip").namelist())
    assert {"story.mp4", "story.srt", "narration.wav", "story.json"} <= names
    srt = (folder / "story.srt").read_text()
    assert " --> " in srt
    return meta


def test_make_two_stories_one_after_another_with_bad_music(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"hero_name": "Pip", "animal": "Red Fox"}))
    b.write_text(json.dumps({"hero_name": "Mo", "animal": "Barn Owl"}))
    bad_music = tmp_path / "song.mp3"
    bad_music.write_text("not music at all")
    out = tmp_path / "out"
    r = make(
        [
            "--answers",
            str(a),
            str(b),
            "--out",
            str(out),
            "--approve-all",
            "--music",
            str(bad_music),
            "--length",
            "15",
            "--voice",
            "en-gb",
        ],
        tmp_path / "data",
        timeout=700,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "not an audio file" in r.stderr  # said, and the videos made anyway
    assert "images 20/20" in r.stderr or "writing the narration" in r.stderr  # progress on stderr
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert [f.name for f in folders] == ["01-a", "02-b"]
    summaries = [json.loads(x) for x in r.stdout.strip().splitlines()]
    assert len(summaries) == 2
    for folder, hero, summary in zip(folders, ("Pip", "Mo"), summaries, strict=True):
        meta = check_outputs(folder, hero)
        assert meta["short"]["length_seconds"] == 15 and meta["short"]["voice"] == "en-gb"
        assert meta["short"]["music"] == "" and meta["short"]["video"]["music_used"] is False
        assert summary["ok"] and "story.mp4" in summary["files"]
        assert summary["out"] == str(folder)
        assert any("not an audio file" in m for m in summary["messages"])
    # The jobs are in the app's store, so the app's History lists them (newest first).
    reg = JobRegistry(load_settings({"FOXPIPE_DATA_DIR": str(tmp_path / "data")}))
    try:
        rows = history.past_stories(reg)
    finally:
        reg.store.close()
    assert [row["job_id"] for row in rows] == [s["job_id"] for s in reversed(summaries)]


def test_one_answer_file_writes_into_out_several_into_numbered_folders(tmp_path, monkeypatch):
    """Where each story's files go (the stories themselves are made by the test above)."""
    from foxpipe import app

    made: list[tuple[str, str]] = []

    def fake_make_one(req, args):  # noqa: ANN001, ANN202
        made.append((Path(req.path).name, str(req.out)))
        return make_mod.Outcome(req.path, str(req.out), job_id="j", ok=True)

    monkeypatch.setattr(make_mod, "make_one", fake_make_one)
    monkeypatch.setattr(app, "shutdown", lambda grace=None: None)
    parser = ArgumentParser()
    make_mod.add_make(parser)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"hero_name": "Pip"}))
    b.write_text(json.dumps({"hero_name": "Mo"}))
    out = tmp_path / "out"
    logger = logging.getLogger("foxpipe")
    level = logger.level  # run_make quietens the app's log; the other tests keep theirs
    try:
        assert make_mod.run_make(parser.parse_args(["--answers", str(a), "--out", str(out)])) == 0
        assert made == [("a.json", str(out))]
        made.clear()
        args = parser.parse_args(["--answers", str(a), str(b), "--out", str(out)])
        assert make_mod.run_make(args) == 0
        assert made == [("a.json", str(out / "01-a")), ("b.json", str(out / "02-b"))]
    finally:
        logger.setLevel(level)


def test_bad_answers_exit_2_with_the_quiz_messages(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"hero_name": "", "animal": "Dragonfly-unicorn", "setting": "x" * 500})
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    r = make(
        ["--answers", str(bad), str(broken), "--out", str(tmp_path / "out")],
        tmp_path / "data",
        timeout=60,
    )
    assert r.returncode == 2
    assert "is empty: please fill it in" in r.stderr
    assert "is not one of the choices" in r.stderr
    assert "not valid JSON" in r.stderr
    assert not (tmp_path / "out").exists()
    r = make(
        ["--answers", str(tmp_path / "missing.json"), "--out", str(tmp_path / "out")],
        tmp_path / "data",
        timeout=60,
    )
    assert r.returncode == 2 and "cannot be read" in r.stderr

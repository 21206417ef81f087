"""Captions timed to the voice: phrases, spans, escaping, the highlighted word, and the
safe area of the frame, checked on frames libass really draws."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from foxpipe.domain.narration import LineStatus, NarrationLine, Word
from foxpipe.media import captions as cap
from foxpipe.media.timeline import plan
from tests.short_helpers import FFMPEG


def _words(text: str, step: float = 0.4) -> list[Word]:
    return [Word(w, k * step, k * step + 0.3) for k, w in enumerate(text.split())]


def _line(
    i: int, text: str, duration: float | None = None, words: list[Word] | None = None
) -> NarrationLine:
    ws = _words(text) if words is None else words
    dur = duration if duration is not None else (ws[-1].end + 0.1 if ws else 1.0)
    return NarrationLine(
        i, text, LineStatus.READY, audio_path=f"/x/{i}.wav", duration=dur, words=ws
    )


def test_phrases_are_short_and_break_at_punctuation():
    text = "Far away, in a cold forest, lived a tiny fox called Ember who dreamed of flying above the incredibly tall pines."
    groups = cap.phrases(_words(text))
    texts = [" ".join(w.text for w in g) for g in groups]
    assert texts[0] == "Far away,"
    assert texts[1] == "in a cold forest,"
    for t, g in zip(texts, groups, strict=True):
        assert len(g) <= cap.MAX_WORDS
        assert len(t) <= cap.MAX_CHARS or len(g) == 1
    assert " ".join(texts) == " ".join(text.split())  # nothing lost or reordered


def test_every_cue_is_inside_its_scenes_narration_span_even_with_bad_word_times():
    bad = [Word("too", -1.0, 0.2), Word("late", 0.5, 99.0), Word("words", 5.0, 4.0)]
    lines = [
        _line(0, "One two three four five six seven, eight nine."),
        NarrationLine(1, "", LineStatus.EMPTY),
        _line(2, "too late words", duration=1.5, words=bad),
        _line(3, "no timings at all here, so they are estimated", duration=3.0, words=[]),
    ]
    tl = plan(lines, pause=0.4, min_seconds=2.0)
    cues = cap.build_cues(tl, lines)
    assert {c.scene for c in cues} == {0, 2, 3}
    for c in cues:
        span = tl.scenes[c.scene]
        assert span.start <= c.start < c.end <= span.speech_end + 1e-9
        for w in c.words:
            assert c.start - 1e-9 <= w.start <= w.end <= c.end + 1e-9
    starts = [c.start for c in cues]
    assert starts == sorted(starts)
    # the phrase starts when its first word is spoken (scene 0 has exact timings)
    assert cues[0].start == pytest.approx(0.0) and cues[1].start == pytest.approx(
        tl.scenes[0].start + 4 * 0.4
    )
    srt = cap.srt_text(cues)
    assert srt.count("-->") == len(cues) and "00:00:00,000 --> 00:00:" in srt


def test_a_scene_without_narration_captions_its_text_inside_its_span():
    """A Short made without a voice still reads: the silent scenes show their text, spread
    over the scene; a spoken scene keeps the voice's timing."""
    lines = [_line(0, "The fox wakes up.")]
    tl = plan(lines, 3, pause=0.4, min_seconds=4.0, fps=30)
    texts = ["ignored for a spoken scene", "The river is wide and cold.", ""]
    cues = cap.build_cues(tl, lines, texts)
    by_scene = {i: [c for c in cues if c.scene == i] for i in range(3)}
    assert " ".join(c.text for c in by_scene[0]) == "The fox wakes up."
    assert " ".join(c.text for c in by_scene[1]) == "The river is wide and cold."
    assert by_scene[2] == []  # nothing to say: no caption
    span = tl.scenes[1]
    for c in by_scene[1]:
        assert span.start < c.start < c.end < span.end
        assert all(c.start <= w.start <= w.end <= c.end for w in c.words)
    assert cap.build_cues(tl, lines) == by_scene[0]  # without texts: as before


def test_user_text_is_escaped_for_ass_and_cleaned():
    nasty = "A {\\b1}bold{\\b0} \\N trick\r\nwith\ttabs \u0007bell e\u0301 🦊"
    out = cap.ass_escape(nasty)
    assert "{" not in out.replace("\\{", "") and "}" not in out.replace("\\}", "")
    assert "\\N" not in out and "\n" not in out and "\r" not in out and "\u0007" not in out
    assert "é" in out and "🦊" in out  # NFC, emoji kept
    assert cap.clean("  many   spaces\u2028here ") == "many spaces here"


def test_the_spoken_word_is_highlighted_one_event_per_word():
    lines = [_line(0, "The fox runs")]
    tl = plan(lines)
    cues = cap.build_cues(tl, lines)
    ass = cap.ass_text(cues, (1080, 1920))
    events = [ln for ln in ass.splitlines() if ln.startswith("Dialogue:")]
    assert len(events) == 3
    hl = f"{{\\c{cap.HIGHLIGHT}}}"
    assert events[0].endswith(f"{hl}The{{\\c{cap.TEXT}}} fox runs")
    assert events[1].endswith(f"The {hl}fox{{\\c{cap.TEXT}}} runs")
    assert ",0:00:00.40,0:00:00.80," in events[1]  # from "fox" starting until "runs" starts


def _render_frame(tmp_path, ass: str, size: tuple[int, int], fonts: str = "") -> Image.Image:
    """Both cues drawn at once: every event is shown from 0 s on the test frame."""
    ass = re.sub(r"Dialogue: 0,[^,]+,[^,]+,", "Dialogue: 0,0:00:00.00,0:00:09.00,", ass)
    (tmp_path / "c.ass").write_text(ass, encoding="utf-8")
    w, h = size
    fontsdir = f":fontsdir={fonts}" if fonts else ""
    subprocess.run(
        [
            FFMPEG,
            "-y",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            f"color=black:s={w}x{h}:d=1:r=5",
            "-vf",
            f"ass=filename=c.ass{fontsdir}",
            "-frames:v",
            "1",
            "frame.png",
        ],
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    return Image.open(tmp_path / "frame.png").convert("L")


@pytest.mark.parametrize("size", [(540, 960), (960, 540)])
def test_captions_stay_in_the_safe_area_of_the_frame(tmp_path, size):
    w, h = size
    # one word wider than the frame, then a phrase of wide words that must wrap
    text = "Supercalifragilisticexpialidocious WWW MMM WWW MMM"
    lines = [_line(0, text, words=[Word(t, 0.0, 0.9) for t in text.split()])]
    cues = cap.build_cues(plan(lines), lines)
    assert len(cues) == 2
    frame = _render_frame(tmp_path, cap.ass_text(cues, size), size)
    box = frame.point(lambda v: 255 if v > 40 else 0).getbbox()
    assert box is not None, "no caption drawn"
    left, top, right, bottom = box
    assert bottom <= h * (1 - 0.20)  # clear of the bottom 20 %
    assert right <= w * (1 - 0.12)  # clear of the right 12 %
    assert left >= 0 and top >= 0


def test_segments_load_only_the_caption_font_and_draw_the_same_captions(tmp_path):
    from foxpipe.media import short

    system = next((d for d in short.FONT_DIRS if Path(d).is_dir()), "")
    if not any(Path(f).is_file() for f in cap.FONT_FILES) or not system:
        pytest.fail("the caption font (fonts-dejavu-core, packages.txt) is not installed")
    folder = Path(short._fonts_dir())
    assert folder != Path(system)
    # Only the caption font in it: libass opens every font of the folder for every segment.
    assert [p.name for p in folder.iterdir()] == ["DejaVuSans-Bold.ttf"]
    text = "Pip hums a tiny song to the moon"
    lines = [
        _line(0, text, words=[Word(t, 0.1 * i, 0.1 * i + 0.1) for i, t in enumerate(text.split())])
    ]
    ass = cap.ass_text(cap.build_cues(plan(lines), lines), (270, 480))
    one = _render_frame(tmp_path, ass, (270, 480), fonts=str(folder))
    every = _render_frame(tmp_path, ass, (270, 480), fonts=system)
    assert one.getbbox() is not None, "no caption drawn"
    assert one.tobytes() == every.tobytes()


@pytest.fixture
def fresh_font_folder(monkeypatch, tmp_path):
    """The caption font folder made again under a temp folder of the test's own."""
    import tempfile

    from foxpipe.media import short

    def use(tmp: Path) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        monkeypatch.setattr(tempfile, "tempdir", str(tmp))
        short._caption_font_dir.cache_clear()

    yield use
    short._caption_font_dir.cache_clear()


def test_a_temp_folder_ffmpeg_cannot_read_in_a_filter_falls_back_to_the_systems_fonts(
    fresh_font_folder, tmp_path
):
    from foxpipe.media import short

    fresh_font_folder(tmp_path / "a,b[1]")
    assert short._caption_font_dir().startswith(str(tmp_path / "a,b[1]"))  # made...
    assert short._fonts_dir() in short.FONT_DIRS  # ...but not passed to ffmpeg


def test_a_font_folder_with_more_in_it_is_not_used(fresh_font_folder, tmp_path):
    from foxpipe.media import short

    fresh_font_folder(tmp_path / "tmp")
    made = Path(short._caption_font_dir())
    assert made.parent == tmp_path / "tmp" and short._fonts_dir() == str(made)
    (made / "Other.ttf").write_bytes(b"a font that claims to be DejaVu Sans")
    short._caption_font_dir.cache_clear()
    assert short._caption_font_dir() == ""  # not trusted, and not replaced while in the way
    assert short._fonts_dir() in short.FONT_DIRS

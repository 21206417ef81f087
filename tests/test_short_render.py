"""The finished Short, rendered for real at a small size and checked on the file: the
streams, the loudness, the ducking, the captions against the narration, the length, bad
music, the segment cache, clips, and real speech from espeak-ng."""

from __future__ import annotations

import subprocess
import wave

import pytest

from foxpipe.domain.narration import LineStatus, NarrationLine
from foxpipe.media import mix
from foxpipe.media.short import render_short
from tests.short_helpers import (
    band_level,
    images,
    line,
    music_file,
    parse_srt,
    silent,
    stream_seconds,
    streams,
)
from tests.video_helpers import make_clip

SIZE = (180, 320)
BEATS = ["Underdog setup", "Discovery", "Power display", "Challenge", "Triumph"]


def _lines(folder):
    return [
        line(folder, 0, "Once a small fox, lived alone."),
        line(folder, 1, "One day she found a glowing stone in the snow."),
        silent(2),
        line(folder, 3, "Now the whole forest, watched her fly."),
        silent(4),
    ]


# The whole module on one xdist worker (``--dist loadgroup``): the module fixture ``rendered``
# is then built once, not once on each worker the module's tests are spread over. Do not
# mark a test here one_worker/e2e: xdist would join the group names, and that test would
# leave the one_worker group (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("test_short_render")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("short")
    lines = _lines(folder)
    seen: list[float] = []
    result = render_short(
        images(folder, 5),
        lines,
        folder / "out",
        SIZE,
        music=music_file(folder / "music.mp3", 4.0),
        fps=30,
        progress=seen.append,
        beats=BEATS,
    )
    return result, lines, seen


def test_the_file_has_h264_and_aac_and_the_outputs_exist(rendered):
    result, _, seen = rendered
    codecs, _ = streams(result.video)
    assert codecs == ["video:h264", "audio:aac"]
    head = result.video.read_bytes()[:200_000]
    assert head.find(b"moov") < head.find(b"mdat")  # +faststart: the index before the media
    assert result.srt.is_file() and result.narration.is_file()
    assert [p.name for p in result.scene_audio] == ["scene_01.wav", "scene_02.wav", "scene_04.wav"]
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    d = result.to_dict()
    assert d["video"] == "story.mp4" and len(d["scenes"]) == 5 and d["captions"]


def test_the_video_lasts_exactly_the_narration_timeline(rendered):
    result, _, _ = rendered
    assert result.duration == pytest.approx(result.timeline.total)
    assert stream_seconds(result.video, "v") == pytest.approx(result.timeline.total, abs=0.1)
    assert stream_seconds(result.video, "a") == pytest.approx(result.timeline.total, abs=0.1)
    _, container = streams(result.video)
    assert container == pytest.approx(result.timeline.total, abs=0.1)


def test_loudness_is_minus_14_lufs_and_the_true_peak_under_minus_1(rendered):
    result, _, _ = rendered
    loud = mix.measure(result.video)  # the AAC track of the MP4, ebur128 with peak=true
    assert abs(loud.integrated - (-14.0)) <= 1.0, loud
    assert loud.true_peak <= -1.0, loud
    assert result.music_used and result.music_message == ""


def test_the_music_ducks_at_least_10_db_while_the_voice_speaks(rendered):
    result, _, _ = rendered
    tl = result.timeline
    gap = tl.scenes[2]  # a silent scene between two spoken ones
    gap_level = band_level(result.video, gap.start + 0.6, gap.end - 0.1)
    for i in (1, 3):
        s = tl.scenes[i]
        under_voice = band_level(result.video, s.start + 0.3, s.speech_end - 0.1)
        assert gap_level - under_voice >= 10.0, (i, gap_level, under_voice)
    assert gap_level > -60  # the music is really there in the gap


def test_every_caption_is_inside_its_scenes_narration_and_the_srt_has_those_times(rendered):
    result, lines, _ = rendered
    cues = parse_srt(result.srt.read_text(encoding="utf-8"))
    assert len(cues) == len(result.cues) >= 6
    spans = result.timeline.scenes
    for (start, end, text), cue in zip(cues, result.cues, strict=True):
        span = spans[cue.scene]
        assert span.start - 0.001 <= start < end <= span.speech_end + 0.001, (text, span)
        assert text == cue.text
    spoken = {ln.index: ln.text for ln in lines if ln.text}
    for i, text in spoken.items():
        assert " ".join(t for s, e, t in cues if spans[i].start <= s < spans[i].end) == text


def test_bad_music_gives_the_message_and_the_video_is_still_made(tmp_path):
    lines = [line(tmp_path, 0, "A short line here."), silent(1)]
    fake = tmp_path / "track.mp3"
    fake.write_text("not audio at all")
    result = render_short(images(tmp_path, 2), lines, tmp_path / "out", SIZE, music=fake)
    assert not result.music_used and "track.mp3" in result.music_message
    codecs, secs = streams(result.video)
    assert codecs == ["video:h264", "audio:aac"] and secs == pytest.approx(
        result.timeline.total, abs=0.1
    )
    loud = mix.measure(result.video)  # the voice alone, still normalized
    assert abs(loud.integrated + 14.0) <= 1.0 and loud.true_peak <= -1.0


def test_segments_are_reused_and_only_a_changed_scene_and_its_neighbour_are_rendered(tmp_path):
    lines = [line(tmp_path, i, f"Scene {i} words go here.") for i in range(4)]
    pics = images(tmp_path, 4)
    first = render_short(pics, lines, tmp_path / "out", SIZE, captions=False)
    assert (first.segments_rendered, first.segments_reused) == (4, 0)
    again = render_short(pics, lines, tmp_path / "out", SIZE, captions=False)
    assert (again.segments_rendered, again.segments_reused) == (0, 4)
    # a new image for scene 2: its own segment and scene 3's (which fades in from it)
    (tmp_path / "new").mkdir()
    pics2 = images(tmp_path / "new", 4, size=(260, 300))
    changed = [*pics[:2], pics2[2], pics[3]]
    third = render_short(changed, lines, tmp_path / "out", SIZE, captions=False)
    assert (third.segments_rendered, third.segments_reused) == (2, 2)
    assert len(list((tmp_path / "out" / "segments").glob("seg_*.mp4"))) == 4  # old ones pruned


def test_prerender_makes_only_segments_whose_image_and_narration_are_final(tmp_path):
    from foxpipe.media.short import prerender

    lines = [
        line(tmp_path, 0, "First words."),
        line(tmp_path, 1, "Second words."),
        NarrationLine(2, "Third words.", LineStatus.SYNTHESIZING),
    ]
    pics = images(tmp_path, 3)
    made = prerender([pics[0], pics[1], None], lines, tmp_path / "out", SIZE)
    assert made == 2
    assert not list(
        (tmp_path / "out" / "segments").glob("sound_*.m4a")
    )  # a line is still being made
    lines[2] = line(tmp_path, 2, "Third words.")
    assert prerender([pics[0], pics[1], None], lines, tmp_path / "out", SIZE) == 0
    sound = list((tmp_path / "out" / "segments").glob("sound_*.m4a"))
    assert len(sound) == 1  # every line made: the mix is ready before the last image
    result = render_short(pics, lines, tmp_path / "out", SIZE)
    assert list((tmp_path / "out" / "segments").glob("sound_*.m4a")) == sound
    assert (result.segments_rendered, result.segments_reused) == (1, 2)


def test_a_short_clip_is_held_and_the_length_still_follows_the_narration(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, "256x144", 1.0)
    lines = [
        line(tmp_path, 0, "The clip is shorter than these words are."),
        line(tmp_path, 1, "Then a still."),
    ]
    pics = [clip, images(tmp_path, 1)[0]]
    result = render_short(pics, lines, tmp_path / "out", SIZE)
    assert result.timeline.scenes[0].duration > 2.0  # longer than the 1 s clip
    assert stream_seconds(result.video, "v") == pytest.approx(result.timeline.total, abs=0.1)


def test_missing_or_broken_images_still_make_the_video(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    gone = NarrationLine(
        2, "My audio file was deleted.", LineStatus.READY, str(tmp_path / "gone.wav"), duration=1.0
    )
    lines = [line(tmp_path, 0, "Words {with} \\N odd text\nand a newline 🦊."), silent(1), gone]
    result = render_short([broken, None, tmp_path / "gone.png"], lines, tmp_path / "out", SIZE)
    assert stream_seconds(result.video, "v") == pytest.approx(result.timeline.total, abs=0.1)


@pytest.mark.usefixtures("needs_espeak")
def test_real_speech_from_espeak(tmp_path):
    lines = []
    for i, text in enumerate(
        ["The little fox looked up at the stars.", "Tonight, she would learn to fly!"]
    ):
        wav = tmp_path / f"say_{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "en-us", "-s", "160", "-w", str(wav), text], check=True, timeout=60
        )
        with wave.open(str(wav)) as w:
            secs = w.getnframes() / w.getframerate()
        lines.append(
            NarrationLine(i, text, LineStatus.READY, str(wav), duration=secs)
        )  # no word timings
    result = render_short(
        images(tmp_path, 2),
        lines,
        tmp_path / "out",
        SIZE,
        music=music_file(tmp_path / "m.ogg", 3.0),
    )
    loud = mix.measure(result.video)
    assert abs(loud.integrated + 14.0) <= 1.0 and loud.true_peak <= -1.0
    cues = parse_srt(result.srt.read_text(encoding="utf-8"))
    assert " ".join(t for _, _, t in cues) == " ".join(ln.text for ln in lines)
    for cue in result.cues:
        span = result.timeline.scenes[cue.scene]
        assert span.start <= cue.start < cue.end <= span.speech_end + 1e-9
    assert stream_seconds(result.video, "v") == pytest.approx(result.timeline.total, abs=0.1)

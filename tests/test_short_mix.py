"""Music checks on real files, the narration track, and the loudness of the mix."""

from __future__ import annotations

import wave

import pytest

from foxpipe.media import mix
from foxpipe.media.timeline import plan
from tests.short_helpers import line, music_file, silent, streams


def test_a_text_file_renamed_mp3_is_refused_with_a_message(tmp_path):
    fake = tmp_path / "song.mp3"
    fake.write_text("this is not music, just words in a file\n" * 50)
    check = mix.check_music(fake)
    assert not check.ok and "song.mp3" in check.message and "not an audio file" in check.message
    assert "without music" in check.message


def test_a_too_large_file_is_refused_before_ffmpeg_reads_it(tmp_path):
    big = tmp_path / "big.wav"
    with open(big, "wb") as f:  # sparse: 51 MB on paper, nothing on disk
        f.truncate(51 * 1024 * 1024)
    check = mix.check_music(big)
    assert (
        not check.ok
        and "51 MB" in check.message
        and "at most 50 MB" in check.message
        and "big.wav" in check.message
    )


def test_a_too_long_track_is_refused(tmp_path):
    long = tmp_path / "long.wav"
    with wave.open(str(long), "wb") as w:  # 31 minutes of 8 kHz 8-bit silence, a real WAV
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * (8000 * 60 * 31))
    check = mix.check_music(long)
    assert not check.ok and "31 minutes" in check.message and "at most 30 minutes" in check.message


@pytest.mark.parametrize("ext", ["mp3", "ogg", "m4a", "wav"])
def test_real_tracks_of_each_accepted_type_pass(tmp_path, ext):
    check = mix.check_music(music_file(tmp_path / f"m.{ext}", 2.0))
    assert check.ok, check.message
    assert check.duration == pytest.approx(2.0, abs=0.1)


def test_other_types_and_missing_files_get_a_message(tmp_path):
    assert "mp3, wav, m4a or ogg" in mix.check_music(tmp_path / "a.flac").message
    assert "could not be read" in mix.check_music(tmp_path / "gone.mp3").message


def test_the_narration_track_puts_each_line_at_its_scene_and_has_the_timelines_length(tmp_path):
    lines = [line(tmp_path, 0, "one two three"), silent(1), line(tmp_path, 2, "four five")]
    tl = plan(lines)
    out = mix.narration_track(tl, lines, tmp_path / "narration.wav")
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (48000, 1, 2)
        assert w.getnframes() / 48000 == pytest.approx(tl.total, abs=0.001)
    # silence during the silent scene, speech at the start of scene 2
    gap = mix.measure(out, tl.scenes[1].start + 0.1, tl.scenes[1].duration - 0.2)
    assert gap.integrated < -60
    speech = mix.measure(out, tl.scenes[2].start, tl.scenes[2].speech)
    assert speech.integrated > -40


def test_voice_alone_is_normalized_and_the_builtin_bed_is_made(tmp_path):
    lines = [line(tmp_path, 0, "a quiet line of words"), line(tmp_path, 1, "and another one here")]
    tl = plan(lines)
    voice = mix.narration_track(tl, lines, tmp_path / "n.wav")
    res = mix.mix(voice, tmp_path / "out.wav", tl.total)
    assert not res.music_used and res.message == ""
    loud = mix.measure(res.path)
    assert abs(loud.integrated - (-14.0)) <= 1.0 and loud.true_peak <= -1.0
    bed = mix.builtin_track(tmp_path / "bed.wav", 8.0)
    codecs, secs = streams(bed)
    assert codecs == ["audio:pcm_s16le"] and secs == pytest.approx(8.0, abs=0.05)
    assert mix.check_music(bed).ok


def test_loudness_without_the_true_peak_is_the_same_loudness(tmp_path):
    """The mix measures its inputs' loudness without the oversampled true peak: same figure."""
    bed = mix.builtin_track(tmp_path / "bed.wav", 6.0)
    both, loudness_only = mix.measure(bed), mix.measure(bed, peak=False)
    assert both.integrated > -70 and both.true_peak == both.true_peak  # measured, not NaN
    assert loudness_only.integrated == both.integrated and loudness_only.lra == both.lra
    assert loudness_only.true_peak != loudness_only.true_peak  # NaN: not measured


def _spoken_mix(tmp_path, name: str):
    lines = [line(tmp_path, 0, "a quiet line of words"), line(tmp_path, 1, "and another one here")]
    tl = plan(lines)
    voice = mix.narration_track(tl, lines, tmp_path / f"{name}.voice.wav")
    return mix.mix(voice, tmp_path / f"{name}.wav", tl.total)


def test_speech_reaches_the_target_with_gains_alone(tmp_path, monkeypatch):
    """Speech needs no dynamic loudnorm: a gain, the limiter, one more gain (linear)."""
    calls = []
    real = mix._loudnorm_stats
    monkeypatch.setattr(mix, "_loudnorm_stats", lambda *a: calls.append(a) or real(*a))
    res = _spoken_mix(tmp_path, "linear")
    assert calls == []
    assert abs(res.loudness.integrated - mix.TARGET_LUFS) <= 0.3
    assert res.loudness.true_peak <= mix.LOUDNORM_TP + 0.1


def test_peaks_without_room_go_to_loudnorm(tmp_path, monkeypatch):
    """When the gains do not make room for the peaks (here: no try allowed), loudnorm shapes
    them with its own measurement, and the file still meets the targets."""
    monkeypatch.setattr(mix, "SHAPING_TRIES", 0)
    calls = []
    real = mix._loudnorm_stats
    monkeypatch.setattr(mix, "_loudnorm_stats", lambda *a: calls.append(a) or real(*a))
    res = _spoken_mix(tmp_path, "shaped")
    assert len(calls) == 1
    assert abs(res.loudness.integrated - mix.TARGET_LUFS) <= 1.0
    assert res.loudness.true_peak <= mix.TARGET_TP


def test_peaks_that_two_corrections_cannot_tame_are_shaped_by_loudnorm(tmp_path, monkeypatch):
    """A train of single-sample clicks: every correction costs more loudness than it gains;
    after the tries, loudnorm shapes what the first gain and limiter made (the limiter's
    ceiling never goes below what alimiter accepts), and the sound is made."""
    import numpy as np

    clicks = np.zeros(4 * 48_000, dtype=np.int16)
    clicks[:: 48_000 // 20] = 30_000
    voice = tmp_path / "clicks.wav"
    with wave.open(str(voice), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48_000)
        w.writeframes(clicks.tobytes())
    calls = []
    real = mix._loudnorm_stats
    monkeypatch.setattr(mix, "_loudnorm_stats", lambda *a: calls.append(a) or real(*a))
    res = mix.mix(voice, tmp_path / "out.wav", 4.0)
    assert len(calls) == 1 and f"limit={10 ** (mix.LIMIT_DBFS / 20):.4f}" in calls[0][1]
    assert res.path.is_file() and res.loudness.integrated > -70

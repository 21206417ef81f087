"""Word timings estimated from the audio: silencedetect's rule (numpy for 16-bit PCM, checked
against the real ffmpeg), words spread inside the speech span, in order."""

from __future__ import annotations

import subprocess
import wave

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foxpipe.media.words import (
    estimate_words,
    ffmpeg_silences,
    pcm16_silences,
    span_from_silences,
    speech_span,
    spread_words,
    syllables,
    wav_duration,
)
from foxpipe.providers.voice import pcm16_wav
from tests.fakes.realtime_server import tone_pcm


def test_speech_span_finds_the_tone_between_the_silences(tmp_path):
    path = tmp_path / "line.wav"
    path.write_bytes(pcm16_wav(tone_pcm(5, lead=0.5, tail=0.7), 24000))
    span = speech_span(path)
    speech = 5 * 0.22 + 4 * 0.08
    assert abs(span.start - 0.5) < 0.03 and abs(span.end - (0.5 + speech)) < 0.03
    assert abs(span.duration - (0.5 + speech + 0.7)) < 0.01


def test_estimated_words_sit_inside_the_speech_in_order(tmp_path):
    path = tmp_path / "line.wav"
    path.write_bytes(pcm16_wav(tone_pcm(6, lead=0.4, tail=0.4), 24000))
    text = "Rusty, the smallest fox, wins!"
    words = estimate_words(text, path)
    span = speech_span(path)
    assert [w.text for w in words] == text.split()
    assert words[0].start == round(span.start, 3) and words[-1].end == round(span.end, 3)
    assert all(w.start < w.end for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))
    assert words[0].start > 0.3 and words[-1].end < wav_duration(path) - 0.3
    # "smallest" (2 syllables, 8 letters) gets more time than "the".
    dur = {w.text: w.end - w.start for w in words}
    assert dur["smallest"] > dur["the"]


def test_all_silence_or_unreadable_audio_falls_back_to_the_whole_file(tmp_path):
    silent = tmp_path / "silent.wav"
    silent.write_bytes(pcm16_wav(b"\x00\x00" * 24000, 24000))
    span = speech_span(silent)
    assert (span.start, span.end) == (0.0, 1.0)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio")
    assert speech_span(broken).duration == 0.0 and estimate_words("hello there", broken) == []


def test_span_from_silences_cases():
    s0 = span_from_silences([], 2.0)
    assert (s0.start, s0.end, s0.duration) == (0.0, 2.0, 2.0)
    s = span_from_silences(
        [("start", 0.0), ("end", 0.3), ("start", 0.9), ("end", 1.0), ("start", 1.6)], 2.0
    )
    assert (s.start, s.end) == (0.3, 1.6)  # the pause inside the speech is kept inside


def test_syllables():
    assert [syllables(w) for w in ("fox", "forest", "little", "amazing", "the", "2026", "...")] == [
        1,
        2,
        2,
        3,
        1,
        4,
        1,
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(min_size=1, max_size=12).filter(lambda s: s.strip() and " " not in s),
        min_size=1,
        max_size=30,
    ),
    st.floats(0, 5),
    st.floats(0.05, 20),
)
def test_spread_words_always_in_order_and_inside(tokens, start, length):
    text = " ".join(t.strip() for t in tokens if t.strip())
    words = spread_words(text, start, start + length)
    assert len(words) == len(text.split())
    assert (
        words[0].start >= round(start, 3) - 1e-9
        and words[-1].end <= round(start + length, 3) + 1e-9
    )
    assert all(w.start <= w.end for w in words)
    assert all(a.end <= b.start + 1e-3 for a, b in zip(words, words[1:], strict=False))


def _wav(path, rate: int, channels: int, samples: np.ndarray) -> str:
    x = samples.astype(np.int16)
    if channels == 2:  # the second channel quieter: both count, interleaved
        x = np.stack([x, (x // 2).astype(np.int16)], 1).reshape(-1)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(x.tobytes())
    return str(path)


@pytest.mark.usefixtures("needs_espeak")
def test_silences_in_numpy_are_ffmpegs_to_the_sample(tmp_path):
    """The same events as the bundled ffmpeg's silencedetect, printed times included, on the
    offline voice's lines and on made-up audio: quiet runs just under and over the threshold and
    the minimum length, silence at either end, all silence, stereo, six sample rates."""
    files = []
    for i, (text, speed) in enumerate(
        [
            ("Pip runs home.", 120),
            ("A tiny fox hums, softly; then stops!", 175),
            ("Wait... what was that?", 230),
            ("Go.", 175),
            ("The river sang all night long under the stars.", 150),
        ]
    ):
        path = tmp_path / f"line{i}.wav"
        subprocess.run(
            ["espeak-ng", "-s", str(speed), "-w", str(path), text], check=True, timeout=60
        )
        files.append(str(path))
    rng = np.random.default_rng(7)
    for k in range(24):
        rate = [8000, 16000, 22050, 24000, 44100, 48000][k % 6]
        parts = []
        for _ in range(int(rng.integers(1, 8))):
            n = int(rng.integers(1, rate // 2))
            loud = rng.random() < 0.5
            edge = 700 if rng.random() < 0.3 else 400  # around -35 dB (581)
            parts.append(rng.integers(-12000, 12000, n) if loud else rng.integers(-edge, edge, n))
        files.append(_wav(tmp_path / f"made{k}.wav", rate, 1 + k % 3 // 2, np.concatenate(parts)))
    quiet = int(0.06 * 22050)  # MIN_SILENCE at 22050 Hz: 1323 samples
    edges = [
        np.full(quiet, 580),
        np.full(10, 582),
        np.full(quiet - 1, -580),
        np.full(5, 9000),
        np.full(quiet, 0),
        np.full(3, -9000),
    ]
    files.append(_wav(tmp_path / "edges.wav", 22050, 1, np.concatenate(edges)))
    files.append(_wav(tmp_path / "quiet.wav", 22050, 1, np.zeros(22050)))
    files.append(_wav(tmp_path / "stereo_edges.wav", 22050, 2, np.concatenate(edges)))
    found = 0
    for f in files:
        ours, theirs = pcm16_silences(f), ffmpeg_silences(f)
        assert theirs is not None
        assert ours == theirs, f
        found += len(ours)
    assert found > 40  # the cases do hold silences


def test_other_wavs_are_left_to_ffmpeg(tmp_path):
    eight = tmp_path / "eight.wav"
    with wave.open(str(eight), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes([128]) * 4000 + bytes([255, 0]) * 2000)
    assert pcm16_silences(eight) is None
    assert ffmpeg_silences(eight) == [("start", 0.0), ("end", 0.5)]
    span = speech_span(eight)
    assert (span.start, span.end) == (0.5, 1.0)

"""Word timings estimated from the audio: silencedetect on the real ffmpeg, words spread inside
the speech span, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from foxpipe.media.words import (
    estimate_words,
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

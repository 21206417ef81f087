"""The offline voice for real (espeak-ng), all lines with a cap and progress, the preview, and
the synthesis loop's failure handling."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave

import pytest

from foxpipe.domain.narration import LineStatus, NarrationLine, SpeechResult
from foxpipe.engine.narration import (
    MAX_BACKOFF,
    VOICE_BACKOFF_JITTER,
    preview,
    synthesize_all,
    synthesize_line,
)
from foxpipe.engine.retry import Backoff, backoff_delay
from foxpipe.media.words import speech_span
from foxpipe.providers.base import ProviderError
from foxpipe.providers.voice_offline import EspeakVoice

pytestmark = pytest.mark.usefixtures("needs_espeak")


def rms_and_seconds(wav: bytes) -> tuple[float, float]:
    with wave.open(io.BytesIO(wav)) as w:
        n, rate = w.getnframes(), w.getframerate()
        data = w.readframes(n)
    samples = struct.unpack(f"<{len(data) // 2}h", data)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples))), n / rate


async def test_espeak_speaks_audibly():
    r = await EspeakVoice().synthesize(
        "Rusty the little fox runs through the snowy forest.", "en-us", "storyteller"
    )
    rms, secs = rms_and_seconds(r.wav)
    assert secs > 0.5 and rms > 500  # real, non-silent speech
    assert r.words == [] and r.model == "espeak-ng"


async def test_styles_change_the_pace():
    text = "The crowd cheers as the little fox rises above the trees and shines."
    epic = rms_and_seconds((await EspeakVoice().synthesize(text, "en-us", "epic")).wav)[1]
    playful = rms_and_seconds((await EspeakVoice().synthesize(text, "en-us", "playful")).wav)[1]
    assert epic > playful * 1.1  # 145 vs 175 words per minute


async def test_text_is_never_an_option_or_a_shell_command(tmp_path):
    marker = tmp_path / "owned"
    text = f"--help ; touch {marker} $(touch {marker}) `touch {marker}`"
    r = await EspeakVoice().synthesize(text, "en-us", "calm")
    assert rms_and_seconds(r.wav)[1] > 1.0 and not marker.exists()


async def test_missing_espeak_is_a_clear_error():
    with pytest.raises(ProviderError) as e:
        await EspeakVoice(binary="espeak-ng-not-here").synthesize("Hello.", "en-us", "calm")
    assert (
        e.value.kind == "fatal"
        and "espeak-ng" in e.value.message
        and "packages.txt" in e.value.message
    )


async def test_all_lines_with_progress_empty_lines_and_words_inside_the_audio(tmp_path):
    lines = [
        NarrationLine(0, "Rusty wakes on a misty dawn."),
        NarrationLine(1, "   "),
        NarrationLine(2, "**The wolf** laughs 🐺 at him."),
        NarrationLine(3, "But Rusty never gives up!"),
    ]
    seen: list[tuple[int, int, int]] = []
    out = await synthesize_all(
        EspeakVoice(),
        lines,
        voice="en-us",
        style="storyteller",
        out_dir=tmp_path,
        concurrency=2,
        on_progress=lambda line, done, total: seen.append((line.index, done, total)),
    )
    assert [x.status for x in out] == [
        LineStatus.READY,
        LineStatus.EMPTY,
        LineStatus.READY,
        LineStatus.READY,
    ]
    assert sorted(i for i, _, _ in seen) == [0, 1, 2, 3] and [d for _, d, _ in seen] == [1, 2, 3, 4]
    assert out[2].text == "The wolf laughs at him."
    for line in (out[0], out[2], out[3]):
        assert line.timing == "estimated" and line.provider == "espeak-ng"
        span = speech_span(line.audio_path)
        assert [w.text for w in line.words] == line.text.split()
        assert all(span.start - 1e-3 <= w.start < w.end <= span.end + 1e-3 for w in line.words)
        assert all(
            a.end <= b.start + 1e-6 for a, b in zip(line.words, line.words[1:], strict=False)
        )
        assert (
            line.words[0].start >= 0 and line.words[-1].end < line.duration - 0.1
        )  # espeak ends with a pause
    assert (tmp_path / "narration_04.wav").exists() and not (tmp_path / "narration_02.wav").exists()
    # Ready lines are kept, not made again.
    again = await synthesize_all(
        EspeakVoice(binary="espeak-ng-not-here"), out, voice="en-us", style="calm", out_dir=tmp_path
    )
    assert [x.status for x in again] == [x.status for x in out]


async def test_preview_plays_a_sample_or_says_why_not():
    ok = await preview(EspeakVoice(), "en-us", "epic")
    assert ok.error == "" and ok.duration > 1.0
    bad = await preview(EspeakVoice(binary="espeak-ng-not-here"), "en-us", "epic")
    assert bad.wav == b"" and "espeak-ng" in bad.error


class Hanging:
    name, free, voices = "hang", True, ["x"]

    def cost_estimate(self, text: str) -> float:
        return 0.0

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")


class Broken(Hanging):
    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        raise RuntimeError("provider bug")


class BadAudio(Hanging):
    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        return SpeechResult(wav=b"RIFF....not a wav")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (Hanging(), "longer than 0.2 s"),
        (Broken(), "RuntimeError"),
        (BadAudio(), "could not be read"),
    ],
)
async def test_a_failing_line_ends_failed_with_a_readable_error(tmp_path, model, message):
    line = await synthesize_line(
        model,
        NarrationLine(5, "Hello there."),
        voice="x",
        style="calm",
        out_dir=tmp_path,
        retries=1,
        timeout=0.2,
        backoff_base=0.01,
    )
    assert line.status == LineStatus.FAILED and message in line.error and line.attempts == 2


def test_backoff_grows_and_honours_retry_after():
    """The voice waits through the one retry policy (foxpipe.engine.retry)."""
    policy = Backoff(1.0, MAX_BACKOFF, VOICE_BACKOFF_JITTER)
    assert all(0.75 <= policy.delay(1) <= 1.25 for _ in range(50))
    assert all(3.0 <= policy.delay(3) <= 5.0 for _ in range(50))
    assert policy.delay(1, 7.0) >= 7.0
    assert policy.delay(20) <= 30.0
    assert backoff_delay(1, 0.01, 30.0, 7.0) >= 7.0


async def test_a_failed_retry_keeps_no_audio_of_the_old_text(tmp_path):
    ok = await synthesize_line(
        EspeakVoice(),
        NarrationLine(0, "First words."),
        voice="en-us",
        style="calm",
        out_dir=tmp_path,
    )
    assert ok.status == LineStatus.READY and ok.words
    ok.text = "New words after an edit."
    failed = await synthesize_line(
        Broken(), ok, voice="en-us", style="calm", out_dir=tmp_path, retries=0
    )
    assert failed.status == LineStatus.FAILED and failed.audio_path == "" and failed.words == []
    assert failed.attempts == ok.attempts + 1

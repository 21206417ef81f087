"""The compatible speech endpoint through the real openai SDK against a loopback fake, and the
choice of voice provider from the settings."""

from __future__ import annotations

import io
import wave

import pytest

from foxpipe.config import load_settings
from foxpipe.domain.narration import LineStatus, NarrationLine
from foxpipe.engine.narration import synthesize_line
from foxpipe.providers.base import ProviderError
from foxpipe.providers.voice import choose_voice
from foxpipe.providers.voice_speech import SpeechEndpointVoice
from tests.fakes.speech_server import FakeSpeech

LINE = "The wolf bows and the forest cheers."


@pytest.fixture
def fake():
    with FakeSpeech(api_key="tts-secret") as f:
        yield f


@pytest.fixture
def settings(fake):
    return load_settings(
        {},
        {
            "TTS_BASE_URL": fake.base_url,
            "TTS_MODEL": "kokoro",
            "TTS_VOICE": "af_heart",
            "TTS_API_KEY": "tts-secret",
            "VOICE_TIMEOUT": "10",
        },
    )


def seconds(wav: bytes) -> float:
    with wave.open(io.BytesIO(wav)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.getnframes() / w.getframerate()


async def test_speech_request_shape_and_wav(settings, fake):
    v = SpeechEndpointVoice(settings)
    r = await v.synthesize(LINE, "af_heart", "playful")
    (req,) = fake.requests
    assert req.path == "/v1/audio/speech" and req.headers["authorization"] == "Bearer tts-secret"
    assert (
        req.body["model"] == "kokoro"
        and req.body["voice"] == "af_heart"
        and req.body["input"] == LINE
    )
    assert req.body["response_format"] == "wav" and req.body["speed"] == pytest.approx(1.08)
    assert seconds(r.wav) > 0.25 * len(LINE.split())
    assert v.free and v.cost_estimate(LINE) == 0.0


async def test_streamed_wav_without_sizes_is_normalised(settings, fake):
    fake.script(("stream_wav",))
    r = await SpeechEndpointVoice(settings).synthesize(LINE, "af_heart", "calm")
    assert seconds(r.wav) > 1.5


@pytest.mark.parametrize(
    ("action", "kind"),
    [
        (("status", 429, 2), "retryable"),
        (("status", 401), "fatal"),
        (("status", 503), "retryable"),
        (("garbage",), "retryable"),
    ],
)
async def test_errors_are_mapped(settings, fake, action, kind):
    fake.script(action)
    with pytest.raises(ProviderError) as e:
        await SpeechEndpointVoice(settings).synthesize(LINE, "af_heart", "calm")
    assert e.value.kind == kind
    assert "OpenAI" not in e.value.message
    if action[1:2] == (429,):
        assert e.value.retry_after == 2


async def test_a_server_error_then_success_makes_the_line(settings, fake, tmp_path):
    fake.script(("status", 500))
    line = await synthesize_line(
        SpeechEndpointVoice(settings),
        NarrationLine(0, LINE),
        voice="af_heart",
        style="calm",
        out_dir=tmp_path,
        backoff_base=0.01,
    )
    assert line.status == LineStatus.READY and line.attempts == 2 and line.timing == "estimated"
    assert line.provider == "speech:kokoro" and len(line.words) == len(LINE.split())


def test_paid_endpoint_has_a_cost():
    s = load_settings(
        {}, {"TTS_BASE_URL": "http://127.0.0.1:9/v1", "TTS_PRICE_PER_MILLION_CHARS": "15"}
    )
    v = SpeechEndpointVoice(s)
    assert not v.free and v.cost_estimate(LINE) == pytest.approx(len(LINE) * 15 / 1e6)


def test_choose_voice_from_settings():
    offline = choose_voice(load_settings({}, {}))
    assert offline.kind == "offline" and offline.free and "basic offline voice" in offline.note
    rt = choose_voice(load_settings({}, {"OPENAI_API_KEY": "sk-test", "OPENAI_VOICE": "cedar"}))
    assert rt.kind == "realtime" and not rt.free and rt.default_voice == "cedar"
    assert rt.model.name == "gpt-realtime-2.1-mini"
    custom = choose_voice(
        load_settings({}, {"OPENAI_API_KEY": "sk-test", "OPENAI_VOICE_MODEL": "gpt-realtime"})
    )
    assert custom.model.name == "gpt-realtime"
    both = choose_voice(
        load_settings({}, {"OPENAI_API_KEY": "sk-test", "TTS_BASE_URL": "http://127.0.0.1:9/v1"})
    )
    assert both.kind == "speech"


def test_tts_key_is_a_secret():
    s = load_settings({}, {"TTS_API_KEY": "tts-very-secret"})
    assert s.redact("key=tts-very-secret") == "key=•••"


def test_bad_narration_settings_fall_back_with_a_message():
    s = load_settings(
        {},
        {
            "NARRATION_SECONDS": "5000",
            "MAX_CONCURRENT_VOICE": "0",
            "VOICE_TIMEOUT": "0",
            "NARRATION_WORDS_PER_SECOND": "abc",
        },
    )
    assert s.narration_seconds == 60.0 and s.max_concurrent_voice == 3 and s.voice_timeout == 60.0
    assert s.narration_words_per_second == 2.5
    assert any("NARRATION_SECONDS" in p for p in s.problems) and any(
        "MAX_CONCURRENT_VOICE" in p for p in s.problems
    )

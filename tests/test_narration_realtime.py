"""RealtimeVoice through the real openai SDK against a loopback fake of the Realtime WebSocket API."""

from __future__ import annotations

import io
import wave

import pytest

from foxpipe.config import load_settings
from foxpipe.domain.narration import LineStatus, NarrationLine
from foxpipe.engine.narration import estimate_cost, synthesize_line
from foxpipe.providers.base import ProviderError
from foxpipe.providers.voice_realtime import RealtimeVoice, map_error_event, price_table
from tests.fakes.realtime_server import FakeRealtime, RtAction

LINE = "Rusty the little fox finds a glowing stone."


@pytest.fixture
def fake():
    with FakeRealtime(api_key="sk-test") as f:
        yield f


@pytest.fixture
def voice(fake):
    s = load_settings(
        {}, {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url, "VOICE_TIMEOUT": "10"}
    )
    return RealtimeVoice(s)


def frames(wav: bytes) -> tuple[int, int, int]:
    with wave.open(io.BytesIO(wav)) as w:
        return w.getframerate(), w.getnchannels(), w.getnframes()


async def test_one_line_session_update_item_response_and_audio(voice, fake):
    r = await voice.synthesize(LINE, "cedar", "epic")
    rate, channels, n = frames(r.wav)
    assert (rate, channels) == (24000, 1)
    assert n / rate > 0.25 * len(
        LINE.split()
    )  # the whole tone arrived (0.22 s per word + silences)
    assert r.transcript == LINE and not r.reworded
    (conn,) = fake.connections
    assert conn.path == "/v1/realtime?model=gpt-realtime-2.1-mini"
    assert conn.headers["authorization"] == "Bearer sk-test"
    assert [e["type"] for e in conn.events] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
    session = conn.events[0]["session"]
    assert session["audio"]["output"] == {
        "voice": "cedar",
        "format": {"type": "audio/pcm", "rate": 24000},
    }
    assert session["output_modalities"] == ["audio"]
    assert "word for word" in session["instructions"] and "movie-trailer" in session["instructions"]
    assert conn.events[1]["item"]["content"][0] == {"type": "input_text", "text": LINE}
    assert r.usage["output_token_details"]["audio_tokens"] > 0
    assert r.cost == pytest.approx(r.usage["output_token_details"]["audio_tokens"] * 20 / 1e6)


async def test_unknown_voice_falls_back_to_marin(voice, fake):
    await voice.synthesize(LINE, "nobody", "storyteller")
    assert fake.connections[0].events[0]["session"]["audio"]["output"]["voice"] == "marin"


async def test_a_reworded_reading_is_retried_once_with_stricter_instructions(voice, fake):
    fake.script(RtAction.reword())
    r = await voice.synthesize(LINE, "marin", "storyteller")
    assert len(fake.connections) == 2 and not r.reworded and r.transcript == LINE
    assert (
        "This time read every word exactly"
        in fake.connections[1].events[0]["session"]["instructions"]
    )
    assert "This time" not in fake.connections[0].events[0]["session"]["instructions"]


async def test_reworded_twice_is_flagged_and_the_line_marked(voice, fake, tmp_path):
    fake.script(RtAction.reword(), RtAction.reword("Rusty found a shiny rock."))
    line = await synthesize_line(
        voice, NarrationLine(3, LINE), voice="marin", style="calm", out_dir=tmp_path
    )
    assert len(fake.connections) == 2
    assert line.status == LineStatus.READY and line.reworded
    assert line.transcript == "Rusty found a shiny rock."
    assert line.audio_path.endswith("narration_04.wav") and line.duration > 1.0


async def test_punctuation_and_case_do_not_count_as_rewording(voice, fake):
    fake.script(RtAction.reword("rusty, the little fox finds a glowing stone!"))
    r = await voice.synthesize(LINE, "marin", "calm")
    assert len(fake.connections) == 1 and not r.reworded


async def test_error_event_is_a_readable_fatal_error(voice, fake, tmp_path):
    fake.script(RtAction.error("invalid_request_error", "invalid_value", "Invalid value: 'voice'."))
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "fatal" and "Invalid value" in e.value.message
    fake.script(RtAction.error("invalid_request_error", "invalid_value", "Invalid value: 'voice'."))
    line = await synthesize_line(
        voice, NarrationLine(0, LINE), voice="marin", style="calm", out_dir=tmp_path, retries=3
    )
    assert line.status == LineStatus.FAILED and "Invalid value" in line.error and line.attempts == 1
    assert not (tmp_path / "narration_01.wav").exists()


async def test_rate_limit_event_is_retried_after_the_time_it_names(voice, fake, tmp_path):
    fake.script(RtAction.rate_limit("Rate limit reached. Please try again in 1.5s."))
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "retryable" and e.value.retry_after == pytest.approx(1.5)
    assert e.value.code == "rate_limit_exceeded"

    fake.script(
        RtAction.rate_limit("Please try again in 300ms."),
        RtAction.rate_limit("Please try again in 300ms."),
    )
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    line = await synthesize_line(
        voice,
        NarrationLine(0, LINE),
        voice="marin",
        style="calm",
        out_dir=tmp_path,
        backoff_base=0.01,
        sleep=sleep,
    )
    assert line.status == LineStatus.READY and line.attempts == 3
    assert len(waits) == 2 and all(w >= 0.3 for w in waits)


async def test_dropped_connection_mid_response_is_retryable_and_recovers(voice, fake, tmp_path):
    fake.script(RtAction.drop())
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "retryable" and "dropped" in e.value.message
    fake.script(RtAction.drop())
    line = await synthesize_line(
        voice,
        NarrationLine(0, LINE),
        voice="marin",
        style="calm",
        out_dir=tmp_path,
        backoff_base=0.01,
    )
    assert line.status == LineStatus.READY and line.attempts == 2
    assert len(fake.connections) == 3


async def test_failed_response_and_refused_handshake(voice, fake):
    fake.script(RtAction.failed("server_error", "boom"))
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "retryable"
    fake.script(RtAction.reject(401))
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "fatal" and "key" in e.value.message
    fake.script(RtAction.reject(429))
    with pytest.raises(ProviderError) as e:
        await voice.synthesize(LINE, "marin", "calm")
    assert e.value.kind == "retryable"


async def test_wrong_key_is_fatal(fake):
    s = load_settings({}, {"OPENAI_API_KEY": "sk-wrong", "OPENAI_BASE_URL": fake.base_url})
    with pytest.raises(ProviderError) as e:
        await RealtimeVoice(s, timeout=5).synthesize(LINE, "marin", "calm")
    assert e.value.kind == "fatal"


async def test_nothing_listening_is_retryable():
    from tests.conftest import free_port

    s = load_settings(
        {}, {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    )
    with pytest.raises(ProviderError) as e:
        await RealtimeVoice(s, timeout=5).synthesize(LINE, "marin", "calm")
    assert e.value.kind == "retryable"


def test_error_mapping_and_price_table():
    class E:
        def __init__(self, type, code, message=""):  # noqa: A002
            self.type, self.code, self.message = type, code, message

    assert map_error_event(E("invalid_request_error", "insufficient_quota")).kind == "fatal"
    assert map_error_event(E("authentication_error", None)).kind == "fatal"
    assert map_error_event(E("server_error", None)).kind == "retryable"
    assert (
        map_error_event(
            E("invalid_request_error", "rate_limit_exceeded", "try again in 20ms")
        ).retry_after
        == 0.02
    )
    assert price_table("a=1, b = 2.5,bad,c=x") == {"a": 1.0, "b": 2.5}


def test_cost_estimate_follows_the_price_setting_and_the_length():
    cheap = RealtimeVoice(load_settings({}, {"OPENAI_API_KEY": "k" * 8}))
    dear = RealtimeVoice(
        load_settings({}, {"OPENAI_API_KEY": "k" * 8, "VOICE_PRICES": "gpt-realtime-2.1-mini=64"})
    )
    short, long = "Rusty runs.", " ".join(["word"] * 40)
    assert 0 < cheap.cost_estimate(short) < cheap.cost_estimate(long)
    assert dear.cost_estimate(long) == pytest.approx(cheap.cost_estimate(long) * 64 / 20)
    lines = [NarrationLine(i, long) for i in range(20)]
    total = estimate_cost(cheap, lines)
    assert 0.01 < total < 0.2  # 20 long lines, about 16 s each at $20 per million audio tokens
    assert cheap.cost_estimate("") == 0.0

"""Which voice speaks the narration, decided from the settings, and the audio-format helpers
every voice provider shares (PCM16 to WAV, any audio to PCM16 mono WAV)."""

from __future__ import annotations

import io
import subprocess
import wave
from dataclasses import dataclass

from foxpipe.config import Settings
from foxpipe.providers.base import ProviderError, VoiceModel

CONVERT_TIMEOUT = 60.0


@dataclass(frozen=True)
class VoiceChoice:
    model: VoiceModel
    kind: str  # "realtime", "speech" or "offline"
    free: bool
    word_timings: bool  # the provider reports word timings itself
    default_voice: str
    note: str  # what the UI says about this voice


def choose_voice(settings: Settings) -> VoiceChoice:
    """TTS_BASE_URL (a compatible speech endpoint) wins, then the Realtime API with
    OPENAI_API_KEY, else the offline espeak-ng voice."""
    if settings.tts_base_url:
        from foxpipe.providers.voice_speech import SpeechEndpointVoice

        speech = SpeechEndpointVoice(settings)
        return VoiceChoice(
            speech,
            "speech",
            speech.free,
            False,
            speech.voices[0],
            f"Voice from the speech endpoint ({speech.model or 'default model'}).",
        )
    if settings.openai_live:
        from foxpipe.providers.voice_realtime import RealtimeVoice

        realtime = RealtimeVoice(settings)
        voice = settings.openai_voice if settings.openai_voice in realtime.voices else "marin"
        return VoiceChoice(
            realtime,
            "realtime",
            False,
            False,
            voice,
            f"OpenAI Realtime voice ({realtime.model}); paid per second of speech.",
        )
    from foxpipe.providers.voice_offline import EspeakVoice

    m = EspeakVoice()
    return VoiceChoice(
        m,
        "offline",
        True,
        False,
        m.voices[0],
        "A basic offline voice (espeak-ng): clear but robotic. Add an OpenAI key for a natural voice.",
    )


def pcm16_wav(pcm: bytes, rate: int = 24000, channels: int = 1) -> bytes:
    """Raw little-endian PCM16 wrapped in a WAV container."""
    if len(pcm) % 2:
        pcm = pcm[:-1]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def readable_wav(data: bytes) -> bool:
    """A PCM16 mono WAV the wave module reads with at least one frame."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            return w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getnframes() > 0
    except (EOFError, wave.Error):
        return False


def ensure_wav(data: bytes, rate: int = 24000) -> bytes:
    """Any audio the engine sent (WAV of another layout, a streamed WAV without sizes, MP3...)
    as PCM16 mono WAV, through the bundled ffmpeg. ProviderError when it is not audio."""
    if readable_wav(data):
        return data
    if not data:
        raise ProviderError("The voice returned no audio.", "retryable", code="empty_audio")
    import imageio_ffmpeg

    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-ac",
        "1",
        "-ar",
        str(rate),
        "-c:a",
        "pcm_s16le",
        "-f",
        "s16le",
        "pipe:1",
    ]
    try:
        proc = subprocess.run(
            cmd, input=data, capture_output=True, timeout=CONVERT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ProviderError(
            f"Could not convert the voice's audio ({type(e).__name__}).", "retryable"
        ) from e
    if proc.returncode != 0 or not proc.stdout:
        raise ProviderError(
            "The voice returned something that is not audio.", "retryable", code="bad_audio"
        )
    return pcm16_wav(proc.stdout, rate)

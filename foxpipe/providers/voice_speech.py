"""Any OpenAI-compatible speech endpoint (self-hosted engines and other vendors that keep the
``POST /v1/audio/speech`` request shape), through the openai SDK pointed at ``TTS_BASE_URL``.
Not for OpenAI's own speech models, which shut down on 2027-01-06: OpenAI narration goes through
the Realtime API."""

from __future__ import annotations

import asyncio
import logging

from openai import AsyncOpenAI

from foxpipe.config import Settings
from foxpipe.domain.narration import SpeechResult, clean_line, style_of
from foxpipe.providers.base import ProviderError
from foxpipe.providers.openai import http_client, map_error
from foxpipe.providers.voice import ensure_wav

log = logging.getLogger(__name__)


class SpeechEndpointVoice:
    """The VoiceModel on a compatible ``/v1/audio/speech`` endpoint."""

    def __init__(self, settings: Settings, timeout: float | None = None):
        self.settings = settings
        self.base_url = settings.tts_base_url
        self.model = settings.tts_model or "tts"
        self.name = f"speech:{self.model}"
        self.voices = [settings.tts_voice or "default"]
        self.price = settings.tts_price_per_million_chars
        self.free = self.price <= 0
        self.timeout = timeout or settings.voice_timeout or 60.0

    def cost_estimate(self, text: str) -> float:
        return round(len(clean_line(text)) * self.price / 1_000_000, 6)

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        line = clean_line(text)
        if not line:
            raise ProviderError("There is nothing to say in this line.", "fatal", code="empty_line")
        voice = voice or self.voices[0]
        client = AsyncOpenAI(
            api_key=self.settings.tts_api_key or "none",
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            http_client=http_client(self.timeout),
        )
        try:
            async with asyncio.timeout(self.timeout + 5):
                response = await client.audio.speech.create(
                    model=self.model,
                    voice=voice,
                    input=line,  # type: ignore[arg-type]
                    response_format="wav",
                    speed=style_of(style).speed,
                )
                data = await response.aread()
        except ProviderError:
            raise
        except Exception as e:
            err = map_error(e, self.model)
            raise ProviderError(
                err.message.replace("OpenAI", "The speech endpoint"),
                err.kind,
                retry_after=err.retry_after,
                code=err.code,
            ) from e
        finally:
            await client.close()
        wav = await asyncio.to_thread(ensure_wav, data, 24000)
        log.info("[VOICE] speech endpoint %s/%s: %d bytes", self.model, voice, len(wav))
        return SpeechResult(
            wav=wav, words=[], transcript="", model=self.model, cost=self.cost_estimate(line)
        )

"""The embedded voice: Debian's espeak-ng, run locally. No key, no network; a basic, robotic
but clear voice. Narrator styles map to speaking rate and pitch."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from foxpipe.domain.narration import SpeechResult, clean_line, style_of
from foxpipe.providers.base import ProviderError
from foxpipe.providers.voice import ensure_wav

log = logging.getLogger(__name__)

ESPEAK_VOICES = {"en-us": "en-us", "en-gb": "en-gb", "en-us+f3": "en-us+f3", "en-us+m3": "en-us+m3"}


class EspeakVoice:
    name = "espeak-ng"
    free = True

    def __init__(self, binary: str = "espeak-ng", timeout: float = 30.0):
        self.binary = binary
        self.timeout = timeout
        self.voices = list(ESPEAK_VOICES)

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def cost_estimate(self, text: str) -> float:
        return 0.0

    async def synthesize(self, text: str, voice: str, style: str) -> SpeechResult:
        return await asyncio.to_thread(self._run, text, voice, style)

    def _run(self, text: str, voice: str, style: str) -> SpeechResult:
        exe = shutil.which(self.binary)
        if exe is None:
            raise ProviderError(
                "The offline voice needs espeak-ng, which is not installed (Debian: apt-get install "
                "espeak-ng; on Community Cloud it is listed in packages.txt).",
                "fatal",
                code="no_espeak",
            )
        line = clean_line(text)
        if not line:
            raise ProviderError("There is nothing to say in this line.", "fatal", code="empty_line")
        st = style_of(style)
        v = ESPEAK_VOICES.get(voice, "en-us")
        with tempfile.TemporaryDirectory(prefix="foxpipe-espeak-") as tmp:
            out = Path(tmp) / "line.wav"
            # The text goes in on stdin: never through a shell, never parsed as an option.
            cmd = [exe, "-v", v, "-s", str(st.rate), "-p", str(st.pitch), "-w", str(out), "--stdin"]
            try:
                proc = subprocess.run(
                    cmd,
                    input=line.encode("utf-8"),
                    capture_output=True,
                    timeout=self.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as e:
                raise ProviderError(
                    "The offline voice took too long.", "retryable", code="timeout"
                ) from e
            except OSError as e:
                raise ProviderError(
                    f"The offline voice could not start ({e.strerror or e}).", "fatal"
                ) from e
            if proc.returncode != 0 or not out.exists():
                err = proc.stderr.decode("utf-8", "replace").strip()[:200]
                raise ProviderError(
                    f"The offline voice failed: {err or 'no audio written'}.", "retryable"
                )
            data = out.read_bytes()
        wav = ensure_wav(data, 22050)
        log.info("[VOICE] espeak-ng %s/%s: %d bytes", v, st.key, len(wav))
        return SpeechResult(wav=wav, words=[], transcript=line, model=self.name)

"""Narration synthesis: one line at a time on the worker, each with its own limiter slot,
retries and timeout; all lines with a concurrency cap and progress; a short voice preview.

Nothing here raises for a failed line: the line comes back FAILED with a readable error, and
the other lines are kept.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from foxpipe.domain.narration import (
    SAMPLE_SENTENCE,
    LineStatus,
    NarrationLine,
    SpeechResult,
    clean_line,
)
from foxpipe.engine.retry import Backoff
from foxpipe.media.words import estimate_words, wav_duration
from foxpipe.providers.base import ProviderError, VoiceModel

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[NarrationLine, int, int], None]  # (the line just finished, done, total)

MAX_BACKOFF = 30.0
VOICE_BACKOFF_JITTER = 0.25  # delays of 0.75-1.25 x base x 2^(attempt-1)


@dataclass
class VoiceLimiter:
    """At most ``concurrency`` syntheses at once, started at least ``min_interval`` seconds
    apart (0: no spacing). One per voice provider and event loop."""

    concurrency: int = 3
    min_interval: float = 0.0

    def __post_init__(self) -> None:
        self._sem = asyncio.Semaphore(max(1, self.concurrency))
        self._lock = asyncio.Lock()
        self._last = 0.0

    async def __aenter__(self) -> VoiceLimiter:
        await self._sem.acquire()
        if self.min_interval > 0:
            async with self._lock:
                wait = self._last + self.min_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                self._last = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._sem.release()


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    retries: int,
    base: float,
    timeout: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_attempt: Callable[[int], None] | None = None,
) -> T:
    """``call`` with a timeout per attempt and up to ``retries`` retries of retryable errors.
    Raises the last ProviderError."""
    attempt = 0
    while True:
        attempt += 1
        if on_attempt:
            on_attempt(attempt)
        try:
            async with asyncio.timeout(timeout):
                return await call()
        except TimeoutError as e:
            err = ProviderError(
                f"The voice took longer than {timeout:g} s.", "retryable", code="timeout"
            )
            err.__cause__ = e
        except ProviderError as e:
            err = e
        except Exception as e:  # a provider bug must not lose the line
            log.exception("[VOICE] unexpected error")
            err = ProviderError(f"Unexpected error in the voice ({type(e).__name__}).", "retryable")
        if err.kind != "retryable" or attempt > retries:
            raise err
        delay = Backoff(base, MAX_BACKOFF, VOICE_BACKOFF_JITTER).delay(attempt, err.retry_after)
        log.info("[VOICE] attempt %d failed (%s); retrying in %.2f s", attempt, err.message, delay)
        await sleep(delay)


def audio_name(index: int) -> str:
    return f"narration_{index + 1:02d}.wav"


async def synthesize_line(
    model: VoiceModel,
    line: NarrationLine,
    *,
    voice: str,
    style: str,
    out_dir: str | Path,
    limiter: VoiceLimiter | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff_base: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> NarrationLine:
    """Speak one line: retries, timeout, the WAV written to ``out_dir``, its duration and word
    timings filled in. Returns an updated copy; never raises (a failure is status FAILED)."""
    out = dataclasses.replace(
        line, words=list(line.words), voice=voice, provider=model.name, error=""
    )
    text = clean_line(line.text)
    out.text = text
    if not text:
        out.status = LineStatus.EMPTY
        out.audio_path, out.duration, out.words, out.timing, out.transcript = "", 0.0, [], "", ""
        return out
    attempts = 0

    def count(n: int) -> None:
        nonlocal attempts
        attempts = n

    async def once() -> SpeechResult:
        if limiter is None:
            result = await model.synthesize(text, voice, style)
        else:
            async with limiter:
                result = await model.synthesize(text, voice, style)
        if wav_duration(result.wav) <= 0:
            raise ProviderError(
                "The voice returned audio that could not be read.", "retryable", code="bad_audio"
            )
        return result

    try:
        result = await with_retries(
            once, retries=retries, base=backoff_base, timeout=timeout, sleep=sleep, on_attempt=count
        )
        path = Path(out_dir) / audio_name(line.index)
        await asyncio.to_thread(_write, path, result.wav)
        duration = wav_duration(path)
        if duration <= 0:
            raise ProviderError("The voice returned audio that could not be read.", "retryable")
        if result.words:
            words, timing = result.words, "provider"
        else:
            words, timing = await asyncio.to_thread(estimate_words, text, path), "estimated"
    except asyncio.CancelledError:
        raise
    except ProviderError as e:
        _clear_audio(out)
        out.status, out.error = LineStatus.FAILED, e.message
        out.attempts = line.attempts + max(1, attempts)
        log.warning(
            "[VOICE] line %d failed after %d attempt(s): %s",
            line.index + 1,
            max(1, attempts),
            e.message,
        )
        return out
    except Exception as e:  # disk full, unreadable folder...
        _clear_audio(out)
        out.status, out.error = (
            LineStatus.FAILED,
            f"Could not save the narration ({type(e).__name__}: {e})."[:300],
        )
        out.attempts = line.attempts + max(1, attempts)
        return out
    out.status = LineStatus.READY
    out.audio_path, out.duration, out.words, out.timing = str(path), duration, words, timing
    out.transcript = result.transcript
    out.reworded = result.reworded
    out.attempts = line.attempts + attempts
    log.info(
        "[VOICE] line %d ready: %.2f s, %d words (%s)", line.index + 1, duration, len(words), timing
    )
    return out


def _clear_audio(line: NarrationLine) -> None:
    """A failed line keeps no audio of an earlier text."""
    line.audio_path, line.duration, line.words, line.timing, line.transcript, line.reworded = (
        "",
        0.0,
        [],
        "",
        "",
        False,
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)


async def synthesize_all(
    model: VoiceModel,
    lines: list[NarrationLine],
    *,
    voice: str,
    style: str,
    out_dir: str | Path,
    concurrency: int = 3,
    on_progress: Progress | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    backoff_base: float = 1.0,
    min_interval: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[NarrationLine]:
    """Every line (READY lines are kept as they are), at most ``concurrency`` at once; the
    progress callback runs after each line. Returns the lines in their order."""
    limiter = VoiceLimiter(concurrency, min_interval)
    total = len(lines)
    done = 0
    results: list[NarrationLine] = list(lines)

    async def one(i: int, line: NarrationLine) -> None:
        nonlocal done
        if (
            line.status != LineStatus.READY
            or not line.audio_path
            or not Path(line.audio_path).exists()
        ):
            results[i] = await synthesize_line(
                model,
                line,
                voice=voice,
                style=style,
                out_dir=out_dir,
                limiter=limiter,
                retries=retries,
                timeout=timeout,
                backoff_base=backoff_base,
                sleep=sleep,
            )
        done += 1
        if on_progress is not None:
            try:
                on_progress(results[i], done, total)
            except Exception:
                log.exception("[VOICE] progress callback failed")

    await asyncio.gather(*(one(i, line) for i, line in enumerate(lines)))
    return results


def estimate_cost(model: VoiceModel, lines: list[NarrationLine] | list[str]) -> float:
    """US$ to synthesize these lines once (0.0 for a free voice): shown before paid synthesis."""
    texts = [x.text if isinstance(x, NarrationLine) else str(x) for x in lines]
    return round(sum(model.cost_estimate(t) for t in texts if clean_line(t)), 4)


@dataclass
class Preview:
    wav: bytes = b""
    duration: float = 0.0
    error: str = ""
    reworded: bool = False


async def preview(
    model: VoiceModel, voice: str, style: str, *, text: str = SAMPLE_SENTENCE, timeout: float = 30.0
) -> Preview:
    """One sample sentence in the chosen voice and style, for the UI's player. Never raises."""
    try:
        async with asyncio.timeout(timeout):
            result = await model.synthesize(text, voice, style)
    except TimeoutError:
        return Preview(error=f"The voice preview took longer than {timeout:g} s.")
    except ProviderError as e:
        return Preview(error=e.message)
    except Exception as e:
        log.exception("[VOICE] preview failed")
        return Preview(error=f"The voice preview failed ({type(e).__name__}).")
    return Preview(wav=result.wav, duration=wav_duration(result.wav), reworded=result.reworded)

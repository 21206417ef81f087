"""The one retry policy: one backoff formula with jitter, one Retry-After parser.

Images, the hero sheet, text calls, narration, vision checks, uploads, the Sheets log and the
video providers all wait through ``Backoff.delay`` and read the server's wish through
``retry_after_seconds``.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_RETRY_AFTER = 120.0  # a server asking for longer than this is asking too much: cap it


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: ``base``, 2 ``base``, 4 ``base``, … up to ``cap``, each with
    ±``jitter`` (a fraction) so retries of requests that failed together spread out; never
    shorter than the server's Retry-After (which may exceed ``cap``, up to MAX_RETRY_AFTER)."""

    base: float = 1.0
    cap: float = 30.0
    jitter: float = 0.5

    def delay(
        self, attempt: int, retry_after: float | None = None, *, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1 = the first try)."""
        r = (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        d = min(self.cap, self.base * 2.0 ** min(max(0, attempt - 1), 64) * r)
        if retry_after is not None and retry_after > 0:
            d = max(d, min(retry_after, MAX_RETRY_AFTER))
        return d


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """``Backoff(base, cap).delay(attempt, retry_after)``."""
    return Backoff(base, cap).delay(attempt, retry_after)


def retry_after_seconds(headers: Mapping[str, Any] | Any, now: float | None = None) -> float | None:
    """The server's Retry-After in seconds: ``retry-after-ms`` (OpenAI's, preferred), else
    ``retry-after`` as seconds or as an HTTP date. None when absent or unreadable."""
    if headers is None:
        return None
    get = getattr(headers, "get", None)
    if get is None:
        return None
    raw_ms = get("retry-after-ms") or get("Retry-After-Ms")
    if raw_ms not in (None, ""):
        ms = _number(raw_ms)
        if ms is not None:
            return max(0.0, ms / 1000.0)
    raw = get("retry-after") or get("Retry-After")
    if raw in (None, ""):
        return None
    secs = _number(raw)
    if secs is not None:
        return max(0.0, secs)
    if _looks_numeric(raw):  # "inf", "nan", "1e999": a number, but not a wait
        return None
    try:
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _number(raw: Any) -> float | None:
    """A finite number, or None ("inf" or "nan" would pause every request for ever)."""
    try:
        x = float(raw)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _looks_numeric(raw: Any) -> bool:
    try:
        float(raw)
    except (TypeError, ValueError):
        return False
    return True

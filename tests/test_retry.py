"""The one retry policy: Backoff's bounds and jitter, Retry-After parsing."""

from __future__ import annotations

import email.utils
import random

import httpx
import pytest

from foxpipe.engine.retry import MAX_RETRY_AFTER, Backoff, backoff_delay, retry_after_seconds


@pytest.mark.parametrize("attempt", range(1, 12))
def test_backoff_doubles_within_its_jitter_and_never_passes_the_cap(attempt):
    b = Backoff(base=0.5, cap=20.0, jitter=0.3)
    rng = random.Random(attempt)
    nominal = 0.5 * 2 ** (attempt - 1)
    delays = [b.delay(attempt, rng=rng) for _ in range(300)]
    low, high = min(nominal * 0.7, 20.0), min(nominal * 1.3, 20.0)
    assert all(low - 1e-9 <= d <= high + 1e-9 for d in delays)
    assert max(delays) <= 20.0
    if high < 20.0:  # below the cap the jitter really spreads the delays out
        assert max(delays) - min(delays) > 0.3 * (high - low)


def test_backoff_without_jitter_is_exact_and_early_attempts_use_the_base():
    b = Backoff(base=1.5, cap=100.0, jitter=0.0)
    assert [b.delay(n) for n in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 12.0]
    assert b.delay(0) == b.delay(-3) == 1.5  # a zero or negative attempt counts as the first
    assert Backoff(base=1.0, cap=5.0, jitter=0.0).delay(10) == 5.0


def test_backoff_survives_absurd_attempt_numbers():
    b = Backoff(base=1.0, cap=30.0)
    for n in (64, 1100, 10**6):
        assert 0 < b.delay(n) <= 30.0


def test_the_jitter_draws_from_the_given_rng():
    b = Backoff(base=1.0, cap=60.0, jitter=0.5)
    assert [b.delay(3, rng=random.Random(7)) for _ in range(3)] == [
        b.delay(3, rng=random.Random(7))
    ] * 3
    assert b.delay(3, rng=random.Random(1)) != b.delay(3, rng=random.Random(2))


def test_retry_after_is_honoured_above_the_cap_and_capped_at_its_maximum():
    b = Backoff(base=1.0, cap=10.0, jitter=0.5)
    assert b.delay(1, retry_after=42.0) == 42.0  # longer than the cap: the server knows best
    assert b.delay(1, retry_after=10_000.0) == MAX_RETRY_AFTER  # but not for ever
    assert b.delay(1, retry_after=float("inf")) == MAX_RETRY_AFTER
    assert 0.5 <= b.delay(1, retry_after=0.01) <= 1.5  # shorter: the backoff still applies
    for ra in (None, 0.0, -5.0):
        assert 0.5 <= b.delay(1, retry_after=ra) <= 1.5
    assert backoff_delay(1, 1.0, 10.0, retry_after=42.0) == 42.0
    assert all(backoff_delay(12, 1.0, 10.0) <= 10.0 for _ in range(100))


# ---------------------------------------------------------------------------- Retry-After
def test_retry_after_ms_is_preferred_and_read_in_milliseconds():
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after-ms": "20"}) == pytest.approx(0.02)
    assert retry_after_seconds(httpx.Headers({"Retry-After-Ms": "250"})) == 0.25
    assert (
        retry_after_seconds({"retry-after-ms": "soon", "retry-after": "3"}) == 3.0
    )  # garbage ms: seconds


@pytest.mark.parametrize(
    ("raw", "seconds"), [("7", 7.0), ("0", 0.0), ("1.5", 1.5), (" 12 ", 12.0), ("-3", 0.0)]
)
def test_retry_after_in_seconds(raw, seconds):
    assert retry_after_seconds({"retry-after": raw}) == seconds
    assert retry_after_seconds(httpx.Headers({"Retry-After": raw})) == seconds


def test_retry_after_as_an_http_date():
    now = 1_800_000_000.0
    later = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_after_seconds({"retry-after": later}, now=now) == pytest.approx(30.0)
    earlier = email.utils.formatdate(now - 600, usegmt=True)
    assert retry_after_seconds({"retry-after": earlier}, now=now) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": later}), now=now) == pytest.approx(
        30.0
    )


@pytest.mark.parametrize(
    "headers",
    [
        None,
        {},
        {"retry-after": ""},
        {"retry-after": "soon"},
        {"retry-after": "Someday, 99 Foo 2024"},
        {"retry-after": "nan"},
        {"retry-after": "inf"},
        {"retry-after": "1e999"},
        {"retry-after-ms": "inf"},
        {"retry-after-ms": "NaN"},
        {"retry-after-ms": "abc"},
        {"x-other": "5"},
        "not headers",
        42,
        object(),
    ],
)
def test_garbage_retry_after_is_none(headers):
    assert retry_after_seconds(headers) is None

"""The prompt log on Google Sheets, through gspread + google-auth.

Every row is first appended to the local CSV log with the marker ``NoSheet_pending`` (so
nothing is lost, even if the app stops), and a background thread sends the pending rows
to the worksheets ``stories`` and ``images`` in batches (``append_rows``, RAW values, so a
prompt starting with ``=`` stays text). The thread flushes at most once every
``flush_interval`` seconds, keeps every write under ``writes_per_minute`` in any minute
(the Sheets quota is 60 per user), retries 429/5xx/network errors a bounded number of times,
and marks delivered rows ``sheet``. Rows that could not be sent keep a ``NoSheet_<reason>``
marker and go again with the next flush. Logging never blocks or fails the story.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gspread.utils import ValueInputOption

from foxpipe.engine.retry import Backoff, retry_after_seconds
from foxpipe.providers.csvlog import IMAGE_COLUMNS, STORY_COLUMNS, CsvLog

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
PENDING = "NoSheet_pending"
NO_SHEET = "NoSheet_"
SENT = "sheet"
KINDS = ("stories", "images")
HEADERS = {
    "stories": [c for c in STORY_COLUMNS if c != "marker"],
    "images": [c for c in IMAGE_COLUMNS if c != "marker"],
}
NUMERIC = {"scene", "attempts", "seconds", "cost_usd"}
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}
MAX_ROWS_PER_WRITE = 500
MIN_QUOTA_WAIT = 0.001  # seconds: every quota wait moves the clock forward


class SheetError(Exception):
    def __init__(
        self, message: str, reason: str, permanent: bool, retry_after: float | None = None
    ):
        super().__init__(message)
        self.message = message
        self.reason = reason  # goes into the NoSheet_ marker: 429, 500, timeout, 404, ...
        self.permanent = permanent
        self.retry_after = retry_after


def classify(e: Exception) -> SheetError:
    """Turn a gspread / google-auth / requests exception into a SheetError."""
    import google.auth.exceptions
    import gspread.exceptions
    import requests

    if isinstance(e, SheetError):
        return e
    if isinstance(e, gspread.exceptions.SpreadsheetNotFound):
        return SheetError("the spreadsheet was not found (404)", "404", permanent=True)
    if isinstance(e, PermissionError):
        return SheetError(
            "the service account has no access to the spreadsheet (403)", "403", permanent=True
        )
    if isinstance(e, gspread.exceptions.APIError):
        status = e.response.status_code if e.response is not None else 0
        retry_after = None
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            retry_after = retry_after_seconds(e.response.headers)
        msg = str(e.error.get("message", ""))[:160] if isinstance(e.error, dict) else ""
        return SheetError(
            f"Sheets API error {status}: {msg}",
            str(status),
            permanent=status not in RETRYABLE_STATUS,
            retry_after=retry_after,
        )
    if isinstance(e, google.auth.exceptions.RefreshError):
        retryable = bool(getattr(e, "retryable", False))
        detail = str(e.args[0] if e.args else "")[:120]
        return SheetError(f"token endpoint said: {detail}", "auth", permanent=not retryable)
    if isinstance(e, requests.exceptions.Timeout):
        return SheetError("no answer from Google Sheets in time", "timeout", permanent=False)
    if isinstance(
        e, (requests.exceptions.RequestException, google.auth.exceptions.TransportError, OSError)
    ):
        return SheetError(f"network error ({type(e).__name__})", "network", permanent=False)
    if isinstance(e, ValueError):  # a private key that does not parse
        return SheetError(
            "the service account's private key could not be read", "key", permanent=True
        )
    return SheetError(f"unexpected error ({type(e).__name__})", "error", permanent=False)


class WriteQuota:
    """At most ``limit`` writes in any ``window`` seconds (a sliding window)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ):
        self.limit = max(1, limit)
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self.times: deque[float] = deque()

    def acquire(self) -> None:
        while True:
            now = self.clock()
            # Compare against the oldest write's deadline (times[0] + window), the same float
            # the wait below is computed from: now + (deadline - now) lands on the deadline, where
            # now - times[0] >= window could round a hair short and ask for a wait of ~1e-13 s
            # that a float clock cannot advance by (a spin that never ends).
            while self.times and now >= self.times[0] + self.window:
                self.times.popleft()
            if len(self.times) < self.limit:
                self.times.append(now)
                return
            self.sleep(max(self.times[0] + self.window - now, MIN_QUOTA_WAIT))


def sheet_value(column: str, value: Any) -> str | int | float:
    """A RAW cell value: numbers stay numbers, everything else is text."""
    if value is None:
        return ""
    if column in NUMERIC:
        if isinstance(value, (int, float)):
            return value
        try:
            f = float(str(value))
            return int(f) if f.is_integer() and "." not in str(value) else f
        except ValueError:
            return str(value)
    return str(value)


class SheetsLog:
    name = "sheets"

    def __init__(
        self,
        sheet_id: str,
        service_account: dict[str, Any],
        root: Path,
        *,
        flush_interval: float = 5.0,
        writes_per_minute: int = 50,
        timeout: float = 30.0,
        retries: int = 3,
        backoff_base: float = 1.0,
        backoff_cap: float = 20.0,
        retry_interval: float = 30.0,
        reconnect_after: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        redact: Callable[[str], str] = lambda s: s,
    ):
        self.sheet_id = sheet_id
        self.info = dict(service_account)
        self.csv = CsvLog(root)
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.retry_interval = retry_interval
        self.reconnect_after = reconnect_after
        self.clock = clock
        self.redact = redact
        self._virtual_sleep = sleep
        self.quota = WriteQuota(writes_per_minute, 60.0, clock, self._sleep)
        self.state = "connecting"  # connecting | live | unavailable
        self.problem = ""
        self.rows_sent = 0
        self._worksheets: dict[str, Any] = {}
        self._down_until = 0.0  # after a permanent failure, no reconnect before this time
        self._scan_from = dict.fromkeys(KINDS, 0)
        self._cond = threading.Condition()
        self._dirty = True  # rows left by an earlier run are sent on start
        self._backlog = False  # some rows could not be sent yet
        self._reason = "unavailable"  # why, for the NoSheet_ marker
        self._stop = False
        self._requested = 0
        self._done = 0
        self._last_flush = -1e9
        self._thread = threading.Thread(target=self._loop, name="foxpipe-sheets", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ PromptLog
    def log_story(self, row: dict[str, Any]) -> None:
        self._add("stories", row)

    def log_image(self, row: dict[str, Any]) -> None:
        self._add("images", row)

    def _add(self, kind: str, row: dict[str, Any]) -> None:
        self.csv.append_rows(kind, [{**row, "marker": PENDING}])  # durable first
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ control
    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything pending now (quota permitting); True when a flush completed."""
        with self._cond:
            self._requested += 1
            target = self._requested
            self._cond.notify_all()
            return self._cond.wait_for(
                lambda: self._done >= target or not self._thread.is_alive(), timeout
            )

    def close(self, timeout: float = 10.0) -> None:
        """A last flush, then stop the thread. Unsent rows stay in the CSV as NoSheet_."""
        with self._cond:
            self._stop = True
            self._requested += 1
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self._virtual_sleep is not None:
            self._virtual_sleep(seconds)
            return
        with self._cond:  # wakes early when the app shuts down
            self._cond.wait_for(lambda: self._stop, seconds)

    # ------------------------------------------------------------------ the thread
    def _loop(self) -> None:
        try:
            self._connect()
        except Exception:  # never let the thread die on setup
            log.exception("[SHEETS] setup crashed")
        while True:
            with self._cond:
                while not (self._stop or self._requested > self._done or self._dirty):
                    if not self._cond.wait(self.retry_interval) and self._backlog:
                        self._dirty = True  # failed rows are retried every retry_interval
                forced = self._stop or self._requested > self._done
                serving = self._requested
            if not forced:  # pace: at most one flush per interval
                wait = self._last_flush + self.flush_interval - self.clock()
                if wait > 0:
                    if self._virtual_sleep is not None:
                        self._virtual_sleep(wait)
                    else:
                        with self._cond:
                            self._cond.wait_for(
                                lambda: self._stop or self._requested > self._done, wait
                            )
                with self._cond:
                    serving = self._requested
            with self._cond:
                self._dirty = False
            try:
                self._flush_once()
            except Exception:
                log.exception("[SHEETS] flush crashed; rows stay in the local CSV")
            self._last_flush = self.clock()
            with self._cond:
                self._done = max(self._done, serving)
                self._cond.notify_all()
                if self._stop:
                    return

    # ------------------------------------------------------------------ connecting
    def _connect(self) -> bool:
        if self._worksheets:
            return True
        if self.clock() < self._down_until:
            return False
        try:
            self._worksheets = self._with_retries(self._open, write=False)
        except SheetError as e:
            self._set_problem(e)
            if e.permanent:
                self._down_until = self.clock() + self.reconnect_after
            return False
        self.state, self.problem = "live", ""
        log.info("[SHEETS] connected to spreadsheet %s…", self.sheet_id[:6])
        return True

    def _open(self) -> dict[str, Any]:
        import gspread

        gc = gspread.service_account_from_dict(
            self.info, scopes=SCOPES
        )  # plain client: retries are ours
        gc.set_timeout(self.timeout)
        sh = gc.open_by_key(self.sheet_id)
        existing = {ws.title: ws for ws in sh.worksheets()}
        out = {}
        for kind in KINDS:
            ws = existing.get(kind)
            if ws is None:
                self.quota.acquire()
                ws = sh.add_worksheet(kind, rows=1000, cols=len(HEADERS[kind]))
                self.quota.acquire()
                ws.append_rows([HEADERS[kind]], value_input_option=ValueInputOption.raw)
                log.info("[SHEETS] created worksheet %r", kind)
            elif not ws.row_values(1):
                self.quota.acquire()
                ws.append_rows([HEADERS[kind]], value_input_option=ValueInputOption.raw)
            out[kind] = ws
        return out

    def _set_problem(self, e: SheetError) -> None:
        email = self.info.get("client_email", "the service account")
        if e.reason == "404":
            text = (
                f"GOOGLE_SHEET_ID was not found (404). Check the id, and share the sheet with "
                f"{email} as Editor."
            )
        elif e.reason == "403":
            text = f"The Google Sheet is not shared with {email} (403). Share it as Editor."
        elif e.reason in ("auth", "key", "401"):
            text = f"Google refused the service account's credentials ({e.message})."
        else:
            text = f"Google Sheets is unreachable ({e.message})."
        self.state = "unavailable"
        self._backlog = True
        self._reason = e.reason
        self.problem = self.redact(f"{text} Rows are kept in the local CSV and sent later.")
        log.warning("[SHEETS] %s", self.problem)

    # ------------------------------------------------------------------ writing
    def _with_retries(self, fn: Callable[[], Any], write: bool = True) -> Any:
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            if write:
                self.quota.acquire()
            try:
                return fn()
            except Exception as exc:
                err = classify(exc)
            if err.permanent or attempt == attempts or self._stop and attempt > 1:
                raise err
            delay = min(
                self.backoff_cap,
                Backoff(self.backoff_base, self.backoff_cap).delay(attempt, err.retry_after),
            )
            log.info(
                "[SHEETS] %s; retrying in %.1fs (%d/%d)", err.message, delay, attempt, attempts
            )
            self._sleep(delay)
        raise AssertionError("unreachable")

    def _flush_once(self) -> None:
        if not self._connect():
            self._mark_failed_pending()
            return
        for kind in KINDS:
            backlog = self.csv.pending(kind, NO_SHEET, self._scan_from[kind])
            for i in range(0, len(backlog), MAX_ROWS_PER_WRITE):
                chunk = backlog[i : i + MAX_ROWS_PER_WRITE]
                values = [
                    [sheet_value(c, row.get(c, "")) for c in HEADERS[kind]] for _, row in chunk
                ]
                ws = self._worksheets[kind]
                try:
                    self._with_retries(
                        functools.partial(
                            ws.append_rows, values, value_input_option=ValueInputOption.raw
                        )
                    )
                except SheetError as e:
                    self.csv.set_markers(kind, [p for p, _ in backlog[i:]], f"{NO_SHEET}{e.reason}")
                    self._set_problem(e)
                    if e.permanent:
                        self._worksheets = {}
                        self._down_until = self.clock() + self.reconnect_after
                    self._mark_failed_pending()  # the other worksheet's rows wait too
                    return
                self.csv.set_markers(kind, [p for p, _ in chunk], SENT)
                self.rows_sent += len(chunk)
                log.info("[SHEETS] %d %s row(s) written", len(chunk), kind)
            if backlog:
                # Everything up to the last row sent is delivered: skip it next time.
                self._scan_from[kind] = backlog[-1][0] + 1
        self._backlog = False
        if self.state != "live":
            self.state, self.problem = "live", ""

    def _mark_failed_pending(self) -> None:
        """No connection: pending rows get the reason in their marker (still retried)."""
        reason = self._reason
        for kind in KINDS:
            rows = self.csv.pending(kind, PENDING, self._scan_from[kind])
            self.csv.set_markers(kind, [p for p, _ in rows], f"{NO_SHEET}{reason}")

"""Password guessing, limited for the whole process: wrong passwords are counted per client
address and for the app as a whole over a sliding minute, in one process-wide, thread-safe
limiter that no session, rerun or cache operation can reset. No Streamlit here."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_SECONDS = 60.0
UNKNOWN_CLIENT = "unknown"


@dataclass
class Attempt:
    """A password check the limiter let through; ``refund`` it if the password was right."""

    client: str
    at: float


@dataclass
class GuessLimiter:
    """At most ``per_client`` wrong passwords per client address and ``overall`` in all, per
    sliding ``window`` seconds. An attempt takes its place *before* the password is compared
    (so parallel sessions cannot all slip through at once) and gives it back when the password
    was right. The pause after a wrong password is the caller's, outside this lock."""

    window: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _all: deque[float] = field(default_factory=deque, repr=False)
    _by_client: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def _expire(self, now: float) -> None:
        edge = now - self.window
        while self._all and self._all[0] <= edge:
            self._all.popleft()
        for client in list(self._by_client):
            q = self._by_client[client]
            while q and q[0] <= edge:
                q.popleft()
            if not q:
                del self._by_client[client]

    def _wait(self, client: str, per_client: int, overall: int, now: float) -> float:
        self._expire(now)
        mine = self._by_client.get(client, deque())
        waits = [0.0]
        if len(mine) >= max(1, per_client):
            waits.append(mine[len(mine) - max(1, per_client)] + self.window - now)
        if len(self._all) >= max(1, overall):
            waits.append(self._all[len(self._all) - max(1, overall)] + self.window - now)
        return max(waits)

    def wait(self, client: str, per_client: int, overall: int) -> float:
        """Seconds until this client may try again (0: now)."""
        with self._lock:
            return self._wait(client or UNKNOWN_CLIENT, per_client, overall, self.clock())

    def acquire(self, client: str, per_client: int, overall: int) -> Attempt | float:
        """An Attempt, or the seconds until one is allowed again."""
        client = client or UNKNOWN_CLIENT
        with self._lock:
            now = self.clock()
            if (wait := self._wait(client, per_client, overall, now)) > 0:
                return max(0.001, wait)
            self._all.append(now)
            self._by_client.setdefault(client, deque()).append(now)
            return Attempt(client, now)

    def refund(self, attempt: Attempt) -> None:
        """The password was right: this attempt does not count as a failure."""
        with self._lock:
            for q in (self._all, self._by_client.get(attempt.client)):
                if q is not None and attempt.at in q:
                    q.remove(attempt.at)

    def failures(self, client: str | None = None) -> int:
        """Wrong passwords in the current window (of one client, or in all)."""
        with self._lock:
            self._expire(self.clock())
            if client is None:
                return len(self._all)
            return len(self._by_client.get(client or UNKNOWN_CLIENT, ()))

    def reset(self) -> None:
        with self._lock:
            self._all.clear()
            self._by_client.clear()


LIMITER = GuessLimiter()  # one per process, outside any Streamlit cache

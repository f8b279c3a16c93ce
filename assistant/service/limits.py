"""Rate limits with lockouts that expire: failed attempts (a wrong proof when linking a
customer, a wrong password) are recorded in the store under keys such as ``link:session:<id>``
or ``link:client:<address>``; a key with ``limit`` failures inside the lockout window is
locked until the oldest of them leaves the window. Attempts refused while locked are not
counted, so a lockout cannot be stretched by hammering it."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from assistant.core.errors import InputError
from assistant.infra.store import Store


@dataclass(frozen=True)
class Limit:
    key: str
    limit: int


class AttemptLimiter:
    def __init__(self, store: Store, window_minutes: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.window = window_minutes * 60
        self.clock = clock

    def locked_for(self, limits: list[Limit]) -> float:
        """Seconds until every key given is free again (0: none is locked)."""
        now = self.clock()
        wait = 0.0
        for lim in limits:
            times = self.store.attempt_times(lim.key, now - self.window)
            if len(times) >= lim.limit:
                wait = max(wait, times[-lim.limit] + self.window - now)
        return wait

    def check(self, limits: list[Limit], what: str = "tries") -> None:
        """Raise a polite ``InputError`` naming the wait when any key is locked."""
        wait = self.locked_for(limits)
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            raise InputError(f"Too many {what} in a row.",
                             f"Please try again in {minutes} minute{'s' * (minutes != 1)}.")

    def fail(self, limits: list[Limit]) -> None:
        now = self.clock()
        for lim in limits:
            self.store.add_attempt(lim.key, now)

    def clear(self, key: str) -> None:
        self.store.clear_attempts(key)


class RateLimiter:
    """Calls per key in a sliding minute: chat messages per session, API calls per client
    address. ``hit`` counts a call and says whether it may go on. With a ``store`` the
    calls are counted there (``rate:<key>`` rows of the attempts table), so every app
    process shares one count; without, in memory (one process: tests, tools), where keys
    idle for a minute are forgotten, so memory stays bounded by the last minute's traffic."""

    def __init__(self, per_minute: int, clock: Callable[[], float] | None = None, *,
                 store: Store | None = None) -> None:
        self.per_minute = per_minute
        self.store = store
        # wall time when shared: several processes compare their readings
        self.clock = clock or (time.time if store is not None else time.monotonic)
        self._calls: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._swept = self.clock()

    def hit(self, key: str) -> bool:
        now = self.clock()
        if self.store is not None:
            return self.store.hit_rate(f"rate:{key}", now, self.per_minute, 60.0)
        with self._lock:
            if now - self._swept > 60:
                self._calls = {k: q for k, q in self._calls.items() if q and now - q[-1] < 60}
                self._swept = now
            calls = self._calls.setdefault(key, deque())
            while calls and now - calls[0] >= 60:
                calls.popleft()
            if len(calls) >= self.per_minute:
                return False
            calls.append(now)
            return True

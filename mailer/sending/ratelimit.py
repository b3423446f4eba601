"""A token bucket shared by all sender threads: at most `rate` messages per second.

Honest by construction: capacity is taken only once there is work (a worker that finds
none gives its reservation back), a reservation smaller than asked is refunded, and the
bucket holds at most `burst` messages, so over any window the rate stays `rate` and
messages leave spaced, not in clumps. Clock and sleep are injectable: tests drive it with
a fake clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep_until: Callable[[float, threading.Event | None], bool] | None = None,
    ) -> None:
        self.rate = rate
        self.capacity = burst if burst is not None else 1.0
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.lock = threading.Lock()
        self._sleep_until = sleep_until or self._real_sleep_until

    @property
    def limited(self) -> bool:
        return self.rate > 0

    def reserve(self, n: int = 1) -> float:
        """Take n messages' worth now; the time (on `clock`) at which they may go."""
        with self.lock:
            now = self.clock()
            if not self.limited:
                return now
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            self.tokens -= n  # may go negative: the debt is the wait
            return now + (-self.tokens / self.rate if self.tokens < 0 else 0.0)

    def refund(self, n: int) -> None:
        """Give back what was reserved and not sent."""
        if self.limited and n > 0:
            with self.lock:
                self.tokens = min(self.capacity, self.tokens + n)

    def acquire(self, n: int = 1, stop: threading.Event | None = None) -> bool:
        """Block until n messages may go; True if stopped while waiting (n is refunded)."""
        stopped = self._sleep_until(self.reserve(n), stop)
        if stopped:
            self.refund(n)
        return stopped

    def _real_sleep_until(self, deadline: float, stop: threading.Event | None) -> bool:
        remaining = deadline - self.clock()
        if remaining <= 0:
            return bool(stop and stop.is_set())
        if stop is not None:
            return stop.wait(remaining)
        time.sleep(remaining)
        return False

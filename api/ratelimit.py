"""Per-client-address limits on updates (off unless PROGRESS_UPDATE_RATE_LIMIT is set) and on
creates (PROGRESS_CREATE_RATE_LIMIT), so one runaway script cannot crowd out everybody else.
Token buckets in this process's memory: with several web processes, each enforces the limit on
its own."""

from __future__ import annotations

import threading
import time

import falcon

MAX_CLIENTS = 100_000  # buckets kept; beyond this the table starts afresh


class RateLimiter:
    def __init__(
        self,
        per_second: float,
        burst: float | None = None,
        what: str = "updates",
        setting: str = "PROGRESS_UPDATE_RATE_LIMIT",
    ) -> None:
        self.rate = per_second
        self.burst = burst or max(1.0, per_second)
        self.what, self.setting = what, setting
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, last time)
        self._lock = threading.Lock()

    def charge(self, address: str, cost: int = 1) -> None:
        """Take `cost` tokens from the address's bucket, or answer 429."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) >= MAX_CLIENTS:
                self._buckets.clear()
            tokens, last = self._buckets.get(address, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < cost:
                self._buckets[address] = (tokens, now)
                wait = (cost - tokens) / self.rate
                raise falcon.HTTPTooManyRequests(
                    description=f"at most {self.rate:g} {self.what} per second from one "
                    f"address, {self.burst:g} at once ({self.setting})",
                    retry_after=max(1, int(wait + 0.999)),
                )
            self._buckets[address] = (tokens - cost, now)

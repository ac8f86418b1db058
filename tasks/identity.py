"""Which store this process works on, so that a Redis that lost its data (a crash without
persistence, a fresh instance) or a different Redis (a wrong address) is never served as the
truth in silence.

The store keeps an identity (Store.IDENTITY: an id written once, when it was created); each
process remembers the ones it has worked on. Every update and create is checked against it in
the same script that writes it (tasks/lua/accept.lua, create.lua), so nothing is written to a
store this process does not know. When the store it reaches has:
  - its remembered identity: all is well;
  - none: the store lost its data. The first process to see it gives it a new identity that
    records the reset (the time, and the identity lost), and carries on with it: new jobs work
    at once, and the answers for a job that is now unknown say that the store was reset then;
  - another, not descended from one it knows: it is another store. Writes are refused with 503
    and /readyz names it, until the address is put right or the processes are restarted.
A process that has never read the identity cannot tell a reset store from a new one, and would
stamp it as new: so every serving process learns it when it starts (IdentityGuard.learn), not
at its first write, which may come only after a reset.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from redis.exceptions import ConnectionError, RedisError

log = logging.getLogger("progress.store")


@dataclass(frozen=True)
class Identity:
    id: str
    created: float
    previous: str = ""  # the identity this one replaced after a reset
    reset_at: float | None = None  # when the store was found without its data


class StoreMismatch(Exception):
    """The store reached is not one this process worked on."""

    def __init__(self, found: Identity, known: str) -> None:
        super().__init__(
            f"the Redis reached holds another progress store (identity {found.id}, created "
            f"{found.created:.0f}) than the one this process works on ({known}): check REDIS_URL, "
            "or restart the service's processes to adopt it"
        )
        self.found = found


class StoreIdentityChanged(ConnectionError):
    """A script found the store's identity other than the one it was given. Pipeline looks
    again and retries once; should the store change again meanwhile, the caller sees what it
    is: the store it knows is not reachable at the moment (a 503)."""


class IdentityGuard:
    """What this process remembers of its store (thread-safe)."""

    def __init__(self, store) -> None:
        self.store = store
        self.known: set[str] = set()
        self.current: Identity | None = None
        self.mismatch: StoreMismatch | None = None
        self._lock = threading.Lock()

    def expected_id(self, now: float) -> str:
        """The identity a write must find, checking the store first if none is known yet."""
        current = self.current
        if current is None or self.mismatch is not None:
            current = self.check(now)
        return current.id

    def learn(self, retry_every: float = 1.0) -> None:
        """Read the store's identity as soon as the store answers (run in a thread at start)."""
        while True:
            try:
                found = self.check(time.time())
                log.info("event=store_known identity=%s", found.id)
                return
            except StoreMismatch:
                return  # known now, and refused until the address is put right
            except RedisError:
                time.sleep(retry_every)

    def check(self, now: float) -> Identity:
        """Read the store's identity (giving it one if it has none) and compare it with what
        this process knows. Raises StoreMismatch for another store."""
        with self._lock:
            remembered = self.current.id if self.current else ""
            found = self.store.identity(uuid.uuid4().hex, now, remembered)
            if self.current is None or found.id in self.known or found.previous in self.known:
                if found.reset_at is not None and found.previous == remembered and remembered:
                    log.error(
                        "event=store_reset lost=%s new=%s reset_at=%.3f",
                        remembered,
                        found.id,
                        found.reset_at,
                    )
                self.known.add(found.id)
                self.current, self.mismatch = found, None
                return found
            self.mismatch = StoreMismatch(found, remembered)
            log.error("event=store_mismatch found=%s known=%s", found.id, remembered)
            raise self.mismatch

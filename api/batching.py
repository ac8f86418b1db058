"""Group concurrent requests into one publish: the cost of a queue round trip is paid once per
batch instead of once per request, while each request still waits until its batch is durable."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class _Pending(Generic[Item, Outcome]):
    __slots__ = ("item", "done", "outcome", "error")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = threading.Event()
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None


class Batcher(Generic[Item, Outcome]):
    """Hands every item submitted while the previous batch was being published to `publish` as
    the next batch. No timer: under light load a batch is one item and waits for nothing; under
    heavy load batches grow by themselves."""

    def __init__(
        self, publish: Callable[[list[Item]], list[Outcome]], max_batch: int = 1000
    ) -> None:
        self._publish = publish
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending[Item, Outcome]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="batcher", daemon=True)
        self._thread.start()

    def submit(self, item: Item, timeout: float) -> Outcome:
        """Wait for the batch holding `item` to be published; its outcome, or its error."""
        pending: _Pending[Item, Outcome] = _Pending(item)
        self._queue.put(pending)
        if not pending.done.wait(timeout):
            raise TimeoutError("the update queue did not answer in time")
        if pending.error is not None:
            raise pending.error
        return pending.outcome  # type: ignore[return-value]

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes = self._publish([p.item for p in batch])
                for pending, outcome in zip(batch, outcomes, strict=True):
                    pending.outcome = outcome
            except Exception as exc:  # every waiter of the batch gets the error
                for pending in batch:
                    pending.error = exc
            for pending in batch:
                pending.done.set()

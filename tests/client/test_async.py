"""asyncio: `async with job.worker(...)` and the a-methods never hold the event loop while the
network is slow. A heartbeat task measures the longest gap between its ticks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import progress_client
import pytest
from progress_client import Job, JobNotFound

from .conftest import eventually

T = TypeVar("T")


def run_in_fresh_thread(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(coro) in a thread of its own: asyncio.run() refuses to start inside a thread
    whose event loop is running, as the main thread's is when Playwright's sync API (the browser
    tests' session fixture) ran earlier in the same pytest process."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # re-raised in the test's own thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="test-asyncio-run")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


class Heartbeat:
    """Ticks every 10 ms and remembers the longest gap: a stalled loop shows up as a long gap."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.sleep(0.05)  # a tick after a stall, so the stall is measured
        self._task.cancel()


def test_leaving_the_block_does_not_stall_the_loop_when_the_service_hangs(silent_url):
    """The service accepts connections and never answers: a blocking close() would hold the
    loop for its whole 2 s wait; here only the block's own coroutine waits."""

    async def main() -> tuple[float, float]:
        job = Job(silent_url, "async-silent")
        async with Heartbeat() as heart:
            started = time.monotonic()
            async with job.worker("w1", total=3, timeout=5) as w:
                w.advance(3)
            waited = time.monotonic() - started
        return heart.longest, waited

    longest, waited = run_in_fresh_thread(main())
    assert waited >= 1.5  # the block did wait for delivery (up to close()'s 2 s)...
    assert longest < 0.5, f"the loop stalled for {longest:.2f}s"  # ...but not the loop
    assert progress_client.queued() == 1  # nothing lost: still queued for the service


def test_async_with_reports_done_and_failure_to_the_live_service(live_url):
    async def main() -> Job:
        job = await Job.acreate(live_url, desc="async workers")
        async with job.worker("ok", total=2) as w:
            w.advance(2)
        with pytest.raises(OSError):
            async with job.worker("bad", total=4) as w:
                w.advance(1)
                raise OSError("disk gone")
        return job

    job = run_in_fresh_thread(main())

    def both():
        rows = {r["workid"]: r for r in job.status()["workers"]}
        return len(rows) == 2 and rows["bad"]["state"] == "failed" and rows

    rows = eventually(both, 30, "both workers")
    assert rows["ok"]["state"] == "done" and rows["bad"]["percent"] == 25

    async def status_then_delete() -> dict:
        status = await job.astatus()
        await job.adelete()
        return status

    assert run_in_fresh_thread(status_then_delete())["counts"]["done"] == 1
    with pytest.raises(JobNotFound):
        job.status()

"""tqdm that also reports to the progress service: `from progress_client import tqdm, trange`.

The terminal output is tqdm's own (this subclass only adds to `display` and `close`, as tqdm's
Slack, Telegram and Discord classes do); each redraw hands the bar's count to a Worker, whose
background sender coalesces and delivers it without blocking the loop.
"""

from __future__ import annotations

from typing import Any

try:
    from tqdm import tqdm as _std_tqdm
except ImportError as exc:  # an optional extra: say which one
    raise ImportError(
        "progress_client.tqdm needs tqdm: pip install 'progress-client[tqdm]'"
    ) from exc

from ._launcher import default_workid
from .job import Job, Worker

__all__ = ["tqdm", "trange"]


class tqdm(_std_tqdm):  # noqa: N801 - a drop-in keeps tqdm's name
    """`tqdm.tqdm`, also reporting its count as one worker of a progress job.

    Extra keyword arguments: `job` (default `Job.from_env()`: without $PROGRESS_URL the bar
    only draws), `workid` (default the launcher's id, see `default_workid`; a nested bar at
    position p appends "#p"), or `worker` (a Worker to report through instead). The bar's `desc`
    becomes the worker's desc. The worker is done when the bar closes at its total, and failed
    when a `with tqdm(...)` block raises; a disabled bar reports nothing."""

    def __init__(
        self,
        *args: Any,
        job: Job | None = None,
        workid: Any = None,
        worker: Worker | None = None,
        **kwargs: Any,
    ) -> None:
        self._progress: Worker | None = None  # tqdm may draw before __init__ returns
        super().__init__(*args, **kwargs)
        if self.disable:
            return
        if worker is None:
            job = job if job is not None else Job.from_env()
            if workid is None:
                workid = _bar_workid(abs(getattr(self, "pos", 0) or 0))
            worker = job.worker(workid, total=self.total or None, current=self.n)
        self._progress = worker
        self._report()

    def display(self, msg: str | None = None, pos: int | None = None) -> Any:
        shown = super().display(msg=msg, pos=pos)
        self._report()
        return shown

    def close(self) -> None:
        finishing = not getattr(self, "disable", True)
        super().close()
        worker = getattr(self, "_progress", None)
        if finishing and worker is not None:
            self._report()
            if self.total and self.n >= self.total and worker.ok:
                worker.done()
            # Like tqdm's Slack and Telegram bars, never wait on close: nested bars, or bars in
            # a loop, would each stall the caller while the service is slow. The state goes out
            # in the background, or with the flush at exit.
            worker.close(timeout=0)

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> Any:
        worker = getattr(self, "_progress", None)
        if exc_type is not None and worker is not None and not self.disable:
            worker.update(current=self.n)
            worker.fail(exc_type.__name__)
        return super().__exit__(exc_type, exc_value, traceback)

    def _report(self) -> None:
        worker = getattr(self, "_progress", None)
        if worker is not None:
            # set_description() keeps the ": " that tqdm draws after it; the chart needs none.
            desc = self.desc[:-2] if self.desc.endswith(": ") else self.desc
            worker.update(current=self.n, total=self.total or None, desc=desc or None)


def _bar_workid(position: int) -> str:
    base = default_workid()
    return f"{base}#{position}" if position else base


def trange(*args: Any, **kwargs: Any) -> tqdm:
    """`tqdm(range(*args), **kwargs)`, reporting like `tqdm`."""
    return tqdm(range(*args), **kwargs)

"""The budget of worker rows status pages may list per second to one client address
(PROGRESS_WEB_STATUS_ROWS_PER_SECOND): building a big page is the web's costliest work (a
10,000-row page takes about 0.2 s of a web process's CPU), and clients looping on it must leave
the CPU to everyone else's updates."""

from __future__ import annotations

from api.params import WORKER_LIMIT
from api.ratelimit import RateLimiter
from domain.model import JobInfo
from tasks.settings import Settings

# Pages of up to this many rows cost nothing: the show page's polls (20 workers, 25 problems of
# each kind) and a script's summary cost what an update does.
FREE_PAGE_ROWS = 100


class RowBudget:
    def __init__(self, settings: Settings) -> None:
        rate = settings.web_status_rows_per_second
        # A burst of one full page, so every page the parameters allow can be had.
        self.burst = max(rate, int(WORKER_LIMIT.maximum))
        self.limiter = RateLimiter(
            rate,
            burst=self.burst,
            what="worker rows in status pages",
            setting="PROGRESS_WEB_STATUS_ROWS_PER_SECOND",
        )

    def charge(self, address: str, which: str, limit: int, info: JobInfo) -> None:
        """Charge the rows the page lists at most, from the job's counts, before they are read
        (a refusal costs nothing), or answer 429."""
        rows = page_rows(which, limit, info)
        if rows > FREE_PAGE_ROWS:
            self.limiter.charge(address, min(rows, self.burst))


def page_rows(which: str, limit: int, info: JobInfo) -> int:
    if which == "all":
        return min(limit, info.workers)
    if which == "problems":  # its failed ones, then its stale ones, up to `limit` of each
        return min(limit, info.summary.failed) + min(limit, info.summary.stale)
    return 0


def describe(settings: Settings) -> str:
    """What /openapi.json says of the budget."""
    rate = settings.web_status_rows_per_second
    if not rate:
        return "Page through a big job with `next`."
    return (
        f"Each client address may read {rate} worker rows a second from each web process, "
        "and one full page at once: a page costs the rows it lists at most (the job's workers "
        "up to `limit`; for problems, its failed and its stale ones up to `limit` each), and "
        f"one of {FREE_PAGE_ROWS} rows or fewer costs nothing; past it, 429 with Retry-After. "
        "Page through a big job with `next`."
    )

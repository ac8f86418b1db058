"""HTML pages: the live view of one job (/progress/show) and the recent-jobs overview
(/progress/), rendered from api/templates/ with autoescaping; their one stylesheet and one
script in api/static/, served by StaticFiles; and the headers that make a browser run nothing
else on them (SecurityHeaders)."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from importlib.resources import files
from urllib.parse import urlsplit

import falcon
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from domain.formatting import percent_label, utc_time_label
from domain.lifetimes import OVERSTAYING_TEXT
from domain.model import STATE_COLOURS, WorkerState
from tasks.settings import Settings

# What each count tile of the show page says when pointed at.
STATE_HINTS = {
    WorkerState.RUNNING: "reporting, not finished yet",
    WorkerState.DONE: "reached its total",
    WorkerState.FAILED: "reported ok=0",
    WorkerState.STALE: "unfinished, and silent for too long",
}
# The workers listed beside the chart, in this order; their tiles lead to the list.
PROBLEM_STATES = (WorkerState.FAILED, WorkerState.STALE)
# A job of up to this many workers gets a table of them all on its page when any of them has
# counters (update's counters): ARP's report column.
PAGE_WORKERS = 20


# --------------------------------------------------------------------------- static files


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    version: str  # a hash of the body: its URL's ?v= and its ETag


_CONTENT_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _load_assets() -> dict[str, Asset]:
    """api/static/, read once: through importlib.resources, so an installed (non-editable)
    package serves the files it was built with."""
    assets = {}
    for entry in files("api").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if suffix in _CONTENT_TYPES:
            body = entry.read_bytes()
            version = hashlib.sha256(body).hexdigest()[:16]
            assets[entry.name] = Asset(body, _CONTENT_TYPES[suffix], version)
    return assets


ASSETS = _load_assets()


def static_url(name: str) -> str:
    """Relative, so it resolves beside the page (/progress/show and /progress/ alike) under any
    prefix or proxy, on the page's own origin, which is what the CSP's 'self' allows. The ?v=
    changes with the file's content: a new deploy's pages ask for the new file."""
    return f"static/{name}?v={ASSETS[name].version}"


class StaticFiles:
    """GET /progress/static/{name}: the pages' CSS and JS. Cached for a year when asked for by
    the current version (the URL changes with the content), else revalidated every time."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        asset = ASSETS.get(name)
        if asset is None:
            raise falcon.HTTPNotFound(description=f"there is no static file {name!r}")
        if req.get_param("v") == asset.version:
            resp.cache_control = ["public", "max-age=31536000", "immutable"]
        else:
            resp.cache_control = ["no-cache"]
        resp.etag = asset.version
        if req.if_none_match and any(tag in ("*", asset.version) for tag in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = asset.content_type
        resp.data = asset.body


# --------------------------------------------------------------------------- headers


def content_security_policy(public_url: str = "") -> str:
    """Only the service's own files may run, style or be fetched: no inline script, style or
    handler attribute. The show page fetches its status and chart from the URLs create hands
    out, which start with PROGRESS_PUBLIC_URL when that is set: its origin is allowed too."""
    origin = ""
    parts = urlsplit(public_url)
    if parts.scheme in ("http", "https") and parts.netloc:
        origin = f" {parts.scheme}://{parts.netloc}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: blob:{origin}",  # data: the tab's icon; blob: the chart
            f"connect-src 'self'{origin}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """Middleware: every response forbids MIME sniffing and sends no Referer (a job id in a URL
    stays here); every HTML page also gets the Content-Security-Policy."""

    def __init__(self, settings: Settings) -> None:
        self.csp = content_security_policy(settings.public_url)

    def process_response(self, req, resp: falcon.Response, resource, req_succeeded) -> None:
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Referrer-Policy", "no-referrer")
        if (resp.content_type or "").startswith(falcon.MEDIA_HTML.split(";")[0]):
            resp.set_header("Content-Security-Policy", self.csp)


# --------------------------------------------------------------------------- pages

# The characters that reorder the text around them (Unicode's explicit directional formatting
# and marks: ALM, LRM, RLM, LRE-RLO, LRI-PDI), as progress.js's BIDI_CONTROLS. A job id or
# description holding them could make a tab's title or a heading read as something else
# ("report\u202egnp.exe" shows as "reportexe.png").
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def label(text: str) -> str:
    """A job's name where it labels the page (title, heading, the overview's link): without
    bidirectional controls. Where an id is shown as a value (<code>), it is exact, and
    isolated by progress.css instead (unicode-bidi: isolate, as <bdi>)."""
    return BIDI_CONTROLS.sub("", text)


def title_text(text: str) -> str:
    """A label in the title, which can hold no markup: isolated with FSI ... PDI, so that
    right-to-left text in it cannot reorder the words around it ("Progress:", "42 %")."""
    return "\u2068" + label(text) + "\u2069"


def _interval_text(seconds: float) -> str:
    """The refresh interval as set, not rounded: 90 s, 2.5 min."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:.3g} h"


def _bar_width(percent: float) -> str:
    return f"{min(100.0, max(0.0, percent)) if math.isfinite(percent) else 0.0:.1f}"


_templates = Environment(
    loader=PackageLoader("api", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(
    interval_text=_interval_text,
    percent=percent_label,
    utc=utc_time_label,
    thousands="{:,}".format,
    bar_width=_bar_width,
    label=label,
    title_text=title_text,
)
_templates.globals.update(
    static=static_url,
    state_colours={state.value: colour for state, colour in STATE_COLOURS.items()},
)


def show_page(
    jobid: str, desc: str, interval: float, urls: dict[str, str], *, overview: bool = True
) -> str:
    """The live view of one job. `urls` holds the job's show, render and status URLs;
    `overview` says whether to link the recent-jobs page (off when listing is switched off)."""
    config = {
        "jobid": jobid,
        "interval": interval,
        **urls,
        "states": [state.value for state in WorkerState],
        "problem_states": [state.value for state in PROBLEM_STATES],
        "page_workers": PAGE_WORKERS,
        "overstaying_text": OVERSTAYING_TEXT,  # the lifetimes view's flag
    }
    home = urls["show"].split("/progress/show", 1)[0] + "/progress/"
    return _templates.get_template("show.html").render(
        page="show",
        jobid=jobid,
        desc=desc,
        interval=interval,
        refresh_seconds=max(1, math.ceil(interval)),  # whole seconds, as browsers read it
        config=config,
        tiles=[(state.value, STATE_HINTS[state]) for state in WorkerState],
        overview_url=home if overview else None,
    )


def overview_page(listing: dict) -> str:
    """Recent jobs, newest first, one page of `listing` (the /progress/jobs document)."""
    jobs, total = listing["jobs"], listing["total"]
    limit, offset = listing["limit"], listing["offset"]
    if jobs:
        shown = f"Jobs {offset + 1:,}\u2013{offset + len(jobs):,} of {total:,}"
    else:
        shown = f"{total:,} jobs" if total else "No jobs"
    pages = {
        "total": total,
        "limit": limit,
        "newer": max(0, offset - limit) if offset > 0 else None,
        "older": offset + limit if offset + limit < total else None,
        "shown": shown,
    }
    return _templates.get_template("overview.html").render(
        page="overview", jobs=jobs, listing=pages
    )

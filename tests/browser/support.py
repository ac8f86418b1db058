"""What the browser tests share: viewports, a tab that records dialogs and script errors, and
helpers that read the page and the chart it shows."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from renderer.chart import COLORS
from tests.harness import ROOT, wait_until

ARTIFACTS = ROOT / "artifacts" / "browser"

VIEWPORTS = {
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
    "desktop": {"viewport": {"width": 1440, "height": 900}},
}

# Generous bounds for the page to catch up: it refreshes every INTERVAL s and the test service
# renders at most every 0.5 s; these only bound how long a failing test hangs.
INTERVAL = 1
WAIT_MS = 30_000


def rgb(name: str) -> tuple[int, int, int]:
    """A status colour of the chart, as the renderer draws it."""
    value = COLORS[name].lstrip("#")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


class Tab:
    """A page plus what it did that a test must notice: dialogs and uncaught errors."""

    def __init__(self, page, screenshot_path: Path) -> None:
        self.page = page
        self.screenshot_path = screenshot_path
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def screenshot(self) -> None:
        self.screenshot_path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.screenshot_path), full_page=True)

    def open_show(self, service, jobid: str, interval: float = INTERVAL) -> None:
        query = urlencode({"jobid": jobid, "interval": interval})
        self.page.goto(f"{service.url}/progress/show?{query}")

    def wait_until(self, predicate, what: str, timeout: float = WAIT_MS):
        """Poll a Python-side condition while the page keeps running; return its value."""
        deadline = time.monotonic() + timeout / 1000
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout / 1000:g} s waiting for {what}")
            self.page.wait_for_timeout(100)

    def text(self, element_id: str) -> str:
        return self.page.eval_on_selector(f"#{element_id}", "el => el.textContent")

    def wait_text(self, element_id: str, expected: str, timeout: float = WAIT_MS) -> None:
        """Wait until the element's text is `expected`; fail with what it showed instead."""
        try:
            self.page.wait_for_function(
                "([id, want]) => document.getElementById(id)?.textContent === want",
                arg=[element_id, expected],
                timeout=timeout,
            )
        except Exception as exc:
            raise AssertionError(
                f"#{element_id} shows {self.text(element_id)!r}, not {expected!r}"
            ) from exc

    def wait_chart(self, timeout: float = WAIT_MS) -> str:
        """Wait for a decoded chart on screen; return its ETag."""
        self.page.wait_for_function(CHART_SHOWN, timeout=timeout)
        return self.page.eval_on_selector("#chart", "img => img.dataset.etag")

    def wait_new_chart(self, old_etag: str, timeout: float = WAIT_MS) -> str:
        self.page.wait_for_function(
            f"etag => ({CHART_SHOWN})() && document.getElementById('chart').dataset.etag !== etag",
            arg=old_etag,
            timeout=timeout,
        )
        return self.page.eval_on_selector("#chart", "img => img.dataset.etag")

    def problem_rows(self) -> list[dict]:
        """The failed and stale workers listed beside the chart, opened if folded."""
        if not self.page.eval_on_selector("#problems", "d => d.open"):
            self.page.click("#problems summary")
        return self.page.evaluate(PROBLEM_ROWS)

    def fits_width(self) -> bool:
        """Nothing sticks out sideways: the page never needs horizontal scrolling."""
        return self.page.evaluate(
            "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
        )

    def watch_chart_swaps(self) -> None:
        """Record every change of the chart element: a swap that shows a not yet decoded (blank
        or broken) image counts as a flicker. Read the counts with chart_swaps()."""
        self.page.evaluate(WATCH_SWAPS)

    def chart_swaps(self) -> dict:
        return self.page.evaluate("() => ({...window.__chartSwaps})")

    def chart_pixels(self, colour: str, tolerance: int = 6) -> int:
        """How many pixels of the chart on screen have the renderer's colour for `colour`."""
        return self.page.evaluate(COUNT_PIXELS, [list(rgb(colour)), tolerance])


CHART_SHOWN = """() => {
  const img = document.getElementById("chart");
  return !!img && img.complete && img.naturalWidth > 0;
}"""

# Reads back the pixels of the image the page shows (a same-origin blob: URL, so the canvas is
# not tainted) and counts those within `tol` of the colour on every channel.
COUNT_PIXELS = """([rgb, tol]) => {
  const img = document.getElementById("chart");
  if (!img.complete || !img.naturalWidth) return 0;  // not loaded yet
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const g = canvas.getContext("2d", {willReadFrequently: true});
  g.drawImage(img, 0, 0);
  const d = g.getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - rgb[0]) <= tol && Math.abs(d[i + 1] - rgb[1]) <= tol &&
        Math.abs(d[i + 2] - rgb[2]) <= tol) n++;
  }
  return n;
}"""

WATCH_SWAPS = """() => {
  const seen = window.__chartSwaps = {swaps: 0, flickers: 0};
  let current = document.getElementById("chart");
  new MutationObserver(() => {
    const img = document.getElementById("chart");
    if (!img || !img.complete || img.naturalWidth === 0) seen.flickers++;
    if (img !== current) { seen.swaps++; current = img; }
  }).observe(document.getElementById("chart-box"),
             {childList: true, subtree: true, attributes: true, attributeFilter: ["src"]});
}"""

PROBLEM_ROWS = """() => [...document.querySelectorAll("#problems-body tr")].map(tr => {
  const text = (cls) => tr.querySelector("." + cls)?.textContent ?? null;
  return {workid: text("w-id"), desc: text("w-desc"), state: text("w-state"), pct: text("w-pct")};
})"""


def create(service, jobid: str, **params) -> dict:
    resp = service.get("create", jobid=jobid, **params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def update(service, jobid: str, workid: str, current: float, total: float, **params) -> None:
    resp = service.get("update", jobid=jobid, workid=workid, current=current, total=total, **params)
    assert resp.status_code == 202, resp.text


def wait_for_workers(service, jobid: str, count: int) -> dict:
    """Wait until the service has applied updates from `count` workers; return the status."""

    def status():
        doc = service.get("status", jobid=jobid, workers="none").json()
        return doc if doc.get("workers_reported") == count else None

    return wait_until(status, 60, what=f"{count} workers in the job's status")

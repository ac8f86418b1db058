"""The show page's lifetimes view in a real browser against the real service: the tab beside the
chart, the histogram from /progress/render?view=lifetimes, the median and the slowest workers,
and the running worker flagged as running longer than any finished one (also on the tab's
badge, in either view)."""

from __future__ import annotations

import time
from urllib.parse import urlencode

import pytest

from tests.browser.support import INTERVAL, create, rgb, update, wait_for_workers

LIFETIMES_TABLE = """(id) => [...document.querySelectorAll("#" + id + " tr")].map(
  tr => [...tr.querySelectorAll("td")].map(td => td.textContent))"""


def lifetimes_chart_pixels(tab, colour: str) -> int:
    """Pixels of a status colour in the lifetimes chart on screen (read through a canvas)."""
    return tab.page.evaluate(
        """([r, g, b]) => {
          const img = document.getElementById("lifetimes-chart");
          if (!img.naturalWidth) return 0;
          const c = document.createElement("canvas");
          c.width = img.naturalWidth; c.height = img.naturalHeight;
          const g2 = c.getContext("2d"); g2.drawImage(img, 0, 0);
          const d = g2.getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) {
            if (Math.abs(d[i] - r) + Math.abs(d[i + 1] - g) + Math.abs(d[i + 2] - b) < 6) n++;
          }
          return n;
        }""",
        list(rgb(colour)),
    )


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_lifetimes_view_shows_the_histogram_the_slowest_and_flags_the_straggler(
    live_service, tab, jobid, viewport
):
    create(live_service, jobid, desc="Imaging run")
    update(live_service, jobid, "straggler", 0, 10)  # first to start, never done
    for w in ("w1", "w2", "w3"):
        update(live_service, jobid, w, 1, 10)
    for w in ("w1", "w2", "w3"):  # they finish one after another; w2 fails
        time.sleep(0.3)
        update(live_service, jobid, w, 10, 10, ok=int(w != "w2"))
    wait_for_workers(live_service, jobid, 4)
    query = urlencode({"jobid": jobid, "interval": INTERVAL})
    tab.page.goto(f"{live_service.url}/progress/show?{query}#lifetimes")

    tab.wait_text("overstaying-count", "1")
    assert tab.page.is_hidden("#chart-box") and tab.page.is_visible("#lifetimes")
    assert tab.page.get_attribute("#view-lifetimes", "aria-selected") == "true"
    assert tab.text("lifetimes-summary").startswith("3 finished workers \u00b7 median ")
    slowest = tab.page.evaluate(LIFETIMES_TABLE, "slowest-body")
    assert [row[0] for row in slowest] == ["w3", "w2", "w1"]  # the last to finish took longest
    [flagged] = tab.page.evaluate(LIFETIMES_TABLE, "overstaying-body")
    assert flagged[0] == "\u26a0 straggler"
    assert "running longer than any finished worker" in tab.text("overstaying").lower()
    assert tab.text("overstaying-badge") == "\u26a0 1"
    tab.page.wait_for_function(
        "() => document.getElementById('lifetimes-chart').naturalWidth === 1000"
    )
    assert lifetimes_chart_pixels(tab, "done") > 500 and lifetimes_chart_pixels(tab, "failed") > 0
    assert tab.fits_width()
    flagged_shot = tab.screenshot_path.with_name(tab.screenshot_path.stem + "-flagged.png")
    tab.page.screenshot(path=str(flagged_shot), full_page=True)  # what a person sees

    # The progress tab brings the bars back; the badge still says one worker overstays.
    tab.page.click("#view-chart")
    tab.wait_chart()
    assert tab.page.is_hidden("#lifetimes") and "#lifetimes" not in tab.page.url
    assert tab.page.is_visible("#overstaying-badge")

    # The straggler finishes: nothing is flagged any more, and it is the slowest.
    update(live_service, jobid, "straggler", 10, 10)
    tab.wait_until(lambda: not tab.page.is_visible("#overstaying-badge"), "the badge to go")
    tab.page.click("#view-lifetimes")
    tab.wait_until(
        lambda: tab.page.evaluate(LIFETIMES_TABLE, "slowest-body")[0][0] == "straggler",
        "the straggler among the slowest",
    )
    assert tab.page.is_hidden("#overstaying")
    assert tab.text("lifetimes-summary").startswith("4 finished workers")

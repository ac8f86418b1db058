"""The pages under their own Content-Security-Policy, in a real browser: everything they do is
allowed (no violation, no console error), inline script is refused, and the colours and the
percent wording come from the one Python source."""

from __future__ import annotations

import pytest

from domain.formatting import percent_label
from domain.model import STATE_COLOURS
from tests.browser.support import create, update, wait_for_workers

# Installed before any script of the page runs: every CSP violation the page reports.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline"));
});
"""


@pytest.fixture
def watched(tab):
    """The tab, recording console errors, failed requests and CSP violations."""
    seen = {"console": [], "failed": []}
    not_modified = []  # Chromium reports a fetch answered 304 as aborted: that is no failure

    def response(r):
        if r.status == 304:
            not_modified.append(r.request)
        elif r.status >= 400:
            seen["failed"].append(f"{r.url} {r.status}")

    def failed(request):
        if not any(request is r for r in not_modified):
            seen["failed"].append(f"{request.url} {request.failure}")

    tab.page.on("console", lambda m: m.type == "error" and seen["console"].append(m.text))
    tab.page.on("response", response)
    tab.page.on("requestfailed", failed)
    tab.page.add_init_script(RECORD_VIOLATIONS)
    tab.seen = seen
    return tab


def problems(tab) -> dict:
    return {
        "violations": tab.page.evaluate("() => window.__violations"),
        "console": tab.seen["console"],
        "failed": tab.seen["failed"],
    }


NONE = {"violations": [], "console": [], "failed": []}


def test_show_page_runs_under_its_policy_with_no_violation_or_error(live_service, watched, jobid):
    tab = watched
    create(live_service, jobid, desc="Under CSP")
    update(live_service, jobid, "good", 3, 4)
    update(live_service, jobid, "bad", 1, 4, ok=0, desc="broken")
    wait_for_workers(live_service, jobid, 2)
    responses = []
    tab.page.on("response", lambda r: "/progress/show?" in r.url and responses.append(r))
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_chart()  # fetched with fetch(), shown from a blob: URL
    tab.wait_text("count-failed", "1")
    tab.wait_until(lambda: tab.chart_pixels("failed") > 500, "the red bar")
    assert tab.problem_rows()[0]["workid"] == "bad"
    tab.page.wait_for_function(  # the tab's icon: a canvas drawn into a data: URL
        "() => document.getElementById('icon').href.startsWith('data:image/png')"
    )
    tab.page.wait_for_timeout(2500)  # a few refreshes: 304s, the clock, catch-up checks
    policy = responses[0].headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert problems(tab) == NONE

    # The colours of the tiles are the chart's, from domain.model.STATE_COLOURS.
    colours = tab.page.evaluate(
        """() => Object.fromEntries(["running", "done", "failed", "stale"].map(
             (s) => [s, getComputedStyle(document.documentElement)
                          .getPropertyValue("--" + s).trim()]))"""
    )
    assert colours == {state.value: colour for state, colour in STATE_COLOURS.items()}

    # The page's percent wording is domain.formatting.percent_label's.
    values = [0, 0.04, 12.345, 50, 99.94, 99.95, 99.999, 100, 250, 1234.4, 98765.6]
    shown = tab.page.evaluate("(vs) => vs.map((v) => fmtPct(v) + ' %')", values)
    assert shown == [percent_label(v) for v in values]

    # The policy holds: a script slipped into the page is refused, and reported.
    ran = tab.page.evaluate(
        """() => {
             const s = document.createElement("script");
             s.textContent = "window.__inlineRan = true";
             document.body.append(s);
             return window.__inlineRan === true;
           }"""
    )
    assert not ran
    tab.page.wait_for_function("() => window.__violations.length > 0")
    assert tab.page.evaluate("() => window.__violations") == ["script-src-elem blocked inline"]


def test_overview_runs_under_its_policy_with_no_violation_or_error(live_service, watched, jobid):
    tab = watched
    create(live_service, jobid, desc="Listed under CSP")
    update(live_service, jobid, "w", 1, 4)
    wait_for_workers(live_service, jobid, 1)
    tab.page.goto(f"{live_service.url}/progress/?limit=5")
    row = tab.page.locator("table.jobs tbody tr", has_text=jobid)
    assert row.locator("time").get_attribute("title").endswith("UTC")  # the script ran
    # The small bar is as wide as the percent, set by the script (no style attribute).
    width = row.locator(".mini i").evaluate(
        "(i) => i.getBoundingClientRect().width / i.parentElement.getBoundingClientRect().width"
    )
    assert width == pytest.approx(0.25, abs=0.02)
    assert problems(tab) == NONE

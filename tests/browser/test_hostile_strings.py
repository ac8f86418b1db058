"""Hostile job ids, worker ids and descriptions are shown as text and never run, on the show
page and on the overview, in a real browser."""

from __future__ import annotations

import uuid

from tests.browser.support import create, update, wait_for_workers

# Each payload would open a dialog if any page put it into markup or script unescaped.
JOBID_BAIT = "<img src=x onerror=alert('jobid')>\"'</script><script>alert(\"jobid\")</script>&amp;"
DESC = "</title><script>alert('desc')</script><svg onload=alert('svg')>${alert(1)} {{7*7}} &lt;"
WORKID = "<img src=x onerror=alert('workid')>"
WORKER_DESC = "\"><iframe src=javascript:alert('worker-desc')></iframe><b onmouseover=alert(2)>"

# What a payload would leave behind if it became markup: scripts (the show page has two of its
# own, config and code; the overview one), images (the show page's own, by id: its chart and its
# lifetimes histogram), event handler attributes, SVG or frames.
INJECTED = """() => ({
  scripts: document.scripts.length,
  images: [...document.images].map(img => img.id),
  handlers: [...document.querySelectorAll("*")]
    .filter(el => [...el.attributes].some(a => a.name.startsWith("on"))).length,
  frames: document.querySelectorAll("svg, iframe, object, embed").length,
})"""


def test_hostile_strings_show_as_text_and_never_run(live_service, tab):
    jobid = f"{JOBID_BAIT} {uuid.uuid4().hex[:8]}"
    create(live_service, jobid, desc=DESC)
    update(live_service, jobid, WORKID, 1, 2, ok=0, desc=WORKER_DESC)
    wait_for_workers(live_service, jobid, 1)

    tab.open_show(live_service, jobid)
    tab.wait_chart()
    tab.wait_text("title", DESC)
    tab.wait_text("count-failed", "1")
    assert tab.text("jobid") == jobid
    assert DESC in tab.page.title()
    assert tab.problem_rows() == [
        {"workid": WORKID, "desc": WORKER_DESC, "state": "failed", "pct": "50.0 %"}
    ]
    tab.page.hover("#problems-body")
    assert tab.page.evaluate(INJECTED) == {
        "scripts": 2,
        "images": ["chart", "lifetimes-chart"],
        "handlers": 0,
        "frames": 0,
    }
    tab.page.wait_for_timeout(1500)  # a few refreshes, for anything that runs late
    assert tab.dialogs == []

    tab.page.goto(f"{live_service.url}/progress/?limit=5")
    row = tab.page.locator("table.jobs tbody tr", has_text=jobid)
    assert row.locator("td.job a").text_content() == DESC
    assert row.locator("td.job code").text_content() == jobid
    assert tab.page.evaluate(INJECTED) == {"scripts": 1, "images": [], "handlers": 0, "frames": 0}
    row.locator("td.job a").click()
    tab.wait_text("jobid", jobid)  # the link leads to this very job
    tab.wait_chart()
    assert tab.dialogs == []

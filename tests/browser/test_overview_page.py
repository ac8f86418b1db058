"""The recent-jobs overview, /progress/, in a real browser against the real service."""

from __future__ import annotations

import uuid

import pytest

from tests.browser.support import create, update, wait_for_workers

ROWS = "table.jobs tbody tr"


def row_texts(tab) -> list[dict]:
    return tab.page.evaluate(
        """(sel) => [...document.querySelectorAll(sel)].map(tr => ({
             link: tr.querySelector("td.job a").textContent,
             href: tr.querySelector("td.job a").getAttribute("href"),
             cells: [...tr.querySelectorAll("td.n")].map(td => td.textContent.trim()),
           }))""",
        ROWS,
    )


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_overview_lists_newest_first_pages_and_links(live_service, tab, viewport):
    tag = uuid.uuid4().hex[:8]
    jobs = {name: f"test:overview-{name}-{tag}" for name in "abc"}
    descs = {name: f"Overview {name.upper()} {tag}" for name in "abc"}
    shows = {}
    for name in "abc":  # created in this order: c is the newest
        shows[name] = create(live_service, jobs[name], desc=descs[name])["show"]
    update(live_service, jobs["b"], "ok", 3, 4)
    update(live_service, jobs["b"], "broken", 1, 4, ok=0)
    wait_for_workers(live_service, jobs["b"], 2)

    tab.page.goto(f"{live_service.url}/progress/?limit=2")
    rows = row_texts(tab)
    assert [r["link"] for r in rows] == [descs["c"], descs["b"]]
    assert rows[1]["href"] == shows["b"]
    # workers, done, failed, stale
    assert rows[1]["cells"][0].startswith("2")
    assert rows[1]["cells"][1].startswith("50.0 %")
    assert rows[1]["cells"][2].startswith("1") and rows[1]["cells"][3].startswith("0")
    assert tab.page.locator("nav.pager").first.locator("a[rel=prev]").count() == 0
    assert tab.fits_width()

    tab.page.locator("nav.pager").first.locator("a[rel=next]").click()
    tab.page.wait_for_url("**/progress/?offset=2&limit=2")
    assert row_texts(tab)[0]["link"] == descs["a"]

    tab.page.locator("nav.pager").first.locator("a[rel=prev]").click()
    tab.page.wait_for_url("**/progress/?offset=0&limit=2")
    assert row_texts(tab)[0]["link"] == descs["c"]

    tab.page.get_by_role("link", name=descs["b"]).click()
    tab.page.wait_for_url(shows["b"].replace(live_service.url, "**"))
    tab.wait_text("title", descs["b"])
    tab.wait_chart()
    tab.wait_text("count-failed", "1")
    tab.page.go_back()
    tab.page.wait_for_selector(ROWS)

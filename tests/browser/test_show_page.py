"""The live view of one job, /progress/show, in a real browser against the real service."""

from __future__ import annotations

import re
import time

import pytest
import requests

from tests.browser.support import WAIT_MS, create, update, wait_for_workers
from tests.conftest import FAST
from tests.harness import Service


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_chart_and_summary_load_at_once(live_service, tab, jobid, viewport):
    create(live_service, jobid, desc="Calibrating obs 1234567890")
    update(live_service, jobid, "node1", 3, 4, desc="flagging")
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=3600)  # the first view waits for no refresh
    tab.wait_chart()
    tab.wait_text("count-running", "1")
    assert tab.text("title") == "Calibrating obs 1234567890"
    assert tab.text("jobid") == jobid
    assert tab.text("percent") == "75.0"
    assert tab.text("workers-total") == "1 worker"
    assert [tab.text(f"count-{s}") for s in ("done", "failed", "stale")] == ["0", "0", "0"]
    assert re.fullmatch(r"just now|\d.* ago", tab.text("last-update"))
    assert "5 s" in tab.text("eta-note")  # too little history for an estimate: it says why
    assert tab.text("eta") == "\u2013"
    # The picture catches up with the text within seconds, not only at the next refresh.
    tab.wait_until(lambda: tab.chart_pixels("running") > 1000, "the worker's bar in the chart")
    assert tab.fits_width()


def test_page_follows_updates_without_flicker_and_unchanged_chart_costs_304(
    live_service, tab, jobid
):
    create(live_service, jobid, desc="Live")
    update(live_service, jobid, "w1", 1, 10)
    wait_for_workers(live_service, jobid, 1)
    renders: list[int] = []
    tab.page.on("response", lambda r: "/progress/render" in r.url and renders.append(r.status))
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_text("percent", "10.0")
    tab.wait_until(lambda: tab.chart_pixels("running") > 100, "the worker's bar in the chart")
    first = tab.page.eval_on_selector("#chart", "img => img.dataset.etag")
    tab.watch_chart_swaps()
    renders.clear()

    # Nothing changes: each refresh asks with If-None-Match and gets an empty 304.
    tab.wait_until(lambda: renders.count(304) >= 3, "refreshes answered 304")
    assert tab.page.eval_on_selector("#chart", "img => img.dataset.etag") == first

    update(live_service, jobid, "w1", 6, 10)
    update(live_service, jobid, "w2", 10, 10)
    tab.wait_text("percent", "80.0")  # the mean of 60 % and 100 %
    tab.wait_text("count-done", "1")
    tab.wait_new_chart(first)
    tab.wait_until(lambda: tab.chart_pixels("done") > 1000, "the finished worker in the chart")
    swaps = tab.chart_swaps()
    assert swaps["swaps"] >= 1 and swaps["flickers"] == 0, swaps


def test_eta_is_shown_only_with_enough_history(live_service, tab, jobid):
    created = create(live_service, jobid, desc="ETA")
    update(live_service, jobid, "w", 1, 100)
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_text("percent", "1.0")
    assert tab.text("eta") == "\u2013"
    assert "Not enough data" in tab.text("eta-note")

    # The estimate needs progress reported at least 5 s after the job was created.
    time.sleep(max(0.0, created["created"] + 5.5 - time.time()))
    update(live_service, jobid, "w", 50, 100)
    tab.wait_text("percent", "50.0")
    tab.page.wait_for_function(
        "() => /^(about \\d|any moment)/.test(document.getElementById('eta').textContent)",
        timeout=WAIT_MS,
    )
    assert "average rate" in tab.text("eta-note")
    tab.page.screenshot(path=str(tab.screenshot_path.with_suffix(".estimate.png")))

    update(live_service, jobid, "w", 100, 100)
    tab.wait_text("eta", "finished")


def test_failed_worker_is_red(live_service, tab, jobid):
    create(live_service, jobid, desc="Failures")
    update(live_service, jobid, "good", 70, 100)
    update(live_service, jobid, "bad", 40, 100, desc="reduction")
    wait_for_workers(live_service, jobid, 2)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_text("percent", "55.0")
    tab.wait_until(lambda: tab.chart_pixels("running") > 2000, "two green bars")
    assert tab.chart_pixels("failed") < 50

    update(live_service, jobid, "bad", 40, 100, ok=0, desc="disk full")
    tab.wait_text("count-failed", "1")
    assert "alert" in tab.page.get_attribute("#tile-failed", "class")
    assert "1 failed" in tab.page.title()
    # The failed bar, 40 % of the plot wide, is drawn in the renderer's red.
    tab.wait_until(lambda: tab.chart_pixels("failed") > 1000, "a red bar in the chart")
    rows = tab.problem_rows()
    assert rows == [{"workid": "bad", "desc": "disk full", "state": "failed", "pct": "40.0 %"}]
    tab.page.locator("#chart").screenshot(path=str(tab.screenshot_path.with_suffix(".chart.png")))


@pytest.fixture(scope="module")
def quickly_stale_service(redis_server, tmp_path_factory):
    """A second service on its own Redis database, where a worker silent for 2 s is stale."""
    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    env = {**FAST, "PROGRESS_STALE_AFTER": "2"}
    service = Service(url, tmp_path_factory.mktemp("stale-service"), env).start()
    yield service
    service.stop()


def test_stale_worker_is_drawn_and_counted_as_stale(quickly_stale_service, tab, jobid):
    service = quickly_stale_service
    create(service, jobid, desc="Silent worker")
    update(service, jobid, "finished", 10, 10)
    update(service, jobid, "silent", 5, 10, desc="then nothing")
    tab.open_show(service, jobid, interval=1)
    tab.wait_chart()
    tab.wait_text("count-stale", "1")
    tab.wait_text("count-done", "1")
    assert tab.text("count-running") == "0"
    assert "alert" in tab.page.get_attribute("#tile-stale", "class")
    # The silent worker's half bar is grey, and no longer green.
    tab.wait_until(
        lambda: tab.chart_pixels("stale") > 1000 and tab.chart_pixels("running") < 100,
        "the silent worker's bar drawn grey",
    )
    rows = tab.problem_rows()
    assert rows == [{"workid": "silent", "desc": "then nothing", "state": "stale", "pct": "50.0 %"}]


def test_expired_job_says_so_instead_of_a_broken_image(live_service, tab, jobid):
    create(live_service, jobid, desc="Short-lived", maxage=6)
    update(live_service, jobid, "w", 1, 2)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_chart()
    tab.page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS + 15_000)
    assert "no longer exists" in tab.text("notice-text")
    assert "expired" in tab.text("notice-text")
    assert tab.page.is_visible("#stamp")
    assert tab.page.title().startswith("Gone")
    # The last chart stays, greyed out; no image on the page is broken.
    assert tab.page.evaluate(
        "() => [...document.images].every(i => !i.getAttribute('src') || i.naturalWidth > 0)"
    )
    assert live_service.get("render", jobid=jobid).status_code == 404


def test_recreated_job_says_so_and_shows_the_new_job(live_service, tab, jobid):
    create(live_service, jobid, desc="First run")
    update(live_service, jobid, "w", 1, 2)
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=1)
    first = tab.wait_chart()
    tab.wait_text("title", "First run")

    create(live_service, jobid, desc="Second run")
    tab.wait_text("title", "Second run")
    tab.page.wait_for_selector("#notice:not([hidden])")
    assert "re-created" in tab.text("notice-text")
    assert tab.text("workers-total") == "no workers yet"
    tab.wait_new_chart(first)


def test_unreachable_service_is_reported_and_the_page_recovers(live_service, tab, jobid):
    create(live_service, jobid, desc="Outage")
    update(live_service, jobid, "w", 1, 2)
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_chart()
    tab.wait_text("percent", "50.0")

    # As if the server were restarting: every request of the page fails.
    api = re.compile(r"/progress/(status|render)\?")
    tab.page.route(api, lambda route: route.abort())
    tab.page.wait_for_function(
        "() => document.getElementById('conn').textContent.includes('cannot be reached')"
    )
    tab.page.screenshot(path=str(tab.screenshot_path.with_suffix(".outage.png")))
    tab.wait_chart()  # the last chart and numbers stay on screen meanwhile
    assert tab.text("percent") == "50.0"

    tab.page.unroute(api)
    update(live_service, jobid, "w", 2, 2)
    tab.wait_text("percent", "100.0")
    tab.wait_text("conn", "")
    tab.wait_until(lambda: tab.chart_pixels("done") > 1000, "the finished bar")


BIG = 5000


@pytest.fixture(scope="module")
def big_job(live_service):
    """A job of 5,000 workers: every 1,000th failed, a fifth done, the rest running; sent as
    batched updates (a POST of a JSON array), 500 at a time."""
    jobid = f"test:big-{time.time_ns()}"
    create(live_service, jobid, desc="Five thousand workers")
    updates = [
        {
            "jobid": jobid,
            "workid": f"node{i:04d}",
            "current": 100 if i % 5 == 0 else i % 97,
            "total": 100,
            "ok": i % 1000 != 999,
        }
        for i in range(BIG)
    ]
    for start in range(0, BIG, 500):
        resp = requests.post(
            f"{live_service.url}/progress/update", json=updates[start : start + 500], timeout=30
        )
        assert resp.status_code == 202, resp.text
    wait_for_workers(live_service, jobid, BIG)
    return jobid


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_five_thousand_workers_stay_readable(live_service, big_job, tab, viewport):
    tab.open_show(live_service, big_job, interval=30)
    tab.wait_chart()
    tab.wait_text("workers-total", "5,000 workers")
    assert tab.text("count-done") == "1,000"
    assert tab.text("count-failed") == "5"
    assert tab.page.eval_on_selector("#chart", "img => img.naturalHeight") < 1400
    # The summary is a handful of numbers, not a row per worker; only problems get a row.
    assert tab.page.locator("#problems-body tr").count() == 5
    assert tab.page.evaluate("() => document.getElementsByTagName('*').length") < 300
    assert tab.fits_width()
    if viewport == "phone":  # scaled down to the screen; one tap shows it at full size
        tab.page.click("#zoom")
        assert tab.page.eval_on_selector("#chart", "i => i.clientWidth === i.naturalWidth")
        assert tab.fits_width()  # the chart scrolls sideways, not the page
        tab.page.click("#zoom")


def test_a_job_expecting_workers_says_how_many_are_silent_and_notices_its_deletion(
    live_service, tab, jobid
):
    create(live_service, jobid, desc="64 ranks, in small", workers=4)
    update(live_service, jobid, "rank0", 2, 4)
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_text("workers-total", "3 of 4 workers have not reported yet")
    assert tab.text("percent") == "12.5"  # 50 % of one worker, 0 % of three
    assert tab.text("eta-note") == "No estimate while 3 workers have not reported yet."

    for rank in range(1, 5):
        update(live_service, jobid, f"rank{rank}", 4, 4)
    tab.wait_text("workers-total", "5 workers reported, 4 expected")
    assert tab.text("percent") == "90.0"

    assert live_service.get("delete", jobid=jobid).status_code == 200
    tab.page.wait_for_selector("#notice:not([hidden])", timeout=WAIT_MS)
    assert "It was deleted" in tab.text("notice-text")
    assert tab.page.title().startswith("Gone")

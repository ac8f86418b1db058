"""A job failed as a whole (/progress/fail) in a real browser: the show page says so at the top
in red, naming who and why, and the chart it shows carries the red banner too."""

from __future__ import annotations

import pytest

from tests.browser.support import COUNT_PIXELS, create, update, wait_for_workers

BANNER_RED = [0xB7, 0x1C, 0x1C]  # renderer.chart._FAILED_TEXT, the chart banner's background


def banner_pixels(tab) -> int:
    return tab.page.evaluate(COUNT_PIXELS, [BANNER_RED, 6])


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_a_failed_job_says_so_at_the_top_in_red(live_service, tab, jobid, viewport):
    create(live_service, jobid, desc="watchbot map")
    update(live_service, jobid, "16", 1, 1)
    wait_for_workers(live_service, jobid, 1)
    tab.open_show(live_service, jobid, interval=1)
    tab.wait_text("percent", "100.0")
    tab.wait_chart()
    assert tab.page.is_hidden("#job-failed")
    assert banner_pixels(tab) < 100

    resp = live_service.get("fail", jobid=jobid, workid="17", desc="ValueError: bad input")
    assert resp.status_code == 200, resp.text
    tab.page.wait_for_selector("#job-failed", state="visible")
    text = tab.text("job-failed")
    assert "Job failed" in text and "by worker 17" in text and "ValueError: bad input" in text
    # At the top: above the job's title, across the page, in red with white text.
    banner = tab.page.locator("#job-failed").bounding_box()
    title = tab.page.locator("#title").bounding_box()
    assert banner["y"] + banner["height"] <= title["y"]
    assert banner["width"] >= 0.8 * tab.page.viewport_size["width"] - 40
    colours = tab.page.eval_on_selector(
        "#job-failed", "el => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )
    assert colours == ["rgb(183, 28, 28)", "rgb(255, 255, 255)"]
    # The chart is drawn again with the banner: a 1000 x 25 px red band.
    tab.wait_until(lambda: banner_pixels(tab) > 15_000, "the red banner in the chart")
    assert tab.page.is_visible("#job-failed")  # still there on the next polls

"""ARP's batch script, ported by the name of one variable, posts its counters to the live service
(PROGRESS_UPDATE_URL, as Job.env and `progress run` hand it to a worker); its page, in a real
browser, shows them coloured as ARP's report column did, and the chart prints them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from progress_client import Job

from tests.browser.support import COUNT_PIXELS, create

ARP_SCRIPT = Path(__file__).with_name("arp_submit.py")
RED = "rgb(255, 0, 0)"

WORKER_COUNTERS = """() => [...document.querySelectorAll("#workers-body tr")].map(tr => ({
  workid: tr.querySelector(".w-id").textContent,
  state: tr.querySelector(".w-state").textContent,
  counters: [...tr.querySelectorAll(".counter")].map(c => ({
    name: c.querySelector(".c-name").textContent,
    value: c.querySelector(".c-value").textContent,
    colour: getComputedStyle(c.querySelector(".c-value")).color,
  })),
}))"""


def test_the_arp_example_script_shows_its_coloured_counters(live_service, tab, jobid):
    create(live_service, jobid, desc="ARP batch: xppi0915 run 134261")
    job = Job(live_service.url, jobid)
    env = {**os.environ, **job.env("lsf-450")}
    script = subprocess.run(
        [sys.executable, str(ARP_SCRIPT), "xppi0915", "134261", "param1", "param2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert script.returncode == 0, script.stderr
    assert job.update_url("lsf-450") in script.stdout  # it printed the URL it was handed
    last_char = re.findall(r"Step: 10, ([A-Z])", script.stdout)[0]

    tab.open_show(live_service, jobid)
    rows = tab.wait_until(
        lambda: (
            (r := tab.page.evaluate(WORKER_COUNTERS)) and r[0]["counters"][0]["value"] == "10" and r
        ),
        "the worker's counters in the page's table",
    )
    # A worker that posts counters alone is running, with its counters, the coloured one red.
    (row,) = rows
    assert (row["workid"], row["state"]) == ("lsf-450", "running")
    example, char = row["counters"]
    assert example == {"name": "Example Counter", "value": "10", "colour": RED}
    assert (char["name"], char["value"]) == ("Random Char", last_char)
    assert char["colour"] != RED  # no colour of its own: the table's text colour
    assert tab.text("count-running") == "1"
    # The chart prints them beside the bar, the counter's value in its own red.
    tab.wait_chart()
    tab.wait_until(
        lambda: tab.page.evaluate(COUNT_PIXELS, [[255, 0, 0], 40]) > 3,
        "the red counter value in the chart",
    )

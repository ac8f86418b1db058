"""Bidirectional controls in a job's id or description cannot make a page's title or heading
read as something else: left out of the labels (the title isolated, FSI ... PDI), kept exact in
the values (the id's <code>, isolated by the stylesheet). The server's pages in this process;
the script's title with node, on a status document the app answered."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from api.pages import ASSETS

ROOT = Path(__file__).resolve().parent.parent
# Each of Unicode's explicit directional controls and marks.
CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
FSI, PDI = "\u2068", "\u2069"


def spoofing(name: str) -> str:
    """A name that shows as '...exe.png' in a bare title, with every control once after it."""
    return f"report \u202egnp.exe {name} " + CONTROLS


def shown(text: str) -> str:
    return re.sub(f"[{CONTROLS}]", "", text)


def created(client, jobid: str, desc: str = "") -> None:
    assert (
        client.simulate_get("/progress/create", params={"jobid": jobid, "desc": desc}).status
        == "200 OK"
    )


def between(html: str, start: str, end: str) -> str:
    return html.split(start, 1)[1].split(end, 1)[0]


@pytest.mark.parametrize("in_desc", [True, False], ids=["desc", "jobid"])
def test_the_show_page_isolates_its_title_and_keeps_the_id_exact(client, in_desc):
    jobid = spoofing(uuid.uuid4().hex[:8])
    desc = spoofing("desc") if in_desc else ""
    created(client, jobid, desc)
    html = client.simulate_get("/progress/show", params={"jobid": jobid}).text
    name = desc or jobid
    assert between(html, "<title>", "</title>") == f"Progress: {FSI}{shown(name)}{PDI}"
    assert between(html, '<meta property="og:title" content="', '"') == shown(name)  # alone
    assert between(html, '<h1 id="title">', "</h1>") == shown(name)
    assert between(html, '<code id="jobid">', "</code>") == jobid  # the value, exactly


def test_the_overview_links_by_label_and_shows_the_id_exactly(client):
    jobid = spoofing(uuid.uuid4().hex[:8])
    created(client, jobid, spoofing("desc"))
    html = client.simulate_get("/progress/", params={"limit": 1}).text
    row = between(html, '<td class="job"', "</td>")
    assert f">{shown(spoofing('desc'))}</a>" in row
    assert f"<code>{jobid}</code>" in row


def test_the_stylesheet_isolates_ids_shown_exactly():
    css = ASSETS["progress.css"].body.decode()
    assert re.search(r"code, \.jobs \.job a \{ unicode-bidi: isolate; \}", css)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
@pytest.mark.parametrize("in_desc", [True, False], ids=["desc", "jobid"])
def test_the_script_isolates_the_title_it_sets(client, in_desc):
    jobid = spoofing(uuid.uuid4().hex[:8])
    desc = spoofing("desc") if in_desc else ""
    created(client, jobid, desc)
    status = client.simulate_get("/progress/status", params={"jobid": jobid}).json
    run = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "js" / "render_title.js"),
            str(ROOT / "api/static/progress.js"),
        ],
        input=json.dumps(status),
        capture_output=True,
        text=True,
        check=True,
    )
    page = json.loads(run.stdout)
    name = desc or jobid
    assert page["title"] == f"waiting \u00b7 {FSI}{shown(name)}{PDI}"
    assert page["heading"] == shown(name)

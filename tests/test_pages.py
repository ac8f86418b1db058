"""The HTML pages as files: templates that leave no inline script or style, the static CSS and
JS they load, the security headers that forbid anything else, and a package that ships them.
In-process, against the session's Redis; the browser tests see the same pages run."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import uuid
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pytest

from api.pages import content_security_policy
from tests.harness import ROOT

PAGE_URL = "http://progress.test/progress/"


class Page(HTMLParser):
    """What of a page a browser would run or style: scripts, stylesheets, inline attributes."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.scripts: list[dict] = []
        self.stylesheets: list[str] = []
        self.inline: list[tuple[str, str]] = []  # (tag, attribute) of style= or on...=
        self.style_blocks = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "style":
            self.style_blocks += 1
        if tag == "link" and attrs.get("rel") == "stylesheet":
            self.stylesheets.append(attrs["href"])
        self.inline += [(tag, a) for a in attrs if a == "style" or a.startswith("on")]


@pytest.fixture(scope="module")
def job(client) -> str:
    jobid = f"test:pages-{uuid.uuid4().hex[:12]}"
    resp = client.simulate_get("/progress/create", params={"jobid": jobid, "desc": "Pages"})
    assert resp.status_code == 200, resp.text
    return jobid


@pytest.fixture(params=["show", "overview"])
def page(request, client, job):
    """Each HTML page, as served."""
    if request.param == "show":
        resp = client.simulate_get("/progress/show", params={"jobid": job})
    else:
        resp = client.simulate_get("/progress/", params={"limit": "5"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    return resp


def test_every_page_carries_the_security_headers(page):
    assert page.headers["Content-Security-Policy"] == content_security_policy(
        "http://progress.test"
    )
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_the_policy_forbids_inline_script_and_style():
    policy = dict(
        (d.split()[0], d.split()[1:])
        for d in content_security_policy("https://p.example/x").split("; ")
    )
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["connect-src"] == ["'self'", "https://p.example"]  # the public URL's origin
    assert "'unsafe-inline'" not in content_security_policy("")


@pytest.mark.parametrize("path", ["/progress/status", "/progress/jobs", "/healthz"])
def test_every_response_forbids_sniffing_and_sends_no_referrer(client, job, path):
    resp = client.simulate_get(path, params={"jobid": job})
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert "Content-Security-Policy" not in resp.headers  # a policy for pages, not for JSON


def test_pages_hold_no_inline_script_or_style(page):
    markup = Page(page.text)
    assert markup.inline == [] and markup.style_blocks == 0
    for script in markup.scripts:  # code only from a file; data only as JSON
        assert script.get("src") or script.get("type") == "application/json", script
    assert [s["src"].split("?")[0] for s in markup.scripts if "src" in s] == ["static/progress.js"]
    assert [href.split("?")[0] for href in markup.stylesheets] == ["static/progress.css"]


def test_the_static_files_a_page_names_are_served_cached_by_version(client, page):
    markup = Page(page.text)
    for url in [s["src"] for s in markup.scripts if "src" in s] + markup.stylesheets:
        path = urljoin(PAGE_URL, url).removeprefix("http://progress.test")
        name = path.split("?")[0].rsplit("/", 1)[1]
        body = (ROOT / "api" / "static" / name).read_bytes()
        assert path.endswith("?v=" + hashlib.sha256(body).hexdigest()[:16])  # busts caches

        resp = client.simulate_get(path.split("?")[0], query_string=path.split("?")[1])
        assert resp.status_code == 200
        assert resp.content == body
        assert resp.headers["Content-Type"].startswith(
            "text/css" if name.endswith(".css") else "text/javascript"
        )
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "immutable" in resp.headers["Cache-Control"]

        again = client.simulate_get(
            path.split("?")[0], headers={"If-None-Match": resp.headers["ETag"]}
        )
        assert again.status_code == 304
        unversioned = client.simulate_get(path.split("?")[0], query_string="v=old")
        assert unversioned.headers["Cache-Control"] == "no-cache"  # an old URL is revalidated


@pytest.mark.parametrize("name", ["nothing.js", "..%2Fpages.py", "base.html", ""])
def test_only_the_static_files_are_served(client, name):
    assert client.simulate_get(f"/progress/static/{name}").status_code == 404


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_the_script_parses():
    subprocess.run(["node", "--check", str(ROOT / "api" / "static" / "progress.js")], check=True)


@pytest.mark.slow  # a wheel built in an isolated environment: about 15 s
def test_an_installed_wheel_ships_and_serves_the_pages(tmp_path):
    """The service may be installed from a wheel, not run from this tree: the wheel must hold
    the templates and static files, and the pages must find them in the installed package."""
    # Built from a copy: a build in this tree would read the file list of an earlier one
    # (*.egg-info/SOURCES.txt) and pass without the package-data that a fresh clone needs.
    source = tmp_path / "source"
    for package in ("api", "domain", "renderer", "tasks"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", source)
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        pip + ["wheel", "--no-deps", "--wheel-dir", str(tmp_path), str(source)], check=True
    )
    [wheel] = tmp_path.glob("*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    wanted = {
        p.relative_to(ROOT).as_posix()
        for folder in ("templates", "static")
        for p in (ROOT / "api" / folder).iterdir()
        if p.is_file()
    }
    assert wanted and wanted <= shipped, wanted - shipped

    site = tmp_path / "site"
    subprocess.run(pip + ["install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    probe = (
        "from api import pages\n"
        "urls = {n: '/progress/' + n for n in ('show', 'render', 'status')}\n"
        "assert 'static/progress.js?v=' in pages.show_page('x', '', 5, urls)\n"
        "assert 'static/progress.css?v=' in pages.overview_page("
        "{'jobs': [], 'total': 0, 'limit': 5, 'offset': 0})\n"
        "assert set(pages.ASSETS) == {'progress.css', 'progress.js'}\n"
        "print(pages.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(out.strip()).is_relative_to(site)  # the installed copy, not this checkout


class Outline(HTMLParser):
    """What a reader without scripts gets of a page (a text browser, a link preview): the text
    of <title> and <h1>, the images, the meta tags inside <noscript>, and every meta tag."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self.images: list[dict] = []
        self.noscript_meta: list[dict] = []
        self.meta: list[dict] = []
        self._open: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "meta":
            self.meta.append(attrs)
            if "noscript" in self._open:
                self.noscript_meta.append(attrs)
        else:
            self._open.append(tag)

    def handle_endtag(self, tag):
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data):
        if self._open and self._open[-1] in ("title", "h1"):
            self.texts[self._open[-1]] = self.texts.get(self._open[-1], "") + data


@pytest.mark.parametrize(("interval", "refresh"), [("30", "30"), ("2.5", "3"), ("1", "1")])
def test_the_show_page_without_scripts_names_the_job_shows_its_chart_and_reloads(
    client, interval, refresh
):
    jobid = f"test:noscript-{uuid.uuid4().hex[:12]}"
    desc = 'Calibrating <obs> & "1234"'  # escaped in the HTML, read back as text
    client.simulate_get("/progress/create", params={"jobid": jobid, "desc": desc})
    resp = client.simulate_get("/progress/show", params={"jobid": jobid, "interval": interval})
    page = Outline(resp.text)
    assert desc in page.texts["title"]
    assert page.texts["h1"] == desc
    render = resp.text.split('"render": "', 1)[1].split('"', 1)[0]  # from the config block
    assert {"src": render, "alt": "Progress chart"} in page.images
    assert client.simulate_get(render.removeprefix("http://progress.test")).status_code == 200
    assert page.noscript_meta == [{"http-equiv": "refresh", "content": refresh}]
    assert {"property": "og:title", "content": desc} in page.meta


def test_the_show_page_of_a_job_without_description_is_titled_by_its_id(client):
    jobid = f"test:noscript-{uuid.uuid4().hex[:12]}"
    client.simulate_get("/progress/create", params={"jobid": jobid})
    page = Outline(client.simulate_get("/progress/show", params={"jobid": jobid}).text)
    assert page.texts["h1"] == jobid and jobid in page.texts["title"]

"""Browser fixtures: Playwright driving the system's Chromium, and a screenshot of every test
saved under artifacts/browser/ (git-ignored). Without a browser the tests are skipped, saying
why; with PROGRESS_REQUIRE_BROWSER=1 (CI) a missing browser fails them instead."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.browser.support import ARTIFACTS, VIEWPORTS, WAIT_MS, Tab

LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """The browser to drive: $PROGRESS_CHROMIUM if set, else Debian's chromium."""
    if os.environ.get("PROGRESS_CHROMIUM"):
        candidates = [os.environ["PROGRESS_CHROMIUM"]]
    else:
        candidates = ["/usr/bin/chromium"]
        candidates += [shutil.which(name) for name in ("chromium", "chromium-browser")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _unavailable(reason: str):
    if os.environ.get("PROGRESS_REQUIRE_BROWSER", "") not in ("", "0"):
        pytest.fail(f"browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session", autouse=True)  # first, so a missing browser skips at once
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package 'playwright' is not installed")
    path = chromium_path()
    if path is None:
        _unavailable(
            "no Chromium browser found (apt-get install chromium, or set PROGRESS_CHROMIUM "
            "to its path)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def viewport() -> str:
    """Overridden by tests that run at several sizes (parametrize 'viewport')."""
    return "desktop"


@pytest.fixture
def tab(browser, request, viewport):
    """A fresh browser tab. Afterwards its screenshot is saved, and any alert/confirm/prompt
    dialog or uncaught script error it saw fails the test."""
    context = browser.new_context(**VIEWPORTS[viewport])
    context.set_default_timeout(WAIT_MS)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    if viewport not in name:
        name += f"-{viewport}"
    tab = Tab(context.new_page(), ARTIFACTS / f"{name}.png")
    try:
        yield tab
    finally:
        try:
            tab.screenshot()
        finally:
            context.close()
    assert tab.dialogs == [], f"the page opened dialogs: {tab.dialogs}"
    assert tab.errors == [], f"the page's script failed: {tab.errors}"

"""Playwright driving a real browser against a real server.

The browser: Debian's chromium (/usr/bin/chromium) when installed, else Playwright's own
(``python -m playwright install chromium``) when installed, else the browser tests skip,
saying so. ``AUTODL_REQUIRE_BROWSER=1`` (set by CI, test-only, not a setting) turns that
skip into a failure, so that CI never passes without having run them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.conftest import _importable_tests, live_server, serving, settings  # noqa: F401 - fixtures

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(os.environ.get("AUTODL_TEST_SHOTS", "/tmp/autodl-shots"))  # test-only, not a setting
SIZES = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}
REQUIRE = "AUTODL_REQUIRE_BROWSER"


def _unavailable(why: str):
    reason = (
        f"no browser for the browser tests: {why}. Install Debian's chromium "
        f"(apt-get install chromium) or Playwright's (python -m playwright install chromium)"
    )
    if os.environ.get(REQUIRE, "") not in ("", "0"):
        pytest.fail(f"{reason}; {REQUIRE} is set, so this fails instead of skipping", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """A headless chromium for the session (session-scoped: set up before any live server)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (it is in the test extra)")
    with sync_playwright() as p:
        debian = Path(CHROMIUM).is_file()
        try:
            if debian:
                b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            else:  # Playwright's own build, where `playwright install` put it
                b = p.chromium.launch(headless=True, args=ARGS)
        except Error as e:
            first = str(e).strip().splitlines()[0]
            if not debian and "doesn't exist" in first:
                _unavailable(f"neither {CHROMIUM} nor Playwright's chromium is installed")
            _unavailable(f"{CHROMIUM if debian else 'Playwright chromium'} did not start ({first})")
        yield b
        b.close()


def wait_finished(page, timeout: float = 60_000) -> None:
    """Wait for the job page to show the run finished, and for the reload that then brings
    the model panel (predict.js reloads a page that saw the run going: the reloaded page
    has no #predict-later), so that nothing later reads a page while it navigates."""
    page.wait_for_selector("#state-pill.finished", timeout=timeout)
    page.wait_for_selector("#predict-later", state="detached", timeout=30_000)
    page.wait_for_load_state()
    page.wait_for_selector("#state-pill.finished", timeout=30_000)


@pytest.fixture
def shoot():
    """shoot(page, name): full-page screenshots at laptop and phone sizes into SHOTS."""
    SHOTS.mkdir(parents=True, exist_ok=True)

    def _shoot(page, name: str) -> None:
        original = page.viewport_size
        for size, viewport in SIZES.items():
            page.set_viewport_size(viewport)
            page.wait_for_timeout(250)  # charts redraw on resize
            page.screenshot(path=str(SHOTS / f"{name}-{size}.png"), full_page=True)
        page.set_viewport_size(original)

    return _shoot


@pytest.fixture
def server(settings, tmp_path):  # noqa: F811 - the fixture imported above
    """A live server on the steady test engine (a module that needs another overrides it)."""
    with serving(
        settings, tmp_path, engine="tests.service.engines:steady", max_time_budget=60
    ) as server:
        yield server

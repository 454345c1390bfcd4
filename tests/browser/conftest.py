"""Playwright driving Debian's chromium (never a downloaded browser) against a real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.service.conftest import _importable_tests, live_server, settings  # noqa: F401 - fixtures

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


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


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

"""Every page at 1366x768 and 390x844: screenshots, nothing cut or wider than the screen,
and what the pages say agrees with itself (issue 13, point 5)."""

from __future__ import annotations

import httpx
import pytest

from autodl.scoring import score_arrays
from autodl.scoring.report import html_report
from tests.browser.conftest import SHOTS, SIZES, wait_finished
from tests.service.conftest import bearer, wait_for

pytestmark = pytest.mark.browser

#: Elements whose content is hidden past their right edge (a scroll box that scrolls).
CUT = """() => {
  const out = [];
  for (const el of document.querySelectorAll("main pre, main .table-wrap")) {
    if (el.scrollWidth > el.clientWidth + 1) out.push(el.className + ": " + el.textContent.trim().slice(0, 60));
  }
  return out;
}"""
WIDE = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def look(page, name: str, *, cut_ok: bool = False) -> None:
    """Screenshot at both sizes into SHOTS; the page never scrolls sideways, and at the
    laptop size no code block or table hides its end behind a scroll bar."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.wait_for_timeout(200)  # charts redraw on resize
        page.screenshot(path=str(SHOTS / f"layout-{name}-{size}.png"), full_page=True)
        assert page.evaluate(WIDE) <= 0, f"{name} at {size}: the page is wider than the screen"
        if size == "laptop" and not cut_ok:
            assert page.evaluate(CUT) == [], f"{name} at {size}: content cut on the right"
    page.set_viewport_size(SIZES["laptop"])


def sign_in(browser, url: str, name: str, password: str):
    page = browser.new_context(viewport=SIZES["laptop"]).new_page()
    page.goto(url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/jobs")
    return page


def main_width(page) -> float:
    return page.evaluate("() => document.querySelector('main').getBoundingClientRect().width")


@pytest.mark.slow
def test_every_page_at_both_sizes(server, browser, tmp_path):
    for name, admin in (("alice", False), ("root", True)):
        args = ["user", "create", name, *(["--admin"] if admin else [])]
        assert server.cli(*args, input="password123\n").returncode == 0
    anon = browser.new_context(viewport=SIZES["laptop"]).new_page()
    for slug in ("", "login", "signup", "privacy", "help", "help/format", "help/score"):
        anon.goto(f"{server.url}/{slug}")
        look(anon, slug.replace("/", "-") or "home")
    for slug in ("help/predictions", "help/api"):  # the endpoints table and the curl lines
        anon.goto(f"{server.url}/{slug}")
        look(anon, slug.replace("/", "-"))

    page = sign_in(browser, server.url, "alice", "password123")
    look(page, "jobs-empty")
    empty_width = main_width(page)
    page.goto(server.url + "/jobs/new")
    look(page, "new-job")

    # The account page: the user's name; a new token is shown once after a redirect.
    page.goto(server.url + "/account")
    assert "Signed in as alice" in page.locator("#account-name").inner_text()
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create token')")
    page.wait_for_load_state()
    assert page.url == server.url + "/account"  # not /account/tokens (POST-redirect-GET)
    token = page.locator("#new-token").inner_text()
    assert token.startswith("adl_")
    look(page, "account-new-token")
    page.reload()  # no re-submission: the same single token, and its secret is gone
    assert page.locator("#new-token").count() == 0
    assert page.locator("button:has-text('Revoke')").count() == 1
    look(page, "account")
    response = page.goto(server.url + "/account/tokens")
    assert response.status == 200 and page.url == server.url + "/account"

    # Two jobs: the first runs 10 s, the second waits behind it (one worker).
    sample = httpx.get(server.url + "/samples/digits.zip", timeout=60).content
    for budget in (10, 3):
        r = httpx.post(
            server.url + "/api/v1/jobs",
            headers=bearer(token),
            files={"file": ("digits.zip", sample, "application/zip")},
            data={"time_budget": str(budget)},
            timeout=60,
        )
        assert r.status_code == 201, r.text
    page.goto(server.url + "/jobs/2")
    assert page.locator("#state-pill").inner_text() == "Queued"
    look(page, "job-queued")
    page.goto(server.url + "/jobs/1")
    page.wait_for_selector("#curve svg circle", timeout=30_000)
    samples = []
    while page.locator("#state-pill").inner_text() == "Running":
        samples.append(
            page.evaluate(
                """() => ({
                  tile: document.getElementById("m-n").textContent,
                  line: document.getElementById("run-text").textContent,
                  dots: document.querySelectorAll("#curve svg circle").length,
                  alc: document.getElementById("m-alc").textContent,
                  note: !document.getElementById("m-alc-note").hidden,
                  state: document.getElementById("state-pill").textContent})"""
            )
        )
        if len(samples) == 3:
            look(page, "job-running")
        page.wait_for_timeout(700)
    running = [s for s in samples if s["state"] == "Running" and s["alc"] != "–"]
    assert len(running) >= 3, samples
    for s in running:  # one count everywhere; the ALC says it is provisional
        n = int(s["tile"])
        assert s["dots"] == n and f" {n} prediction" in s["line"], s
        assert s["note"], s
    wait_finished(page, 60_000)
    assert page.locator("#m-alc-note").is_hidden()
    look(page, "job-finished")
    page.goto(server.url + "/jobs")
    wait_for(lambda: page.reload() or "Finished" in page.locator("tbody tr").first.inner_text())
    look(page, "jobs")
    assert abs(main_width(page) - empty_width) < 1  # the page keeps its width
    page.goto(server.url + "/compare?ids=1&ids=2")
    look(page, "compare")
    page.goto(server.url + "/api/v1/jobs/1/download/report.html")
    look(page, "report", cut_ok=True)
    page.goto(server.url + "/jobs/999")
    look(page, "not-found")

    admin = sign_in(browser, server.url, "root", "password123")
    admin.goto(server.url + "/admin")
    boxes = [b.bounding_box() for b in admin.locator(".page-head .button").all()]
    assert len(boxes) == 2 and abs(boxes[0]["y"] - boxes[1]["y"]) < 1, boxes
    gap = boxes[1]["x"] - (boxes[0]["x"] + boxes[0]["width"])
    assert 0 < gap < 20, f"the admin buttons stand {gap} px apart"  # side by side, together
    look(admin, "admin")
    admin.goto(server.url + "/admin/workers")
    look(admin, "workers")
    admin.goto(server.url + "/jobs?all=1")
    look(admin, "jobs-everyone")


def test_report_budget_bar_is_not_red_for_a_run_within_its_budget(browser, tmp_path):
    import numpy as np

    solution = np.eye(4)[[0, 1, 2, 3] * 5]
    result = score_arrays(solution, [solution * 0.9], [5.0], time_budget=60)
    page = browser.new_page()
    colours = {}
    for used in (59.0, 60.4):  # the engine stopped at the end: a normal run
        path = html_report(result, tmp_path / f"{used}.html", budget_used=used)
        page.goto(path.as_uri())
        colours[used] = page.evaluate(
            "() => getComputedStyle(document.querySelector('.bar.big > span')).backgroundColor"
        )
    red = "rgb(185, 28, 28)"
    assert red not in colours.values(), colours
    page.close()

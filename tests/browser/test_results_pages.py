"""The examples a run gets most wrong and the leaderboard of a dataset, in a real browser
at laptop and phone widths (issue 17, points 4 and 5): screenshots into SHOTS."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import SHOTS, SIZES
from tests.browser.test_pages_layout import look, sign_in
from tests.service.conftest import bearer, wait_for

pytestmark = pytest.mark.browser

CUT_TABLE = """() => { const w = document.querySelector("#leaderboard").closest(".table-wrap");
  return w.scrollWidth - w.clientWidth; }"""
LOADED = """() => [...document.querySelectorAll(".mistake img")].map(i => i.complete && i.naturalWidth)"""


@pytest.mark.slow
def test_examples_and_leaderboard_pages_at_both_sizes(server, browser):
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        args = ["user", "create", name, *(["--admin"] if admin else [])]
        assert server.cli(*args, input="password123\n").returncode == 0
    tokens = {n: server.cli("token", "create", n).stdout.strip() for n in ("alice", "bob")}
    sample = httpx.get(server.url + "/samples/digits.zip", timeout=60).content
    ids = []
    for owner, budget in (("alice", 3), ("alice", 5), ("bob", 3)):
        r = httpx.post(
            server.url + "/api/v1/jobs",
            headers=bearer(tokens[owner]),
            files={"file": ("digits.zip", sample, "application/zip")},
            data={"time_budget": str(budget)},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])

    def finished(job_id, owner):
        url = f"{server.url}/api/v1/jobs/{job_id}"
        return httpx.get(url, headers=bearer(tokens[owner])).json()["state"] == "finished"

    for job_id, owner in zip(ids, ("alice", "alice", "bob"), strict=True):
        wait_for(lambda j=job_id, o=owner: finished(j, o), timeout=120, interval=0.5)

    page = sign_in(browser, server.url, "alice", "password123")
    page.goto(f"{server.url}/jobs/{ids[1]}")
    page.wait_for_selector("#mistakes .mistake img")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.mistake img')].every(i => i.complete)"
    )
    widths = page.evaluate(LOADED)
    assert widths and all(w == 128 for w in widths), widths  # served from the stored PNGs
    captions = page.locator("#mistakes figcaption").all_inner_texts()
    probs = [float(c.split("p = ")[1].split(" ")[0]) for c in captions]
    assert probs == sorted(probs, reverse=True)  # most confident mistakes first
    look(page, "results-job-examples")
    page.locator("#mistakes").screenshot(path=str(SHOTS / "results-examples-laptop.png"))
    page.set_viewport_size(SIZES["phone"])
    page.locator("#mistakes").screenshot(path=str(SHOTS / "results-examples-phone.png"))
    page.set_viewport_size(SIZES["laptop"])

    page.click("#leaderboard-link")
    page.wait_for_selector("#compare-chart svg path")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.count() == 2  # alice's two runs; bob's is not hers
    assert page.locator("#leaderboard tbody tr.this-run").get_attribute("data-id") == str(ids[1])
    look(page, "results-leaderboard")
    assert _cut_on_a_phone(page) <= 1  # every column fits: the budget goes under the name

    admin = sign_in(browser, server.url, "root", "password123")
    admin.goto(f"{server.url}/jobs/{ids[1]}/leaderboard")
    admin.wait_for_selector("#compare-chart svg path")
    assert admin.locator("#leaderboard tbody tr").count() == 3
    look(admin, "results-leaderboard-admin")
    assert _cut_on_a_phone(admin) <= 1

    page.goto(f"{server.url}/api/v1/jobs/{ids[1]}/download/report.html")
    section = page.locator("section:has(.mistakes)")
    assert section.locator("img").count() == len(widths)
    look(page, "results-report", cut_ok=True)
    section.screenshot(path=str(SHOTS / "results-report-examples-laptop.png"))
    page.set_viewport_size(SIZES["phone"])
    section.screenshot(path=str(SHOTS / "results-report-examples-phone.png"))


def _cut_on_a_phone(page) -> float:
    """How many pixels of the leaderboard hide past its right edge on a phone."""
    page.set_viewport_size(SIZES["phone"])
    page.wait_for_timeout(200)
    cut = page.evaluate(CUT_TABLE)
    page.set_viewport_size(SIZES["laptop"])
    return cut

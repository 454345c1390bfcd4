"""A finished job's page shows where the run fails: confusion matrix, sortable per-class
table, ROC and PR curves with a class picker; at laptop and phone widths (issue 17)."""

from __future__ import annotations

import httpx
import pytest

from autodl.formats.archive import zip_folder
from autodl.settings import DEFAULT_ENGINE
from tests.browser.conftest import SHOTS, SIZES, wait_finished
from tests.browser.test_pages_layout import WIDE, sign_in
from tests.conftest import DATASETS
from tests.service.conftest import bearer, serving

pytestmark = pytest.mark.browser


@pytest.fixture
def server(settings, tmp_path):
    with serving(settings, tmp_path, engine=DEFAULT_ENGINE, max_time_budget=60) as server:
        yield server


def _submit(server, token: str, name: str, content: bytes) -> int:
    r = httpx.post(
        server.url + "/api/v1/jobs",
        headers=bearer(token),
        files={"file": (name, content, "application/zip")},
        data={"time_budget": "8"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        page.wait_for_timeout(200)
        assert page.evaluate(WIDE) <= 0, f"{name} at {size}: the page is wider than the screen"
        for part in ("diag-confusion", "diag-classes", "diag-curves"):
            page.locator(f"#{part}").screenshot(path=str(SHOTS / f"{name}-{part}-{size}.png"))
    page.set_viewport_size(SIZES["laptop"])


def _table(page) -> list[list[str]]:
    return page.evaluate(
        """() => [...document.querySelectorAll('#class-table tbody tr')]
             .map(tr => [...tr.children].map(td => td.textContent))"""
    )


@pytest.mark.slow
def test_finished_job_page_shows_where_the_run_fails(server, browser, tmp_path):
    assert server.cli("user", "create", "ann", input="password123\n").returncode == 0
    page = sign_in(browser, server.url, "ann", "password123")
    page.goto(server.url + "/account")
    page.fill("input[name=name]", "laptop")
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").inner_text()

    digits = httpx.get(server.url + "/samples/digits.zip", timeout=60).content
    job = _submit(server, token, "digits.zip", digits)
    page.goto(f"{server.url}/jobs/{job}")
    wait_finished(page, 120_000)
    page.wait_for_selector("#diag-classes:not([hidden])", timeout=30_000)
    api = httpx.get(
        f"{server.url}/api/v1/jobs/{job}/diagnostics", headers=bearer(token), timeout=30
    ).json()
    labels = api["label_names"] or [f"class {i}" for i in range(len(api["per_class"]))]

    # The matrix: label names on both axes, the stored counts, row shares on demand.
    rows = page.locator("table.matrix th.row").all_inner_texts()
    cols = page.locator("table.matrix th.col:not(.total)").all_inner_texts()
    assert rows == labels and cols == labels
    cells = page.evaluate(
        """() => [...document.querySelectorAll('table.matrix tbody tr')]
             .map(tr => [...tr.querySelectorAll('td:not(.total)')].map(td => td.textContent))"""
    )
    assert cells == [[f"{c:,}" for c in row] for row in api["confusion_matrix"]]
    page.click("#diag-mode button[data-mode=row]")
    first = page.locator("table.matrix tbody tr").first.locator("td").first.inner_text()
    assert first.endswith("%")
    # On a phone the matrix scrolls sideways in its box; its note stays whole beside it.
    page.set_viewport_size(SIZES["phone"])
    note = page.locator("#diag-matrix .matrix-note")
    assert "sums to 100%" in note.inner_text()
    box = note.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= SIZES["phone"]["width"], box
    page.set_viewport_size(SIZES["laptop"])

    # The per-class table holds the stored figures, and sorts.
    table = _table(page)
    assert [r[1] for r in table] == labels
    assert [r[4] for r in table] == [
        "–" if r["recall"] is None else f"{r['recall']:.3f}" for r in api["per_class"]
    ]
    page.click("#class-table th[data-key=recall] button")
    assert page.locator("#class-table th[data-key=recall]").get_attribute("aria-sort") == (
        "descending"
    )
    recalls = [float(r[4]) for r in _table(page) if r[4] != "–"]
    assert recalls == sorted(recalls, reverse=True)

    # The curves: the macro average first, then any class from the picker.
    assert page.locator("#curve-head b").inner_text() == "Macro average"
    assert page.locator("#roc-chart polyline.main").count() == 1
    pick = api["curves"]["classes"][3]
    page.select_option("#curve-class", str(pick["index"]))
    assert page.locator("#curve-head b").inner_text() == pick["label"]
    assert page.locator("#pr-chart polyline.ref").count() == 1  # the macro, for comparison
    _shoot(page, "diagnostics-multiclass")

    # A multi-label dataset: each label's 2x2 and the errors that come together.
    if not (DATASETS / "moviegenres").is_dir():
        pytest.skip(f"the multi-label sample is not at {DATASETS} (only in the project's CI)")
    movies = zip_folder(DATASETS / "moviegenres", tmp_path / "moviegenres.zip").read_bytes()
    job = _submit(server, token, "moviegenres.zip", movies)
    page.goto(f"{server.url}/jobs/{job}")
    wait_finished(page, 120_000)
    page.wait_for_selector("#diag-classes:not([hidden])", timeout=30_000)
    assert page.locator("#diag-confusion-title").inner_text() == "Confusion per label"
    assert page.locator("table.matrix th.row").count() == 7
    assert "at least 0.5" in page.locator("#class-note").inner_text()
    _shoot(page, "diagnostics-multilabel")

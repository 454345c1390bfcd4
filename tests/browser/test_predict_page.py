"""The job page's "Download model" and "Predict on new data", clicked in a real browser
against a live server running the real engine (which saves the model)."""

from __future__ import annotations

import csv
import zipfile
from contextlib import contextmanager

import pytest

from autodl.formats.archive import zip_folder
from autodl.formats.samples import make_tabular
from tests.browser.conftest import SHOTS
from tests.service.conftest import serving

pytestmark = pytest.mark.browser


@pytest.fixture
def server(settings, tmp_path):
    from autodl.engine.protocol import DEFAULT_ENGINE

    with serving(settings, tmp_path, engine=DEFAULT_ENGINE, predict_budget=120) as server:
        yield server


@contextmanager
def _dumped_on_failure(page):
    """The page as it stands (HTML and a screenshot in SHOTS) when a wait fails."""
    try:
        yield
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "predict-failure.html").write_text(page.content())
        page.screenshot(path=str(SHOTS / "predict-failure.png"), full_page=True)
        raise


@pytest.mark.slow
def test_download_the_model_and_predict_on_new_data(server, browser, tmp_path):
    data = zip_folder(
        make_tabular(tmp_path / "d", n_train=40, n_test=20), tmp_path / "tinytabular.zip"
    )
    ctx = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.goto(server.url + "/signup")
    page.fill("input[name=name]", "alice")
    page.fill("input[name=password]", "correct horse")
    page.fill("input[name=password2]", "correct horse")
    page.click("button:has-text('Create account')")
    page.wait_for_url("**/jobs")
    page.goto(server.url + "/jobs/new")
    page.set_input_files("#file", str(data))
    page.fill("#time_budget", "5")
    page.click("#submit")
    page.wait_for_url("**/jobs/1", timeout=60_000)
    # The panel appears once the run has ended (the page reloads itself then).
    page.wait_for_selector("#download-model", timeout=180_000)
    assert page.locator("#state-pill").inner_text() == "Finished"

    with page.expect_download() as info:
        page.click("#download-model")
    model_zip = tmp_path / "model.zip"
    info.value.save_as(model_zip)
    with zipfile.ZipFile(model_zip) as zf:
        assert "model/model.json" in zf.namelist()

    # Wrong data first: the refusal is shown beside the form, nothing is queued.
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as zf:
        zf.writestr("new.csv", "colour,size\nred,1\nblue,2\n")
    page.set_input_files("#predict-file", str(wrong))
    page.click("#predict-button")
    with _dumped_on_failure(page):
        page.wait_for_selector(
            "#predict-error", timeout=240_000
        )  # the check loads the model (torch)
    assert "does not fit this model" in page.locator("#predict-error").inner_text()
    assert page.locator("#prediction-jobs").count() == 0

    page.set_input_files("#predict-file", str(data))
    page.click("#predict-button")
    with _dumped_on_failure(page):
        page.wait_for_url("**/jobs/1?done=predicting*", timeout=240_000)
    assert page.locator("#prediction-jobs tbody tr").count() == 1
    # predict.js reloads the page when the prediction ends: its CSV link shows.
    link = page.wait_for_selector("a.prediction-download", timeout=150_000)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#predict").screenshot(path=str(SHOTS / "predict-panel.png"))
    page.screenshot(path=str(SHOTS / "predict-job-page.png"), full_page=True)
    with page.expect_download() as info:
        link.click()
    out = tmp_path / "predictions.csv"
    info.value.save_as(out)
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][0] == "id" and rows[0][-1] == "top_class" and len(rows) > 1
    assert page.locator("#prediction-jobs .pill.finished").count() == 1
    assert not errors, errors
    ctx.close()

"""The learning-curve PNG and the self-contained HTML report."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from autodl.scoring import score, score_arrays
from autodl.scoring.report import compare_curves_png, html_report, learning_curve_png
from tests.conftest import REFERENCE_SCORING
from tests.scoring._folders import one_hot


@pytest.fixture
def result():
    rng = np.random.default_rng(2)
    solution = one_hot(rng.integers(0, 3, 80), 4)
    predictions = [rng.random((80, 4)) + solution * w for w in (0.1, 0.5, 1.0, 3.0)]
    return score_arrays(
        solution,
        predictions,
        [0.5, 14.0, 120.0, 400.0],
        300,
        label_names=["clear", "rain", "snow", "hail <b>"],
        task="weather",
    )


def test_learning_curve_png_is_a_valid_image(result, tmp_path):
    path = learning_curve_png(result, tmp_path / "curve.png", title="Learning curve")
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 700)
        assert np.unique(np.asarray(image.convert("L"))).size > 10  # something is drawn
    assert b"http" not in path.read_bytes()


def test_compare_curves_png(result, tmp_path):
    other = score_arrays(
        one_hot(np.array([0, 1, 1, 0]), 2), [np.eye(2)[[0, 1, 1, 0]]], [100.0], 600
    )
    path = compare_curves_png([("run A", result), ("run B", other)], tmp_path / "compare.png")
    with Image.open(path) as image:
        assert image.size == (1000, 700)


def test_html_report_is_self_contained_and_complete(result, tmp_path):
    log = "loading <data> & starting\n" + "step\n" * 500
    path = html_report(
        result,
        tmp_path / "report.html",
        dataset={"name": "weather", "domain": "tabular", "test_records": 80},
        engine_log=log,
        budget_used=402.5,
        predictions_table=[
            {"index": i, "learner": f"model {i}", "valid_score": 0.5} for i in range(4)
        ],
    )
    page = path.read_text()
    assert "http://" not in page and "https://" not in page
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == [
        re.search(r'src="(data:image/png;base64,[^"]+)"', page)[1]
    ]
    assert f"{result.alc:.4f}" in page
    assert f"{result.nauc[2]:.4f}" in page  # final NAUC: prediction 3 is after the budget
    assert f"{result.final_accuracy:.4f}" in page
    assert "late &middot; not counted" in page and "after the time budget" in page
    assert "hail &lt;b&gt;" in page and "constant in the solution (no positive example)" in page
    assert "loading &lt;data&gt; &amp; starting" in page and "<data>" not in page
    assert "402.5 s" in page and "model 3" in page and "weather" in page


def test_html_report_of_a_failed_run(tmp_path):
    page = html_report(
        None, tmp_path / "r.html", error="Engine crashed: <boom>", time_budget=60
    ).read_text()
    assert "The run failed" in page and "Engine crashed: &lt;boom&gt;" in page
    assert "http" not in page


@pytest.mark.skipif(not REFERENCE_SCORING.is_dir(), reason="reference data absent")
@pytest.mark.parametrize(
    "case",
    [
        "multiclass-four-predictions",
        "multilabel-three-predictions",
        "binary-prediction-at-half-second",
    ],
)
def test_reference_figures(case, tmp_path):
    solution = next((REFERENCE_SCORING / case / "solution").glob("*.solution"))
    result = score(solution, REFERENCE_SCORING / case / "predictions")
    with Image.open(learning_curve_png(result, tmp_path / f"{case}.png")) as image:
        assert image.size == (1000, 700)
    page = html_report(result, tmp_path / f"{case}.html", budget_used=result.duration).read_text()
    assert f"{result.alc:.4f}" in page and f"{result.final_nauc:.4f}" in page

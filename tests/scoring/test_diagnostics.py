"""Confusion matrix, per-class table and curves against scikit-learn's figures.

On the reference-scoring cases (the official scorer's prediction folders), on the
sample datasets' solutions with seeded predictions, and on small arrays with ties.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from autodl.scoring import diagnostics as D
from autodl.scoring import score, score_arrays, write_scores
from autodl.scoring.metrics import read_array
from tests.conftest import DATASETS, REFERENCE_SCORING, needs_shared_data
from tests.scoring._folders import one_hot

TOL = 1e-12
REFERENCE_CASES = [
    "multiclass-four-predictions",
    "multilabel-three-predictions",
    "binary-prediction-at-half-second",
]
SAMPLES = ["handdigits", "cityweather", "emailspam", "moviegenres", "osuleaf"]


def _nan_to_none(values):
    return [None if np.isnan(v) else float(v) for v in values]


def check_against_sklearn(result, solution: np.ndarray, prediction: np.ndarray) -> None:
    """Every diagnostic of ``result`` (for ``prediction``) equals scikit-learn's."""
    n, c = solution.shape
    rows = result.per_class
    assert len(rows) == c
    if result.accuracy is not None:  # multi-class: argmax
        true, pred = solution.argmax(axis=1), prediction.argmax(axis=1)
        expected = skm.confusion_matrix(true, pred, labels=range(c))
        assert result.confusion_matrix == expected.tolist()
        p, r, f, s = skm.precision_recall_fscore_support(
            true, pred, labels=range(c), zero_division=np.nan
        )
        assert all(row["threshold"] is None for row in rows)
        assert result.label_confusion is None and result.error_cooccurrence is None
    else:  # multi-label: each column at the threshold
        decided = (prediction >= D.MULTILABEL_THRESHOLD).astype(int)
        p, r, f, s = skm.precision_recall_fscore_support(
            solution.astype(int), decided, zero_division=np.nan
        )
        assert result.confusion_matrix is None
        two_by_two = skm.multilabel_confusion_matrix(solution.astype(int), decided)
        assert [[[x["tn"], x["fp"]], [x["fn"], x["tp"]]] for x in result.label_confusion] == (
            two_by_two.tolist()
        )
        wrong = (solution.astype(int) != decided).astype(int)
        assert result.error_cooccurrence == (wrong.T @ wrong).tolist()
        assert all(row["threshold"] == D.MULTILABEL_THRESHOLD for row in rows)
    assert [row["support"] for row in rows] == s.tolist()
    for key, values in (("precision", p), ("recall", r), ("f1", f)):
        got, want = [row[key] for row in rows], _nan_to_none(values)
        assert [g is None for g in got] == [w is None for w in want], key
        assert [g for g in got if g is not None] == pytest.approx(
            [w for w in want if w is not None], abs=TOL, rel=0
        ), key
    curves = {row["index"]: row for row in result.curves["classes"]}
    for k in range(c):
        positives = solution[:, k].sum()
        if positives == 0 or positives == n:
            assert rows[k]["auc"] is None and k not in curves
            assert rows[k]["average_precision"] == (None if positives == 0 else 1.0)
            continue
        sk_auc = skm.roc_auc_score(solution[:, k], prediction[:, k])
        sk_ap = skm.average_precision_score(solution[:, k], prediction[:, k])
        assert rows[k]["auc"] == pytest.approx(sk_auc, abs=1e-12)
        assert rows[k]["average_precision"] == pytest.approx(sk_ap, abs=1e-12)
        _check_curve(curves[k], solution[:, k], prediction[:, k], result.curves["max_points"])


def _check_curve(stored: dict, truth: np.ndarray, scores: np.ndarray, max_points: int) -> None:
    fpr, tpr, _ = skm.roc_curve(truth, scores)
    precision, recall, _ = skm.precision_recall_curve(truth, scores)
    recall, precision = recall[::-1], precision[::-1]  # ours: from the highest threshold
    for ours, (x, y), (kx, ky) in (
        (stored["roc"], (fpr, tpr), ("fpr", "tpr")),
        (stored["pr"], (recall, precision), ("recall", "precision")),
    ):
        assert ours["points"] == x.size
        sx, sy = np.array(ours[kx]), np.array(ours[ky])
        assert sx.size <= max_points
        if x.size <= max_points:  # all of scikit-learn's points, in its order
            assert sx == pytest.approx(x, abs=1e-6) and sy == pytest.approx(y, abs=1e-6)
        else:  # a subset of them, ends kept, in order
            assert (sx[0], sy[0]) == pytest.approx((x[0], y[0]), abs=1e-6)
            assert (sx[-1], sy[-1]) == pytest.approx((x[-1], y[-1]), abs=1e-6)
            dist = np.hypot(sx[:, None] - x[None, :], sy[:, None] - y[None, :]).min(axis=1)
            assert dist.max() < 2e-6


@needs_shared_data
@pytest.mark.reference
@pytest.mark.parametrize("case", REFERENCE_CASES)
def test_reference_cases_equal_sklearn(case):
    folder = REFERENCE_SCORING / case
    solution_file = next((folder / "solution").glob("*.solution"))
    result = score(solution_file, folder / "predictions")
    solution = read_array(solution_file)
    last = sorted((folder / "predictions").glob("*.predict_*"))[result.diagnosed_prediction]
    check_against_sklearn(result, solution, read_array(last))


@needs_shared_data
@pytest.mark.parametrize("name", SAMPLES)
def test_sample_datasets_equal_sklearn(name):
    """Each sample's real solution, with seeded predictions: right about half the time,
    with ties (rounded scores) so that the tie handling is checked too."""
    solution = read_array(DATASETS / name / f"{name}.solution")
    rng = np.random.default_rng(17)
    prediction = np.round(rng.random(solution.shape) + 0.6 * solution, 2)
    result = score_arrays(solution, [prediction], [10.0], 60)
    check_against_sklearn(result, solution, prediction)


def test_small_arrays_with_ties_and_left_out_classes():
    rng = np.random.default_rng(3)
    solution = one_hot(rng.integers(0, 5, 300), 6)  # class 5 never occurs
    prediction = np.round(rng.random((300, 6)) + solution * 0.5, 1)  # many ties
    result = score_arrays(solution, [prediction], [1.0], 60)
    check_against_sklearn(result, solution, prediction)
    assert result.per_class[5]["support"] == 0 and result.per_class[5]["recall"] is None
    assert result.curves["left_out"] == [5]


def test_many_points_are_downsampled_on_the_curve():
    rng = np.random.default_rng(5)
    solution = one_hot(rng.integers(0, 3, 5000), 3)
    prediction = rng.random((5000, 3)) + solution * 0.3  # no ties: thousands of points
    result = score_arrays(solution, [prediction], [1.0], 60)
    assert result.curves["max_points"] == D.MAX_POINTS
    assert all(row["roc"]["points"] > D.MAX_POINTS for row in result.curves["classes"])
    check_against_sklearn(result, solution, prediction)


def test_macro_curves_average_the_classes():
    rng = np.random.default_rng(9)
    solution = one_hot(rng.integers(0, 4, 400), 4)
    prediction = rng.random((400, 4)) + solution * 0.4
    macro = score_arrays(solution, [prediction], [1.0], 60).curves["macro"]
    aucs = [skm.roc_auc_score(solution[:, k], prediction[:, k]) for k in range(4)]
    aps = [skm.average_precision_score(solution[:, k], prediction[:, k]) for k in range(4)]
    # Linear interpolation on a 201-point grid: close to the mean of the exact areas.
    assert macro["roc"]["auc"] == pytest.approx(np.mean(aucs), abs=5e-3)
    assert macro["pr"]["average_precision"] == pytest.approx(np.mean(aps), abs=1e-2)
    assert macro["roc"]["fpr"][0] == 0 and macro["roc"]["tpr"][-1] == 1


def test_top_confusions_beyond_the_matrix_size():
    c = 80
    rng = np.random.default_rng(1)
    true = rng.integers(0, c, 2000)
    solution = one_hot(true, c)
    prediction = solution * 0.5 + rng.random((2000, c)) * 0.6
    prediction[true == 7, 12] = 2.0  # class 7 is always taken for class 12
    result = score_arrays(solution, [prediction], [1.0], 60)
    top = result.top_confusions[0]
    assert (top["true"], top["predicted"]) == (7, 12)
    assert top["count"] == int((true == 7).sum()) and top["share"] == 1.0
    counts = [t["count"] for t in result.top_confusions]
    assert counts == sorted(counts, reverse=True) and len(counts) <= 25
    # Many classes share the curve budget: fewer points each, curves.json stays small.
    assert result.curves["max_points"] == D.points_per_class(c) <= D.MAX_POINTS


def test_written_files_hold_the_diagnostics(tmp_path):
    rng = np.random.default_rng(2)
    solution = one_hot(rng.integers(0, 3, 90), 3)
    late = rng.random((90, 3))
    counted = rng.random((90, 3)) + solution
    result = score_arrays(
        solution, [counted, late], [5.0, 99.0], 60, label_names=["a", "b", "c"], task="t"
    )
    assert result.late == [1] and result.diagnosed_prediction == 0  # the last counted one
    check_against_sklearn(result, solution, counted)
    paths = write_scores(result, tmp_path)
    assert [p.name for p in paths] == ["scores.txt", "scores.json", "curves.json"]
    data = json.loads((tmp_path / "scores.json").read_text())
    assert data["confusion_matrix"] == result.confusion_matrix
    assert list(data["per_class"][0]) == [
        "label",
        "support",
        "precision",
        "recall",
        "f1",
        "auc",
        "average_precision",
        "threshold",
    ]
    assert [row["label"] for row in data["per_class"]] == ["a", "b", "c"]
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert curves["task"] == "t" and [c["label"] for c in curves["classes"]] == ["a", "b", "c"]


def test_no_counted_prediction_has_no_diagnostics():
    solution = one_hot(np.array([0, 1, 0]), 2)
    result = score_arrays(solution, [solution * 0.9], [99.0], 60)
    data = result.to_json()
    assert data["per_class"] == [] and data["confusion_matrix"] is None
    assert result.curves is None


# ------------------------------------------------------------------ the report


def _report(tmp_path, result) -> str:
    """The report's page (without the learning-curve figure: Matplotlib is slow to start)."""
    from autodl.scoring._html import render_report

    none = dict.fromkeys(("figure_png", "dataset", "engine_log", "budget_used", "error"))
    none.update(predictions_table=None, time_budget=None, title=None)
    return render_report(result, **none)


def test_report_shows_matrix_table_and_curves(tmp_path):
    import re
    from html import unescape

    rng = np.random.default_rng(6)
    names = ["cat", "dog", "owl <b>", "yak"]
    true = rng.integers(0, 4, 120)
    solution = one_hot(true, 4)
    prediction = rng.random((120, 4)) + solution * 0.6
    result = score_arrays(solution, [prediction], [1.0], 60, label_names=names, task="pets")
    page = _report(tmp_path, result)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "owl &lt;b&gt;" in page and "owl <b>" not in page  # names are escaped
    matrix = page.split('<table class="matrix">', 1)[1].split("</table>", 1)[0]
    cells = [
        [
            int(unescape(re.sub(r"<[^>]+>", "", c)).replace(",", ""))
            for c in re.findall(r"<td[^>]*>(.*?)</td>", row)
        ]
        for row in re.findall(r"<tr><th class=\"row\".*?</tr>", matrix)
    ]
    expected = skm.confusion_matrix(true, prediction.argmax(axis=1)).tolist()
    assert [row[:-1] for row in cells] == expected  # (the last cell: the row's total)
    assert [row[-1] for row in cells] == [sum(r) for r in expected]
    table = page.split('id="per-class"', 1)[1].split("</table>", 1)[0]
    recall = skm.recall_score(true, prediction.argmax(axis=1), average=None)
    for value in recall:
        assert f'<td class="num">{value:.3f}</td>' in table
    # One picker entry per class plus the macro average; a panel each.
    assert page.count('class="pick"') == 5 and page.count('class="cpanel p-') == 5
    assert page.count("<svg") == 10


def test_report_of_many_classes_lists_pairs_and_caps_the_picker(tmp_path):
    from autodl.scoring._diagnostics_html import PICKER_MAX

    c = 70
    rng = np.random.default_rng(8)
    solution = one_hot(rng.integers(0, c, 3000), c)
    prediction = rng.random((3000, c)) + solution * 0.3
    page = _report(tmp_path, score_arrays(solution, [prediction], [1.0], 60))
    assert '<table class="matrix">' not in page and "Most confused" in page
    assert f"{c} classes: too many for a readable matrix" in page
    assert page.count('class="pick"') == PICKER_MAX + 1


def test_report_of_a_multilabel_run(tmp_path):
    rng = np.random.default_rng(4)
    solution = (rng.random((100, 3)) < 0.4).astype(float)
    prediction = np.clip(solution * 0.5 + rng.random((100, 3)) * 0.5, 0, 1)
    page = _report(tmp_path, score_arrays(solution, [prediction], [1.0], 60))
    assert "Confusion per label" in page and "Errors that come together" in page
    assert "at least 0.50" in page and "Confusion matrix<" not in page

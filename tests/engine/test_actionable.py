"""Predictions a user can act on (issue 14.5): calibration keeps every column's AUC,
users' multi-class rows sum to 1, and a candidate equal on hold-out NAUC but worse on
top-1 accuracy or log loss is never emitted (a better one is)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import autodl
from autodl.engine import Budget, calibrate, holdout, run
from autodl.formats.samples import make_tabular
from autodl.formats.types import ArraySplit, DatasetSpec
from autodl.scoring.metrics import auc_per_class, nauc_or_none

from ._data import splits
from ._fakes import Lookup, table


def _multiclass(n, k, seed=0):
    rng = np.random.default_rng(seed)
    return np.eye(k)[rng.integers(0, k, n)]


@pytest.mark.parametrize("multi", [True, False])
def test_calibration_keeps_every_column_auc_with_ties(multi):
    rng = np.random.default_rng(1)
    n, k = 400, 5
    y = _multiclass(n, k) if multi else (rng.random((n, k)) < 0.3).astype(float)
    raw = np.round(np.clip(0.3 * y + 0.7 * rng.random((n, k)), 0, 1), 2)  # many ties
    raw[:5] = 0.0  # exact 0 and 1 too
    raw[5:10] = 1.0
    cal = calibrate.fit(raw[:200], y[:200], multi)
    scored = cal.scores(raw)
    assert abs(nauc_or_none(y, scored) - nauc_or_none(y, raw)) < 1e-12
    np.testing.assert_allclose(auc_per_class(y, scored), auc_per_class(y, raw), atol=1e-12)
    assert not np.allclose(scored, raw)  # it did change the scores
    users = cal.probabilities(raw)
    assert ((users >= 0) & (users <= 1)).all()
    if multi:
        np.testing.assert_allclose(users.sum(axis=1), 1, atol=1e-12)
        # a scored row normalised is the users' probability
        np.testing.assert_allclose(scored / scored.sum(axis=1, keepdims=True), users, atol=1e-9)


def test_calibration_gives_a_flat_but_well_ranked_prediction_a_useful_top_class():
    y = _multiclass(60, 3)
    # issue 14's one-epoch CNN: ~0.32/0.32/0.36 for every image, ranked right per column
    flat = (
        np.array([0.30, 0.30, 0.34]) + 0.03 * y + 0.005 * np.random.default_rng(0).random(y.shape)
    )
    assert (flat.argmax(axis=1) == 2).all()  # the same top class for every row
    cal = calibrate.fit(flat, y, True)
    assert (cal.probabilities(flat).argmax(axis=1) == y.argmax(axis=1)).all()


def _good_and_distorted(n=300, k=3):
    """Two hold-out predictions with the same ranking in every column (equal NAUC), the
    second distorted per column so that no calibration of ours undoes it."""
    y = _multiclass(n, k)
    good = np.clip(0.45 * y + 0.55 * np.random.default_rng(0).random(y.shape), 0, 1)
    powers = np.array([8.0, 1 / 8, 1.0])[:k]
    return y, good, good**powers


def test_a_candidate_equal_on_nauc_but_worse_for_users_is_not_preferred():
    y, good, bad = _good_and_distorted()
    jg, jb = holdout.judge(y, good, True), holdout.judge(y, bad, True)
    assert jg.nauc == pytest.approx(jb.nauc, abs=1e-12)
    assert jg.top1 > jb.top1 and jg.log_loss < jb.log_loss
    assert not holdout.prefer(jb, jg)  # worse for users: not emitted
    assert holdout.prefer(jg, jb)  # better for users: emitted
    assert not holdout.prefer(jg, jg)  # an exact tie stays with the emitted one


def test_clearly_better_nauc_still_wins_and_clearly_worse_loses():
    y, good, _ = _good_and_distorted()
    noise = np.random.default_rng(5).random(y.shape)
    weak = 0.2 * good + 0.8 * noise
    jg, jw = holdout.judge(y, good, True), holdout.judge(y, weak, True)
    assert jg.nauc > jw.nauc + 0.2
    assert holdout.prefer(jg, jw) and not holdout.prefer(jw, jg)


def test_multilabel_ties_are_broken_by_f1_and_log_loss():
    rng = np.random.default_rng(2)
    y = (rng.random((300, 4)) < 0.3).astype(float)
    good = np.clip(0.45 * y + 0.55 * rng.random(y.shape), 0, 1)
    bad = good ** np.array([8.0, 1 / 8, 6.0, 1 / 6])
    jg, jb = holdout.judge(y, good, False), holdout.judge(y, bad, False)
    assert jg.nauc == pytest.approx(jb.nauc, abs=1e-12)
    assert not holdout.prefer(jb, jg) and holdout.prefer(jg, jb)


@pytest.mark.parametrize("first_good", [True, False])
def test_the_engine_emits_the_candidate_users_can_act_on(first_good):
    train, test = splits("tabular", n_train=600, n_test=50, output_dim=3)
    rows = table(train)
    good = Lookup(table=rows, name="good")
    bad = Lookup(table=rows, power=(8.0, 1 / 8, 1.0), name="bad")
    plan = [good, bad] if first_good else [bad, good]
    preds = list(run(train, test, None, Budget(20.0), learners=plan))
    assert [p.learner for p in preds if p.note == ""][-1] == "good"
    if first_good:
        assert all(p.learner == "good" for p in preds), [p.learner for p in preds]


def test_users_multiclass_rows_sum_to_one_and_test_aucs_are_kept():
    train, test = splits("tabular", output_dim=3)
    unl = ArraySplit("unlabelled", train.spec, test.load().x, None)
    preds = list(run(train, test, unl, Budget(2.0)))  # k-fold: runs to its budget
    assert preds
    for p in preds:
        np.testing.assert_allclose(p.unlabelled.sum(axis=1), 1, atol=1e-9)
        assert ((p.test >= 0) & (p.test <= 1)).all()


@pytest.mark.slow
def test_predictions_csv_rows_sum_to_one_for_multiclass(tmp_path):
    root = make_tabular(tmp_path / "tab", unlabelled=True)
    out = tmp_path / "out"
    report = autodl.run(root, out, time_budget=6)
    assert report.success, report.ingestion.error
    with open(out / "unlabelled" / "predictions.csv", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert rows and header[-1] == "top_class"  # autodl predict's layout (multi-class)
    sums = np.array([sum(float(v) for v in row[1:-1]) for row in rows])
    np.testing.assert_allclose(sums, 1, atol=1e-7)  # nine significant digits per cell
    top = [header[1 + int(np.argmax([float(v) for v in row[1:-1]]))] for row in rows]
    assert [row[-1] for row in rows] == top


def _shapes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """48x48 colour images of circles, squares and triangles, random sizes, positions and
    colours on white (issue 14's case, drawn with numpy)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:48, :48]
    x = np.full((n, 1, 48, 48, 3), 1.0, np.float32)
    labels = np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    for i in range(n):
        r = int(rng.integers(6, 22))
        cx, cy = (int(v) for v in rng.integers(r, 48 - r, 2))
        kind = i % 3
        if kind == 0:
            m = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif kind == 1:
            m = (abs(xx - cx) <= r) & (abs(yy - cy) <= r)
        else:
            m = (yy >= cy - r) & (yy <= cy + r) & (abs(xx - cx) <= (yy - (cy - r)) / 2)
        x[i, 0][m] = rng.random(3)
    return x, labels


@pytest.mark.slow
def test_shapes_end_to_end_top1_not_below_the_first_prediction():
    x, y = _shapes(60, seed=0)
    spec = DatasetSpec(name="shapes", shape=(1, 48, 48, 3), output_dim=3, domain="image")
    order = np.random.default_rng(1).permutation(60)
    tr, te = order[:39], order[39:]
    train = ArraySplit("train", spec, x[tr], y[tr])
    test = ArraySplit("test", spec, x[te], y[te])
    preds = list(run(train, test, None, Budget(25.0)))
    truth = y[te].argmax(axis=1)
    top1 = [float((p.test.argmax(axis=1) == truth).mean()) for p in preds]
    assert top1[-1] >= top1[0], top1

"""The anytime loop on every domain: first prediction, shapes, deadline, signal, failures."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autodl.engine import Budget, Learner, Prediction, loop, run
from autodl.engine.holdout import holdout_nauc
from autodl.engine.loop import PLANS
from autodl.engine.turns import FOLDS_NOTE
from autodl.formats.types import ArraySplit

from ._data import CASES, make, splits

SLACK = 3.0


def _run(train, test, seconds, **kw) -> tuple[list[Prediction], float, list[str]]:
    logs: list[str] = []
    t0 = time.monotonic()
    preds = list(
        run(train, test, kw.pop("unlabelled", None), Budget(seconds), log=logs.append, **kw)
    )
    return preds, time.monotonic() - t0, logs


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_run_beats_a_constant_within_the_budget(case):
    train, test = splits(case)
    preds, took, logs = _run(train, test, 3.0)
    assert preds, logs
    assert took < 3.0 + SLACK
    for p in preds:
        assert p.test.shape == (len(test), train.spec.output_dim)
        assert np.isfinite(p.test).all() and p.unlabelled is None
    # emitted only when better (a refit repeats the score), on the same rows: on small
    # data the first scores are on fold 0's rows, the later ones on every row's
    # out-of-fold prediction, from the first fold mean on (`folds`)
    scored = [p for p in preds if p.valid_score is not None]
    full = next((i for i, p in enumerate(scored) if p.note == FOLDS_NOTE), len(scored))
    for part in (scored[:full], scored[full:]):
        scores = [p.valid_score for p in part]
        assert scores == sorted(scores), [(p.valid_score, p.note) for p in scored]
    assert holdout_nauc(test.load().labels, preds[-1].test) > 0.2


@pytest.mark.slow
def test_multilabel_run():
    train, test = splits("tabular", multilabel=True)
    preds, _, logs = _run(train, test, 3.0)
    assert preds and holdout_nauc(test.load().labels, preds[-1].test) > 0.2, logs


@pytest.mark.slow
def test_unlabelled_comes_from_the_same_model():
    spec, x, y = make("tabular", 200)
    train = ArraySplit("train", spec, x[:120], y[:120])
    test = ArraySplit("test", spec, x[120:160])
    unlabelled = ArraySplit("unlabelled", spec, np.concatenate([x[120:160], x[160:]]))
    preds, _, _ = _run(train, test, 3.0, unlabelled=unlabelled)
    for p in preds:
        assert p.unlabelled.shape == (80, spec.output_dim)
        # the same model: the scored test rows, normalised, are the users' probabilities
        # (multi-class; `calibrate`: the scored values keep each column's order only)
        np.testing.assert_allclose(p.unlabelled[:40], p.test / p.test.sum(axis=1, keepdims=True))


class Boom(Learner):
    """Raises in fit: the run must log it and go on."""

    def __init__(self, *, where: str = "fit"):
        self.where = where

    @property
    def done(self) -> bool:
        return False

    def fit(self, data, seconds):
        if self.where == "fit":
            raise RuntimeError("exploded on purpose")
        return self

    def predict_proba(self, x):
        raise RuntimeError("cannot predict on purpose")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["fit", "predict"])
def test_a_failing_learner_does_not_end_the_run(where):
    train, test = splits("tabular")
    plan = [Boom(where=where), *PLANS["tabular"](train.spec, 0)]
    preds, _, logs = _run(train, test, 3.0, learners=plan)
    assert preds and all(p.learner != "boom" for p in preds)
    assert any("boom failed: RuntimeError" in line for line in logs)


@pytest.mark.slow
def test_large_train_gives_quick_models_while_the_rest_is_read(monkeypatch):
    monkeypatch.setattr(loop, "QUICK_ROWS", 50)
    train, test = splits("tabular", n_train=300)

    class SlowRead(type(train)):
        def load(self, limit=None, max_side=None):
            if limit is None:  # the whole split, in the background: takes a while
                time.sleep(1.0)
            return super().load(limit, max_side)

    slow = SlowRead("train", train.spec, train._x, train._labels)
    preds, _, logs = _run(slow, test, 6.0)
    quick = [p for p in preds if "first 50 training rows" in p.note]
    assert preds[0].learner.startswith("linear") and quick[0] is preds[0]
    assert not any(p.learner.startswith("ensemble") for p in quick)
    assert any("loaded 50 of 300 train rows" in line for line in logs)
    read = next(i for i, line in enumerate(logs) if "loaded 300 train rows at" in line)
    meanwhile = {line.split(":")[0] for line in logs[1:read] if "valid NAUC" in line}
    assert len(meanwhile) >= 2, logs  # more of the plan trained while the rest was read
    assert not all("first 50" in p.note for p in preds)  # then models on every row
    assert holdout_nauc(test.load().labels, preds[-1].test) > 0.2


def test_too_few_rows_for_a_hold_out_gives_one_prediction():
    train, test = splits("tabular", n_train=12)
    preds, _, _ = _run(train, test, 2.0)
    assert len(preds) == 1 and preds[0].valid_score is None and "too few rows" in preds[0].note


def test_a_spent_budget_yields_nothing():
    train, test = splits("tabular")
    preds, took, _ = _run(train, test, 0.0)
    assert preds == [] and took < SLACK


def test_holdout_nauc():
    y = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 1]], np.float32)
    assert holdout_nauc(y, y) == 1.0  # the constant third column is left out
    assert holdout_nauc(y, 1 - y) == -1.0
    assert holdout_nauc(y[:, 2:], y[:, 2:]) is None


def test_holdout_nauc_is_scikit_learns_macro_auc_ties_included():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random((300, 6)) < 0.3).astype(np.float32)
    y[:, 5] = 0  # a constant column: left out by both
    p = rng.random((300, 6)).round(1)  # many ties
    want = 2 * roc_auc_score(y[:, :5], p[:, :5], average="macro") - 1
    assert holdout_nauc(y, p) == pytest.approx(want, abs=1e-12)

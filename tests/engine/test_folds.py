"""Model choice on small data (issue 14.4): under ``folds.KFOLD_ROWS`` training rows every
learner is cross-validated (`folds.Folds`) and candidates are compared on every row's
out-of-fold prediction; a candidate equal within the noise is not emitted, a clearly
better one is; the first prediction still comes from one fold's fit."""

from __future__ import annotations

import contextlib
import time

import numpy as np
import pytest

from autodl.engine import Budget, folds, holdout, run
from autodl.engine.turns import FOLDS_NOTE

from ._data import splits
from ._fakes import Lookup, table

BUDGET = 20.0


def _run(train, test, plan):
    logs: list[str] = []
    preds = list(run(train, test, None, Budget(BUDGET), log=logs.append, learners=plan))
    return preds, logs


def test_folds_are_stratified_and_balanced():
    labels = np.eye(3)[np.r_[np.zeros(50, int), np.ones(30, int), np.full(20, 2)]]
    assign = holdout.folds(labels, 5, np.random.default_rng(0))
    assert np.bincount(assign).tolist() == [20] * 5
    for c, n in ((0, 50), (1, 30), (2, 20)):  # every class spread evenly over the folds
        assert np.bincount(assign[labels[:, c] > 0], minlength=5).tolist() == [n // 5] * 5


def test_text_folds_are_runs_of_consecutive_rows():
    labels = np.eye(2)[np.arange(100) // 50]
    assign = holdout.folds(labels, 5, np.random.default_rng(0), blocks=True)
    assert np.bincount(assign).tolist() == [20] * 5
    assert (np.diff(assign) != 0).sum() <= 9  # five runs per class, not 100 rows dealt


def test_k_fold_is_used_under_the_row_threshold_and_not_above(monkeypatch):
    train, test = splits("tabular", n_train=120, n_test=40, output_dim=3)
    rows = table(train)
    _, logs = _run(train, test, [Lookup(table=rows, name="a")])
    assert "5-fold cross-validation on 120 training rows" in logs, logs
    assert any("(folds 5/5)" in line for line in logs), logs

    monkeypatch.setattr(folds, "KFOLD_ROWS", 60)  # tabular: 120 rows, not under twice that
    preds, logs = _run(train, test, [Lookup(table=rows, name="a")])
    assert preds
    assert not any("fold" in line for line in logs), logs


def test_tabular_data_is_cross_validated_up_to_twice_the_rows_of_other_domains(monkeypatch):
    """Tabular learners are cheap at these sizes: k-fold up to 2 x ``KFOLD_ROWS``."""
    monkeypatch.setattr(folds, "KFOLD_ROWS", 100)
    assert folds.rows_below("tabular") == 200 and folds.rows_below("image") == 100
    for case, folded in (("tabular", True), ("image", False)):
        train, test = splits(case, n_train=120, n_test=40, output_dim=3)
        preds, logs = _run(train, test, [Lookup(table=table(train), name="a")])
        assert preds
        assert ("5-fold cross-validation on 120 training rows" in logs) == folded, (case, logs)


def test_out_of_fold_predictions_cover_every_row_once_all_folds_are_fitted():
    train, _ = splits("tabular", n_train=60, output_dim=3)
    data = train.load()
    assign = holdout.folds(data.labels, 5, np.random.default_rng(0))
    f = folds.Folds(base=Lookup(table=table(train), name="a"), assign=assign)
    f.fit(data, 1.0)
    covered, p = f.oof()
    assert covered.tolist() == np.flatnonzero(assign == 0).tolist()  # the first call: fold 0
    assert not f.complete and not f.done
    f.fit(data, 1.0)
    covered, p = f.oof()
    assert covered.tolist() == list(range(60)) and np.isfinite(p).all()
    assert f.complete and f.done
    assert f.predict_proba(data.x).shape == (60, 3)


class _Epoch(Lookup):
    """Takes 0.05 s a fit whatever its share of the time (a network's first epoch)."""

    def fit(self, data, seconds):
        time.sleep(0.05)
        return super().fit(data, seconds)


def test_copies_wait_for_the_next_turn_once_the_turns_time_is_spent():
    """A turn fits at least one copy, then stops when its time is spent: four copies
    that each take a minimum would otherwise run the turn (and the run) past its end."""
    train, _ = splits("tabular", n_train=60, output_dim=3)
    data = train.load()
    assign = holdout.folds(data.labels, 5, np.random.default_rng(0))
    f = folds.Folds(base=_Epoch(table=table(train), name="a"), assign=assign)
    f.fit(data, 1.0)  # copy 0
    t0 = time.monotonic()
    f.fit(data, 0.01)  # no time for four copies of 0.05 s
    assert time.monotonic() - t0 < 0.15 and f.progress == "folds 2/5"
    while not f.complete:
        f.fit(data, 0.01)
    assert f.progress == "folds 5/5" and f.done


def test_the_first_prediction_comes_from_one_fold_then_the_folds_mean():
    train, test = splits("tabular", n_train=200, n_test=40, output_dim=3)
    rows = table(train)
    Lookup.fits.clear()
    gen = run(train, test, None, Budget(BUDGET), learners=[Lookup(table=rows, name="a")])
    first = next(gen)
    assert Lookup.fits == ["a"]  # one copy fitted before the first prediction
    rest = list(gen)
    assert first.note == "" and rest and rest[-1].note == FOLDS_NOTE
    assert len(Lookup.fits) == 5


def _judged(y, p, rows=None):
    return holdout.judge(y, p, True, rows=rows)


def test_a_record_on_some_folds_never_replaces_one_on_every_row():
    rng = np.random.default_rng(0)
    y = np.eye(3)[rng.integers(0, 3, 200)]
    good = np.clip(0.6 * y + 0.4 * rng.random(y.shape), 0, 1)
    weak = np.clip(0.1 * y + 0.9 * rng.random(y.shape), 0, 1)
    some = np.arange(0, 200, 5)
    assert not holdout.prefer(_judged(y[some], good[some], some), _judged(y, weak))
    # on every row, against one emitted from fold 0: compared on fold 0's rows
    assert holdout.prefer(_judged(y, good), _judged(y[some], weak[some], some))
    assert not holdout.prefer(_judged(y, weak), _judged(y[some], good[some], some))
    # first turns (fold 0 each) are compared with each other on their rows
    assert holdout.prefer(_judged(y[some], good[some], some), _judged(y[some], weak[some], some))
    other = some + 1
    assert not holdout.prefer(
        _judged(y[other], good[other], other), _judged(y[some], weak[some], some)
    )


def _quality_plan(rows, *qualities_and_seeds):
    return [
        Lookup(table=rows, name=f"q{q}-s{s}", quality=q, noise_seed=s)
        for q, s in qualities_and_seeds
    ]


def test_a_candidate_equal_within_noise_is_not_emitted():
    """Two learners of the same quality (other noise): the second scores a little higher
    out of fold (0.739 against 0.701 on 300 rows), within the noise: no clear gain, and
    the first stays emitted."""
    train, test = splits("tabular", n_train=300, n_test=40, output_dim=3)
    plan = _quality_plan(table(train), (0.3, 1), (0.3, 3))
    preds, logs = _run(train, test, plan)
    scores = [float(ln.split("valid NAUC ")[1][:6]) for ln in logs if "(folds 5/5)" in ln]
    assert len(scores) == 2 and scores[1] > scores[0] + 0.02, logs  # higher, by luck
    emitted = [(p.learner, p.valid_score) for p in preds]
    assert preds[0].learner == "q0.3-s1"
    assert "q0.3-s2" not in {p.learner for p in preds}, emitted  # (their mean may be)


@pytest.mark.parametrize("order", [0, 1])
def test_a_clearly_better_candidate_is_emitted(order):
    train, test = splits("tabular", n_train=300, n_test=40, output_dim=3)
    plan = _quality_plan(table(train), (0.15, 1), (0.5, 2))
    plan = plan if order == 0 else plan[::-1]
    preds, _ = _run(train, test, plan)
    assert preds[-1].learner == "q0.5-s2"
    assert preds[-1].note in ("", FOLDS_NOTE)


def test_the_copies_featurise_each_row_once_and_predict_as_before(monkeypatch):
    """Five copies fitted on four fifths and predicting the fifth featurised every row
    five times (and again whenever the memo had forgotten a part); within `parts_of`
    the whole split is featurised once and each part's rows are taken from it."""
    from autodl.engine.learner import Features
    from autodl.engine.linear import Linear
    from autodl.engine.speech import envelope

    train, test = splits("speech", n_train=100, output_dim=3)
    data, x_test = train.load(), test.load().x
    assign = holdout.folds(data.labels, 5, np.random.default_rng(0))
    rows: list[int] = []

    def counted(x):
        rows.append(len(x))
        return envelope(x)

    def fitted():
        f = folds.Folds(base=Linear(features=Features("env", counted), seed=0), assign=assign)
        for _ in range(4):
            f.fit(data, 5.0)
        assert f.complete
        return f.predict_proba(x_test)

    shared = fitted()
    assert rows == [100, 80]  # the split once, then the test split
    rows.clear()
    monkeypatch.setattr(folds, "parts_of", lambda whole, parts: contextlib.nullcontext())
    alone = fitted()
    assert sum(rows) >= 5 * 100 + 80  # each copy its 80 rows and its 20
    np.testing.assert_allclose(shared, alone, atol=1e-6)

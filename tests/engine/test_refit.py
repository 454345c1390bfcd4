"""Refits on all training rows: as soon as a learner converges, singles and ensembles."""

from __future__ import annotations

import numpy as np

from autodl.engine import Budget, folds, run
from autodl.engine.boost import LightGBM
from autodl.engine.learner import Features
from autodl.engine.linear import Linear
from autodl.engine.tabular import flat
from autodl.engine.turns import REFIT_NOTE
from autodl.formats.types import Arrays

from ._data import splits


def test_converged_learners_are_refitted_and_re_emitted_with_the_same_score(monkeypatch):
    monkeypatch.setattr(folds, "KFOLD_ROWS", 0)  # the hold-out path (k-fold: no refits)
    train, test = splits("tabular")
    f = Features("flat", flat)
    learners = [Linear(features=f, max_rows=40), Linear(features=f), LightGBM(features=f)]
    logs: list[str] = []
    preds = list(run(train, test, None, Budget(10.0), log=logs.append, learners=learners))
    refits = [i for i, p in enumerate(preds) if p.note == REFIT_NOTE]
    assert refits, logs
    for i in refits:  # the hold-out score of what it replaces, new test predictions
        assert preds[i].valid_score == preds[i - 1].valid_score
        assert not np.array_equal(preds[i].test, preds[i - 1].test)
    assert any("refit on all" in line and "(done)" in line for line in logs)
    # LightGBM is refitted as the mean of seed copies (refit_copies), time allowing
    assert LightGBM.refit_copies > 1
    assert any(
        line.startswith("bag") and "lightgbm" in line and "refit on all" in line for line in logs
    ), logs
    # a refit taking many turns says so on its first turn and its last only
    for name in {line.split(": refit on all")[0] for line in logs if ": refit on all" in line}:
        said = [line for line in logs if line.startswith(f"{name}: refit on all")]
        assert len(said) <= 2 and "(done)" in said[-1], said
        assert len(said) == 1 or " turns (done)" in said[-1], said


def test_lightgbm_returns_after_each_doubling_and_keeps_to_the_time():
    train, _ = splits("tabular")
    data = train.load()
    data = Arrays(data.ids, data.x, data.labels)
    lgb = LightGBM(features=Features("flat", flat), max_rounds=2000, patience=2000)
    rounds = []
    for _ in range(4):
        lgb.fit(data, 60.0)
        rounds.append(lgb._rounds)
    assert rounds == [10, 30, 70, 150]  # steps of 10, 20, 40, 80: one doubling per call
    before = lgb._rounds
    lgb.fit(data, 0.0)  # no time: one round
    assert lgb._rounds == before + 1


def test_refit_copies_shrink_with_the_time_left():
    from contextlib import nullcontext

    from autodl.engine.bag import Bag
    from autodl.engine.turns import Schedule

    state = Schedule(None, None, 0, 2, Budget(10.0), lambda _m: None, nullcontext)
    f = Features("flat", flat)
    lgb, lin = LightGBM(features=f, seed=4), Linear(features=f)
    state.spent[id(lgb)] = state.spent[id(lin)] = 1.0  # three times that per copy: 3 fit
    copy = state.refit_copy(lgb)
    assert isinstance(copy, Bag) and copy.n == 3 and copy.base.seed == 4
    assert type(state.refit_copy(lin)) is Linear  # one copy: a plain clone
    state.spent[id(lgb)] = 4.0  # not even one copy fits
    assert state.refit_copy(lgb) is None


def _member(name: str, labels: np.ndarray, quality: float, seed: int):
    """A pool member whose hold-out and test predictions are ``quality`` x labels + noise."""
    from autodl.engine import blend, holdout

    rng = np.random.default_rng(seed)
    valid = quality * labels + (1 - quality) * rng.random(labels.shape)
    test = rng.random((7, labels.shape[1]))
    score = holdout.holdout_nauc(labels, valid)
    judged = holdout.judge(labels, valid, True, score)
    return blend.Member(name, score, valid, test, None, judged)


def _state_with_an_ensemble_of_a_snapshot(converged_quality: float):
    """An emitted ensemble of learner 1's early state (twice) and learner 2; learner 1's
    converged state ``converged_quality`` in the pool, its refit done."""
    from contextlib import nullcontext

    from autodl.engine import holdout
    from autodl.engine.turns import Schedule, _Best

    labels = np.eye(3)[np.random.default_rng(0).integers(0, 3, 400)]
    snap, other = _member("a", labels, 0.25, 1), _member("b", labels, 0.3, 2)
    conv = _member("a refit", labels, converged_quality, 3)
    logs: list[str] = []
    state = Schedule(None, None, 7, 3, Budget(10.0), logs.append, nullcontext)
    state.multiclass = True
    state.pool = {1: conv, 2: other}
    state.owner = {id(snap): 1, id(conv): 1, id(other): 2}
    p = (2 * snap.valid + other.valid) / 3
    judged = holdout.judge(labels, p, True, holdout.holdout_nauc(labels, p))
    state.best = _Best(judged.nauc, None, True, (snap, snap, other), judged)
    return state, conv, other, logs


def test_a_refitted_converged_learner_replaces_its_early_state_in_the_emitted_ensemble():
    # issue 14: cityweather kept an ensemble holding a 20-round LightGBM (top-1 0.971 on
    # the test set) after LightGBM had converged and been refitted on all rows
    state, conv, other, logs = _state_with_an_ensemble_of_a_snapshot(0.5)
    (pred,) = state.refitted_ensemble(1, conv)
    assert pred.note == REFIT_NOTE
    assert state.best.members == (conv, conv, other)
    assert pred.valid_score == state.best.score > 0
    assert any("converged state" in line for line in logs), logs


def test_a_converged_state_clearly_worse_on_the_hold_out_does_not_replace_it():
    state, conv, _, logs = _state_with_an_ensemble_of_a_snapshot(0.0)  # noise alone
    before = state.best
    assert list(state.refitted_ensemble(1, conv)) == []
    assert state.best is before and logs == []

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

"""`Bag`: seed copies trained one after another, averaged; run after the plan converges."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.engine import Budget, folds, run
from autodl.engine.bag import Bag
from autodl.engine.boost import LightGBM
from autodl.engine.learner import Features
from autodl.engine.linear import Linear
from autodl.engine.tabular import flat
from autodl.formats.types import Arrays

from ._data import splits


def _data():
    train, test = splits("tabular")
    a = train.load()
    return Arrays(a.ids, a.x, a.labels), test.load().x


@pytest.mark.slow
def test_a_bag_is_the_mean_of_its_seed_copies():
    data, x = _data()
    f = Features("flat", flat)
    bag = Bag(base=LightGBM(features=f, seed=3), n=3)
    calls = 0
    while not bag.done:
        before = bag._cursor if hasattr(bag, "_cursor") else 0
        bag.fit(data, 30.0)
        calls += 1
        assert bag._cursor - before <= 1  # returns once a copy has converged
    assert calls >= 3 and bag.name == "bag3(lightgbm(flat))"
    alone = []
    for seed in (3, 4, 5):
        m = LightGBM(features=f, seed=seed)
        while not m.done:
            m.fit(data, 30.0)
        alone.append(m.predict_proba(x))
    np.testing.assert_allclose(bag.predict_proba(x), np.mean(alone, axis=0), rtol=1e-12)
    assert not np.allclose(alone[0], alone[1])  # the seeds really differ


def test_later_learners_start_once_the_plan_has_converged(monkeypatch):
    monkeypatch.setattr(folds, "KFOLD_ROWS", 0)  # the hold-out path (k-fold: no refits)
    train, test = splits("tabular")
    f = Features("flat", flat)
    logs: list[str] = []
    plan = [Linear(features=f), LightGBM(features=f)]
    later = [Bag(base=LightGBM(features=f, seed=7), n=2)]
    list(run(train, test, None, Budget(20.0), log=logs.append, learners=plan, later=later))
    bag_lines = [i for i, line in enumerate(logs) if line.startswith("bag2(")]
    done_lines = [i for i, line in enumerate(logs) if "(done)" in line and "bag2(" not in line]
    assert bag_lines, logs
    # every plan learner (and its refit) converged before the bag's first turn
    assert sum("(done)" in line for line in logs[: bag_lines[0]]) >= 4, logs
    assert max(done_lines) < bag_lines[0], logs
    assert any(line.startswith("bag2(") and "(done)" in line for line in logs), logs

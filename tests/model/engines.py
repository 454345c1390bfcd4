"""Engines for the saved-model tests (imported by the engine's child process).

Each follows the engine contract (`autodl.engine.protocol.Engine`) and attaches a model
(`autodl.engine.export.Recipe`) to its predictions, as our engine does.
"""

from __future__ import annotations

import time

import numpy as np

from autodl.engine import calibrate, export, tabular
from autodl.engine.loop import Prediction


def _predict(learner, test_x, unl_x, k):
    cal = calibrate.identity(k, multiclass=True)
    recipe = export.Recipe.of([learner], [learner.name])
    recipe.calibration = cal
    test = cal.scores(np.asarray(learner.predict_proba(test_x), np.float64))
    unl = None if unl_x is None else cal.probabilities(learner.predict_proba(unl_x))
    return Prediction(test, unl, learner.name, 0.5, "", recipe)


def late(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """One prediction at once, then a second one (another model) after the deadline."""
    data = train.load()
    test_x = test.load().x
    unl_x = unlabelled.load().x if unlabelled is not None else None
    first, second = tabular.plan(train.spec, seed)[:2]
    first.fit(data, 1.0)
    yield _predict(first, test_x, unl_x, train.spec.output_dim)
    second = type(second)(**{**second.get_params(), "C": 0.01})
    second.fit(data, 1.0)
    time.sleep(max(budget.remaining(), 0) + 0.5)  # past the deadline: not counted
    yield _predict(second, test_x, unl_x, train.spec.output_dim)
    time.sleep(30)  # then killed


def stubborn(train, test, unlabelled, budget, **kw):
    """Our engine, then no end of its own: the run is killed at the deadline (our engine
    may end by itself a few milliseconds before it, when no step fits in the time left)."""
    from autodl.engine.loop import run

    yield from run(train, test, unlabelled, budget, **kw)
    time.sleep(max(budget.remaining(), 0) + 30)  # killed before this ends

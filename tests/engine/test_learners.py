"""The shared conformance test: every learner of every plan, on tiny data of every domain."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autodl.engine.learner import LOW, Features, Learner, clone
from autodl.engine.linear import Linear
from autodl.engine.loop import LATER, PLANS
from autodl.engine.tabular import flat
from autodl.formats.types import Arrays

from ._data import CASES, make

SLACK = 3.0  # seconds allowed past a fit's time budget (one step, a slow CI machine)


def _domain(case: str) -> str:
    return case.split("-")[0]


def _every(case: str, spec) -> list[Learner]:
    """The domain's plan, then its learners for later (`loop.LATER`)."""
    domain = _domain(case)
    return PLANS[domain](spec, 0) + LATER.get(domain, lambda *_: [])(spec, 0)


def _learners(case: str) -> list[tuple[str, int]]:
    spec, _, _ = make(case, 8)
    return [(case, i) for i in range(len(_every(case, spec)))]


def _arrays(x, y) -> Arrays:
    return Arrays(np.arange(len(y)), x, y)


ALL = [pair for case in CASES for pair in _learners(case)]


@pytest.mark.parametrize("multilabel", [False, True], ids=["multiclass", "multilabel"])
@pytest.mark.parametrize(("case", "index"), ALL, ids=[f"{c}-{i}" for c, i in ALL])
def test_learner_conformance(case, index, multilabel):
    spec, x, y = make(case, 90, output_dim=5, multilabel=multilabel, absent=True)
    learner: Learner = _every(case, spec)[index]
    if "epochs" in learner.get_params():  # networks: a short schedule keeps the test fast
        learner = type(learner)(**{**learner.get_params(), "epochs": 3})
    train, test = slice(0, 60), slice(60, 90)
    data = _arrays(x[train], y[train])

    t0 = time.monotonic()
    learner.fit(data, 1.0)
    assert time.monotonic() - t0 < 1.0 + SLACK
    p = learner.predict_proba(x[test])

    assert p.shape == (30, spec.output_dim)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    # the class absent from training still has its column, constant and low
    assert np.all(p[:, -1] == p[0, -1]) and p[0, -1] <= 10 * LOW
    if not multilabel:
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert isinstance(learner.name, str) and learner.name
    # warm start: more calls on the same data reach `done`
    for _ in range(50):
        if learner.done:
            break
        learner.fit(data, 0.5)
    assert learner.done


@pytest.mark.parametrize("case", CASES)
def test_predict_works_after_the_shortest_fit(case):
    spec, x, y = make(case, 40)
    learner = PLANS[_domain(case)](spec, 0)[0]
    learner.fit(_arrays(x, y), 0.0)  # one step at least
    assert learner.predict_proba(x).shape == (40, spec.output_dim)


def test_constructor_only_stores_and_clone_copies():
    f = Features("flat", flat)
    lin = Linear(features=f, C=-1.0, max_rows=500)  # invalid, but not checked yet
    assert lin.get_params()["C"] == -1.0 and lin.get_params()["features"] is f
    copy = clone(lin)
    assert copy is not lin and copy.get_params() == lin.get_params()


def test_parameters_are_checked_with_one_message():
    spec, x, y = make("tabular", 20)
    lin = Linear(features=Features("flat", flat), C=-1.0)
    with pytest.raises(
        ValueError, match=r"Linear: parameter 'C' must be a number in \(0, inf\], got -1.0"
    ):
        lin.fit(_arrays(x, y), 1.0)
    with pytest.raises(ValueError, match=r"parameter 'preprocess' must be one of"):
        Linear(features=Features("flat", flat), preprocess="zscore").fit(_arrays(x, y), 1.0)


def test_predict_before_fit_says_so():
    with pytest.raises(RuntimeError, match="call fit before predict_proba"):
        Linear(features=Features("flat", flat)).predict_proba(np.zeros((1, 1, 1, 3, 1)))


def test_same_seed_same_predictions():
    spec, x, y = make("image", 60)
    a, b = (PLANS["image"](spec, 0)[1] for _ in range(2))
    pa = a.fit(_arrays(x, y), 2.0).predict_proba(x)
    pb = b.fit(_arrays(x, y), 2.0).predict_proba(x)
    np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-6)


def test_single_class_training_gives_constant_predictions():
    spec, x, _ = make("tabular", 20)
    y = np.zeros((20, 4), np.float32)
    y[:, 2] = 1
    p = PLANS["tabular"](spec, 0)[0].fit(_arrays(x, y), 1.0).predict_proba(x)
    assert p.shape == (20, 4) and np.all(p.argmax(axis=1) == 2)


@pytest.mark.parametrize("case", CASES)
def test_each_domains_linear_and_boosting_learners_are_deterministic(case):
    from autodl.engine.boost import LightGBM

    spec, x, y = make(case, 60, seed=5)
    picked = [
        i
        for i, learner in enumerate(PLANS[spec.domain](spec, 3))
        if type(learner) in (Linear, LightGBM)
    ]
    assert picked  # every domain's plan has one
    for i in picked:
        a, b = PLANS[spec.domain](spec, 3)[i], PLANS[spec.domain](spec, 3)[i]
        for _ in range(3):  # continued fits too (LightGBM's rounds double per call)
            a.fit(_arrays(x, y), 30.0)
            b.fit(_arrays(x, y), 30.0)
        np.testing.assert_array_equal(a.predict_proba(x), b.predict_proba(x), err_msg=a.name)

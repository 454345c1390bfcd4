"""Issue 14, point 3: throughput on large data.

LightGBM bins a feature matrix once for every booster on it; a dominated learner gives
its time away; a learner that cannot enter the emitted prediction is not refitted;
the loop's thread count reaches LightGBM and extra trees; large plans run their cheap
learners on subsamples and start the strong ones early; featurised splits stay cached.
"""

from __future__ import annotations

import ctypes
import time

import lightgbm
import numpy as np
import pytest

from autodl.engine import boost, image, tabular
from autodl.engine._threads import ThreadLimits
from autodl.engine.bag import Bag
from autodl.engine.boost import LightGBM
from autodl.engine.budget import Budget
from autodl.engine.extra_trees import ExtraTrees
from autodl.engine.learner import Features, Learner
from autodl.engine.linear import Linear
from autodl.engine.tabular import flat
from autodl.engine.turns import DOMINATED, Schedule
from autodl.formats.types import Arrays

from ._data import make


def _arrays(n: int, k: int = 2, cols: int = 6, seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cols)).astype(np.float32)
    c = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.standard_normal(n) > 0.5).astype(int) % k
    return Arrays(np.arange(n), x, np.eye(k, dtype=np.float32)[c])


@pytest.fixture
def binnings(monkeypatch):
    """Count LightGBM Datasets binned from raw rows (subsets of a binned one are not)."""
    boost._BINNED.clear()
    calls = []
    real = lightgbm.Dataset._lazy_init

    def counting(self, *args, **kwargs):
        calls.append(len(kwargs.get("data", args[0] if args else ())))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lightgbm.Dataset, "_lazy_init", counting)
    yield calls
    boost._BINNED.clear()


@pytest.mark.slow
def test_one_binning_serves_every_doubling_configuration_and_seed_copy(binnings):
    data = _arrays(1200)  # inner early-stopping rows too (MIN_EARLY)
    f = Features("flat", flat)
    learners = [
        LightGBM(features=f, seed=0),
        LightGBM(features=f, num_leaves=7, learning_rate=0.03, seed=1),
        Bag(base=LightGBM(features=f, seed=2), n=2),
    ]
    for _ in range(2):  # two doublings each
        for lr in learners:
            lr.fit(data, 10.0)
    assert learners[0]._rounds >= 30
    assert binnings == [1200], binnings  # one matrix, binned once
    other = _arrays(1500, seed=1)  # other data: binned again, once
    learners[0].fit(other, 10.0)
    learners[1].fit(other, 10.0)
    assert binnings == [1200, 1500], binnings
    p = learners[0].predict_proba(other.x)
    assert p.shape == (1500, 2) and np.isfinite(p).all()


@pytest.mark.slow
def test_shared_bins_score_as_separate_datasets_did(binnings):
    """A booster on a subset of the shared binning learns as one on its own Dataset."""
    from sklearn.metrics import roc_auc_score

    data, test = _arrays(1500, seed=4), _arrays(600, seed=5)
    f = Features("flat", flat)
    ours = LightGBM(features=f, seed=3)
    for _ in range(3):
        ours.fit(data, 10.0)
    t = data.labels.argmax(axis=1)
    params = {**ours._boosters[0]["params"], "bagging_fraction": boost.BAGGING}
    ref = lightgbm.Booster(params, lightgbm.Dataset(data.x, t, params=boost.DATASET_PARAMS))
    for _ in range(ours._rounds):
        ref.update()
    y = test.labels[:, 1]
    auc_ours = roc_auc_score(y, ours.predict_proba(test.x)[:, 1])
    auc_ref = roc_auc_score(y, ref.predict(test.x))
    assert auc_ours > 0.75 and abs(auc_ours - auc_ref) < 0.03, (auc_ours, auc_ref)


def test_a_subsampled_lightgbm_trains_on_max_rows_of_the_shared_binning(binnings):
    data = _arrays(1000, cols=3)
    f = Features("flat", flat)
    small = LightGBM(features=f, max_rows=600, num_leaves=7).fit(data, 10.0)
    full = LightGBM(features=f, num_leaves=7).fit(data, 10.0)
    assert small._boosters[0]["train"].num_data() == 540  # 600 less the inner tenth
    assert small._boosters[0]["valid"][0].num_data() == 60
    assert full._boosters[0]["train"].num_data() == 900
    assert binnings == [1000]  # both on the one binning
    assert small.name == "lightgbm(flat, 7 leaves, <=600 rows)"
    assert small.predict_proba(data.x).shape == (1000, 2)


def test_the_loop_thread_count_reaches_lightgbm_and_extra_trees():
    data = _arrays(300)
    f = Features("flat", flat)
    lgb_, et = LightGBM(features=f), ExtraTrees(features=f, n_trees=4)
    for lr in (lgb_, et):
        lr.threads = 1  # what the loop sets before each fit
        lr.fit(data, 5.0)
    assert lgb_._boosters[0]["params"]["num_threads"] == 1
    assert lgb_._boosters[0]["booster"].params["num_threads"] == 1
    assert et._forest.n_jobs == 1
    lgb_.threads = et.threads = None  # without it: every core, not a library's setting
    assert LightGBM(features=f, n_jobs=3)._params("binary", 2, 1000)["num_threads"] == 3
    bag = Bag(base=LightGBM(features=f), n=2)
    bag.threads = 1
    bag.fit(data, 5.0)
    assert bag._members[0].threads == 1


def test_lightgbm_takes_a_thread_per_hundred_thousand_rows_and_keeps_its_count():
    """Sleeping OpenMP threads made small boosters 7-18x slower (issue 14: cityweather's
    LightGBM took 17 s in the engine, 0.65 s on one thread): one thread per
    ``THREAD_ROWS`` training rows. LightGBM's count is one global that any Dataset or
    Booster built without ``num_threads`` resets, so each booster caps it before it
    trains and predicts."""
    f = Features("flat", flat)
    lr = LightGBM(features=f)
    lr.threads = 2  # what the loop sets on two cores
    assert lr._params("binary", 2, 1000)["num_threads"] == 1
    assert lr._params("binary", 2, 2 * boost.THREAD_ROWS)["num_threads"] == 2
    lr.fit(_arrays(300), 5.0)
    boost._cap_threads(-1)  # as another library user would leave it: every core
    lightgbm.Dataset(np.zeros((10, 2)), np.zeros(10), params={"verbosity": -1}).construct()
    assert not lr.done
    lr.fit(_arrays(300), 5.0)  # more rounds
    cap = ctypes.c_int(0)
    lightgbm.basic._LIB.LGBM_GetMaxThreads(ctypes.byref(cap))
    assert cap.value == 1
    boost._cap_threads(-1)
    lr.predict_proba(_arrays(20).x)
    lightgbm.basic._LIB.LGBM_GetMaxThreads(ctypes.byref(cap))
    assert cap.value == 1


class Fixed(Learner):
    """Predicts ``quality`` x labels + noise on the hold-out it is given (known rows);
    ``gain`` more quality per fit; never done unless ``fits_to_done`` fits."""

    def __init__(self, *, table=None, quality=1.0, gain=0.0, fits_to_done=0, name="fixed"):
        self.table, self.quality, self.gain = table, quality, gain
        self.fits_to_done, self._name = fits_to_done, name
        self.fits: list[int] = []

    @property
    def name(self) -> str:
        return self._name

    @property
    def done(self) -> bool:
        return bool(self.fits_to_done) and len(self.fits) >= self.fits_to_done

    def fit(self, data, seconds):
        self.fits.append(len(data))
        return self

    def predict_proba(self, x):
        k = len(next(iter(self.table.values())))
        rows = np.array([self.table.get(np.asarray(r).tobytes(), np.zeros(k)) for r in x])
        q = min(1.0, self.quality + self.gain * len(self.fits))
        noise = np.random.default_rng(len(x)).random((len(x), k))
        return np.clip(0.5 * q * rows + (1 - 0.5 * q) * noise, 0, 1)


def _schedule(seconds: float, logs: list[str]):
    data = _arrays(600, k=3)
    table = {np.asarray(r).tobytes(): lab for r, lab in zip(data.x, data.labels, strict=True)}
    fit = Arrays(data.ids[:450], data.x[:450], data.labels[:450])
    valid = Arrays(data.ids[450:], data.x[450:], data.labels[450:])
    state = Schedule(valid.x, None, len(valid.x), 3, Budget(seconds), logs.append, ThreadLimits(1))
    return state, table, fit, valid, data


def test_a_dominated_learner_gives_its_time_away():
    logs: list[str] = []
    state, table, fit, valid, data = _schedule(1.5, logs)
    strong = Fixed(table=table, quality=1.0, name="strong")
    weak = Fixed(table=table, quality=0.1, gain=0.001, name="weak")  # behind, hardly gaining
    closing = Fixed(table=table, quality=0.3, gain=0.3, name="closing")  # catches up
    list(state.take_turns([weak, closing, strong], fit, valid, full=data, later=[]))
    assert len(weak.fits) == DOMINATED + 1, logs  # its first turn has no gain to judge
    assert any(line.startswith("weak: dominated for") for line in logs), logs
    assert len(strong.fits) > 3 * len(weak.fits)
    assert not any(line.startswith("closing: dominated") for line in logs), logs
    assert len(closing.fits) > DOMINATED + 1


def test_a_learner_that_cannot_enter_the_emitted_prediction_is_not_refitted():
    logs: list[str] = []
    state, table, fit, valid, data = _schedule(3.0, logs)
    strong = Fixed(table=table, quality=1.0, fits_to_done=1, name="strong")
    weak = Fixed(table=table, quality=0.05, fits_to_done=1, name="weak")
    preds = list(state.take_turns([weak, strong], fit, valid, full=data, later=[]))
    assert preds[-1].learner == "strong"
    assert any(line.startswith("strong: refit on all 600 rows") for line in logs), logs
    assert not any(line.startswith("weak: refit") for line in logs), logs
    assert any(line.startswith("weak: not refitted") for line in logs), logs


def test_large_plans_subsample_cheap_learners_and_start_strong_ones_early():
    spec, _, _ = make("tabular", 8)
    plan = tabular.plan(spec)
    assert tabular.at_scale(plan, 100) == plan
    # up to LARGE_ROWS the order and learners stay, less the single-label extra trees
    # (k-fold choice only, tests/engine/test_extra_trees.py)
    middle = [lr for lr in plan if getattr(lr, "only", None) != "single-label"]
    assert len(middle) == len(plan) - 1
    assert tabular.at_scale(plan, tabular.LARGE_ROWS) == middle
    big = tabular.at_scale(plan, 200_000)
    kinds = [type(lr).__name__ for lr in big]
    assert kinds[:4] == ["Linear", "LightGBM", "LightGBM", "LightGBM"], kinds
    assert big[1].max_rows == tabular.LARGE_ROWS and big[2].max_rows is None
    assert big[0].max_rows == 500 and all(
        lr.max_rows == tabular.LARGE_ROWS
        for lr in big
        if isinstance(lr, Linear) and lr is not big[0]
    )
    spec, _, _ = make("image", 8)
    plan = image.plan(spec)
    big = image.at_scale(plan, 20_000)
    assert isinstance(big[0], Linear) and not isinstance(big[1], Linear)
    assert isinstance(big[-1], Linear) and big[-1].max_rows == image.LARGE_ROWS


def test_featurised_splits_stay_cached_least_recently_used_first():
    f = Features("flat", flat)
    test_x = np.ones((5, 3), np.float32)
    f(test_x)
    for _ in range(10):  # more splits than the memo holds; the test split used between
        f(np.zeros((4, 3), np.float32))
        f(test_x)
    assert f.calls == 11  # the test split featurised once


def test_the_stop_rule_of_stepped_learners_is_the_template_s():
    now = time.monotonic()
    assert Learner._room(now - 1.0, 10.0, now - 0.5)  # 1 s in, a 1 s step next: fits
    assert not Learner._room(now - 9.0, 10.0, now - 1.0)  # 9 s in, a 2 s step: overruns
    assert Learner._room(now - 9.0, 10.0, now - 1.0, growth=0.5)

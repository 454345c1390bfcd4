"""LightGBM grown by rounds: the strong tabular learner (also on series features).

``fit(data, seconds)`` adds rounds in steps that double (10, 20, 40, ... 200) until the
round count has doubled or the time is up, so the loop scores and can emit after every
doubling (a converged model on a quiet machine, not only at the end of a long call);
once a round has been timed, a step never plans more rounds than the time left allows
(under load a 200-round step took seconds, and overran the deadline). With at
least ``MIN_EARLY`` rows, 10% of them (stratified) are kept aside inside the learner
and the booster stops once that score has not improved for ``patience`` rounds;
predictions use the best round. Otherwise it trains ``SMALL_ROUNDS`` rounds (at most
``max_rounds``): with few rows more rounds only fit noise.

- multi-class: one softmax booster; multi-label: one binary booster per class;
- ``class_weight="balanced"``: rows weighted by the inverse of their class's share;
- ``categorical="auto"``: columns holding small non-negative integers (3 to 32
  distinct values) are treated as categories; NaN is LightGBM's missing value.

Weighting and categories are off by default and in the plans: on the sample data
and on synthetic imbalanced data they cost AUC (see `tabular`); integer codes split
finely enough.

Binning once (issue 14): LightGBM's binned ``Dataset`` of a feature matrix is built
once and kept (`binned`, memoised by the matrix's identity, which `Features` keeps
stable), and every booster trains on ``subset``s of it (its inner fit and early-stopping
rows; labels and weights set per booster): the two configurations of the tabular plan,
their quick-phase copies and the seed copies of a refit or a bag share one binning
per split instead of each building its own. A booster's rounds continue on the same
``Booster`` (``update``), never rebuilt per doubling.

Rows: ``max_rows`` trains on a stratified subsample of that many rows (a subset of
the same binning). Large plans (`tabular.at_scale`) start with such a configuration
for early strong predictions; once the booster on all rows overtakes it, it is
dominated and gives its time away (`turns.Schedule.dominated`). Subsampling rows
inside one booster does not pay in LightGBM 4.7: on 157,000 rows × 20 columns
(2 threads, a loaded machine) a round with ``bagging_fraction`` 0.127 (20,000 rows)
took 44 ms and one with 0.5 45 ms against 24 ms with 0.9 (below 0.5 LightGBM copies
the bagged rows every round, and the gradients and scores of every row are updated
anyway), while a booster on a 20,000-row subset took 3.9 ms a round; and a booster
cannot leave the copying mode (raising the fraction above 0.5 fails a check,
``best_split_info.right_count > 0``).

Threads: ``num_threads`` is ``n_jobs``, or with ``n_jobs=0`` the loop's thread count
(the ``threads`` attribute it sets; every core without it), so boosting and torch never
oversubscribe the cores, and at most one thread per ``THREAD_ROWS`` training rows
(one below that: sleeping OpenMP threads made small boosters 7-18x slower).
"""

from __future__ import annotations

import ctypes
import time
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np

from autodl.engine.learner import (
    Features,
    Instance,
    Interval,
    LabelCoding,
    Learner,
    OneOf,
    OrNone,
    RawX,
    stratified_indices,
)
from autodl.formats.types import Arrays

MIN_EARLY = 500
SMALL_ROUNDS = 200
# given to the Dataset too: its construction otherwise warns on stdout (C++ logging)
DATASET_PARAMS = {"min_data_in_bin": 1, "verbosity": -1}
BAGGING = 0.9  # share of the rows each round draws
#: rows per OpenMP thread (issue 14): threads that sleep between LightGBM's many short
#: parallel regions (``OMP_WAIT_POLICY=PASSIVE``, `autodl._engine_process`) wake too
#: late to pay below ~200,000 rows. 50 rounds on 2,000 rows x 24 took 0.16 s on one
#: thread, 1.07 s on two (0.10 s spinning, which a loaded machine cannot afford:
#: 2-4x slower than one thread with one other busy process); on 200,000 rows one and
#: two sleeping threads tie (0.9 s for 20 rounds). cityweather's LightGBM converged
#: in 17 s inside the engine, 0.65 s on one thread.
THREAD_ROWS = 100_000
BINNED_MEMO = 4  # binned Datasets kept: the quick prefix's, the fit split's, all rows'
_BINNED: dict[tuple[int, str], tuple[Any, lgb.Dataset, list[int]]] = {}


def binned(raw: Any, categorical: str) -> tuple[lgb.Dataset, list[int]]:
    """The binned (constructed) Dataset of the feature matrix ``raw`` and its
    categorical columns, built once per matrix (memoised by identity, a reference
    kept; least recently used dropped first) and shared by every booster on it."""
    key = (id(raw), categorical)
    hit = _BINNED.pop(key, None)
    if hit is None or hit[0] is not raw:
        x = np.asarray(raw, np.float32)
        cats = categorical_columns(x) if categorical == "auto" else []
        ds = lgb.Dataset(
            x,
            np.zeros(len(x)),
            categorical_feature=cats or "auto",
            free_raw_data=True,  # subsets take the bins, never the raw rows
            params=DATASET_PARAMS,
        ).construct()
        hit = (raw, ds, cats)
        while len(_BINNED) >= BINNED_MEMO:
            _BINNED.pop(next(iter(_BINNED)))
    _BINNED[key] = hit
    return hit[1], hit[2]


def _cap_threads(n: int) -> None:
    """Cap LightGBM's threads at ``n`` before a booster trains or predicts: its thread
    count is one global, which every ``Dataset`` or ``Booster`` built without
    ``num_threads`` resets to all cores (the plan's second configuration undid the
    first's one thread)."""
    lgb.basic._LIB.LGBM_SetMaxThreads(ctypes.c_int(n))


def categorical_columns(x: np.ndarray, max_values: int = 32) -> list[int]:
    """Columns of small non-negative integers with 3..max_values distinct values."""
    cols = []
    for j in range(x.shape[1]):
        v = x[:, j]
        v = v[np.isfinite(v)]
        if len(v) and np.all(v == np.rint(v)) and v.min() >= 0 and v.max() < 1000:
            if 3 <= len(np.unique(v)) <= max_values:
                cols.append(j)
    return cols


def _subset(
    parent: lgb.Dataset, rows: np.ndarray, t: np.ndarray, w: np.ndarray | None
) -> lgb.Dataset:
    """Rows ``rows`` (sorted) of the binned ``parent`` (its bins, no binning again),
    labelled ``t`` and weighted ``w`` (one value per row of ``rows``)."""
    ds = parent.subset(rows.tolist(), params=DATASET_PARAMS).construct()
    ds.set_label(t.astype(np.float32))
    if w is not None:
        ds.set_weight(w)
    return ds


class LightGBM(Learner):
    """Gradient-boosted trees grown in doubling steps (see the module doc)."""

    refit_copies: ClassVar[int] = 5  # refits average seeds (`bag.Bag` has the figures)

    _rules: ClassVar[dict[str, Any]] = {
        "features": Instance(Features),
        "learning_rate": Interval(float, 0, 1, open_low=True),
        "num_leaves": Interval(int, 2),
        "min_child_samples": Interval(int, 1),
        "feature_fraction": Interval(float, 0, 1, open_low=True),
        "extra_trees": Instance(bool),
        "class_weight": OneOf((None, "balanced")),
        "categorical": OneOf(("auto", "none")),
        "max_rounds": Interval(int, 1),
        "max_rows": OrNone(Interval(int, 1)),
        "patience": Interval(int, 1),
        "n_jobs": Interval(int, 0),
        "seed": Interval(int, 0),
    }

    def __init__(
        self,
        *,
        features: Features,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 10,
        feature_fraction: float = 0.8,
        extra_trees: bool = False,
        class_weight: str | None = None,
        categorical: str = "none",
        max_rounds: int = 2000,
        max_rows: int | None = None,
        patience: int = 50,
        n_jobs: int = 0,
        seed: int = 0,
    ):
        self.features = features
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.feature_fraction = feature_fraction
        self.extra_trees = extra_trees
        self.class_weight = class_weight
        self.categorical = categorical
        self.max_rounds = max_rounds
        self.max_rows = max_rows
        self.patience = patience
        self.n_jobs = n_jobs
        self.seed = seed

    @property
    def name(self) -> str:
        extra = [f"{self.num_leaves} leaves"] if self.num_leaves != 31 else []
        extra += ["extra trees"] if self.extra_trees else []
        extra += [f"<={self.max_rows} rows"] if self.max_rows else []
        return f"lightgbm({', '.join([self.features.name, *extra])})"

    def _params(self, objective: str, n_class: int, rows: int) -> dict[str, Any]:
        threads = min(self._n_threads(), max(1, rows // THREAD_ROWS))
        p = {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": BAGGING,
            "bagging_freq": 1,
            "extra_trees": self.extra_trees,
            "lambda_l2": 1.0,
            "num_threads": self.n_jobs or threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            **DATASET_PARAMS,
        }
        if n_class > 2:
            p["num_class"] = n_class
        return p

    def _weights(self, t: np.ndarray) -> np.ndarray | None:
        if self.class_weight is None:
            return None
        counts = np.bincount(t).astype(np.float64)
        w = len(t) / (len(counts) * np.maximum(counts, 1))
        return w[t]

    def _setup(self, data: Arrays, seconds: float) -> None:
        parent, _ = binned(self.features(data.x), self.categorical)
        y = np.asarray(data.labels)
        rows = np.arange(len(y))  # the parent's rows this booster trains on
        rng = np.random.default_rng(self.seed)
        if self.max_rows is not None and len(y) > self.max_rows:
            rows = stratified_indices(y, self.max_rows, rng)
            y = y[rows]
        self._coding = LabelCoding.fit(y)
        inner = np.zeros(len(y), bool)
        if len(y) >= MIN_EARLY:
            inner[stratified_indices(y, len(y) // 10, rng)] = True
        self._boosters = []
        for t in self._coding.targets(y):
            n_class = int(t.max()) + 1
            objective = "multiclass" if n_class > 2 else "binary"
            w = self._weights(t)
            ds = _subset(parent, rows[~inner], t[~inner], None if w is None else w[~inner])
            valid = [_subset(parent, rows[inner], t[inner], None)] if inner.any() else []
            params = self._params(objective, n_class, int((~inner).sum()))
            self._boosters.append({"params": params, "train": ds, "valid": valid})
        self._rounds, self._step, self._converged = 0, 10, not self._boosters
        self._limit = self.max_rounds if inner.any() else min(self.max_rounds, SMALL_ROUNDS)
        self._best = [0] * len(self._boosters)
        self._per_round = 0.0

    def _grow(self, b: dict[str, Any], rounds: int) -> int:
        """Add ``rounds`` to one booster; return its best round so far."""
        if "booster" not in b:
            b["booster"] = lgb.Booster(b["params"], b["train"])
            for v in b["valid"]:
                b["booster"].add_valid(v, "inner")
            b["losses"] = []
        booster = b["booster"]
        _cap_threads(b["params"]["num_threads"])
        for _ in range(rounds):
            if b.get("stuck") or booster.update():  # no split possible: nothing more to learn
                b["stuck"] = True
                break
            if b["valid"]:
                b["losses"].append(booster.eval_valid()[0][2])
        if not b["losses"]:
            return booster.current_iteration()
        return int(np.argmin(b["losses"])) + 1

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        target = max(2 * self._rounds, 10)
        while not self.done and self._rounds < target:
            s0 = time.monotonic()
            step = min(self._step, self._limit - self._rounds)
            if self._per_round > 0:  # no more rounds than the time left (one at least)
                step = max(1, min(step, int((start + seconds - s0) / self._per_round)))
            self._best = [self._grow(b, step) for b in self._boosters]
            self._rounds += step
            self._per_round = (time.monotonic() - s0) / step
            if step == self._step:
                self._step = min(2 * self._step, 200)
            self._converged = all(
                b.get("stuck") or (b["valid"] and self._rounds - best >= self.patience)
                for b, best in zip(self._boosters, self._best, strict=True)
            )
            if not self._room(start, seconds, s0):  # a doubled step would overrun
                break

    @property
    def done(self) -> bool:
        if not hasattr(self, "_boosters"):
            return False
        return self._converged or self._rounds >= self._limit

    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_boosters"):
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        z = np.asarray(self.features(x), np.float32)
        outputs = []
        for b, best in zip(self._boosters, self._best, strict=True):
            if "booster" not in b:
                continue
            _cap_threads(b["params"]["num_threads"])
            p = b["booster"].predict(z, num_iteration=best or None)
            if self._coding.multilabel:
                outputs.append(p)
            else:
                outputs.append(p if p.ndim == 2 else np.column_stack([1 - p, p]))
        return self._coding.expand(outputs if len(outputs) == len(self._boosters) else [], len(z))

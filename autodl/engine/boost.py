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

Threads: ``n_jobs=0`` takes OpenMP's default, which the loop caps (threadpoolctl)
to its thread count, so boosting and torch never oversubscribe the cores.
"""

from __future__ import annotations

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
    RawX,
    stratified_indices,
)
from autodl.formats.types import Arrays

MIN_EARLY = 500
SMALL_ROUNDS = 200
# given to the Dataset too: its construction otherwise warns on stdout (C++ logging)
DATASET_PARAMS = {"min_data_in_bin": 1, "verbosity": -1}


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
        self.patience = patience
        self.n_jobs = n_jobs
        self.seed = seed

    @property
    def name(self) -> str:
        extra = [f"{self.num_leaves} leaves"] if self.num_leaves != 31 else []
        extra += ["extra trees"] if self.extra_trees else []
        return f"lightgbm({', '.join([self.features.name, *extra])})"

    def _params(self, objective: str, n_class: int) -> dict[str, Any]:
        p = {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": 0.9,
            "bagging_freq": 1,
            "extra_trees": self.extra_trees,
            "lambda_l2": 1.0,
            "num_threads": self.n_jobs,
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
        x = np.asarray(self.features(data.x), np.float32)
        y = np.asarray(data.labels)
        self._coding = LabelCoding.fit(y)
        cats = categorical_columns(x) if self.categorical == "auto" else []
        inner = np.zeros(len(y), bool)
        if len(y) >= MIN_EARLY:
            inner[stratified_indices(y, len(y) // 10, np.random.default_rng(self.seed))] = True
        self._boosters = []
        for t in self._coding.targets(y):
            n_class = int(t.max()) + 1
            objective = "multiclass" if n_class > 2 else "binary"
            fit, val = ~inner, inner
            ds = lgb.Dataset(
                x[fit],
                t[fit],
                weight=None if (w := self._weights(t)) is None else w[fit],
                categorical_feature=cats or "auto",
                free_raw_data=False,
                params=DATASET_PARAMS,
            )
            valid = [ds.create_valid(x[val], t[val], params=DATASET_PARAMS)] if val.any() else []
            self._boosters.append(
                {"params": self._params(objective, n_class), "train": ds, "valid": valid}
            )
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
            now = time.monotonic()
            if now - start + 2 * (now - s0) > seconds:
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
            p = b["booster"].predict(z, num_iteration=best or None)
            if self._coding.multilabel:
                outputs.append(p)
            else:
                outputs.append(p if p.ndim == 2 else np.column_stack([1 - p, p]))
        return self._coding.expand(outputs if len(outputs) == len(self._boosters) else [], len(z))

"""Extremely randomised trees grown by steps: a tabular learner with native multi-output.

scikit-learn's ``ExtraTreesClassifier`` with ``warm_start``: ``fit(data, seconds)`` adds
trees until their count has doubled (one tree per thread first, which times a tree) or
the time is up, so the loop scores and can emit after a doubling; a call that doubled
within a quarter of its time doubles again (a forest is cheap: on small data the first
call grows it whole, instead of waiting a round of the other learners' turns per
doubling); a step never plans more trees than the time left allows at the measured
time per tree. ``done`` once
``n_trees`` trees are grown (the average of random trees gains little past a few
hundred). Predictions average the trees grown so far, so they work after any call.

Multi-label: one forest whose trees split on all the learnable labels at once (each
split lowers the Gini impurity averaged over the labels), not one model per label.
Labels share their structure this way, which per-label boosting cannot use: on a
14-label set shaped like "yeast" (issue 14) extra trees scored test NAUC 0.455 against
the engine's 0.405; our generated stand-in (`bench/make_multilabel.py`) behaves alike.
A label constant in training gets its rate (`learner.LabelCoding`). NaN is handled by
the trees (scikit-learn's missing-value support).

Memory is bounded: at most ``max_rows`` training rows (a stratified subsample), and a
fully grown tree holds about 2 * rows / min_samples_leaf nodes of 64 bytes plus one
float per output and class, so the forest's size is estimated before growing; when
``n_trees`` such trees would exceed `FOREST_SHARE` of the memory or `FOREST_MAX` bytes
(divided among the k-fold copies, which hold their forests at once), leaves are made
larger (at least ``MIN_TREES`` trees fit), then fewer trees are grown. On 2,275
training rows of 100 classes (1,820 a fold) five forests of 300 trees with leaves of 1
row are estimated at 4.7 GB; sized to a share of a 24 GB machine they took the run's
peak memory from 1,019 MB (five folds, no extra trees) to 2,972 MB; within `FOREST_MAX`
(512 MiB) to 1,387 MB, for
the same ALC and top-1 (`bench/alc.py`, 60 s); on emailspam and cityweather the cap
changes no seed's top-1 or final NAUC.

Threads: ``n_jobs=0`` takes the loop's thread count (the ``threads`` attribute it sets;
every core without it), so the forest's joblib threads and the other learners never
oversubscribe the cores; nothing is read back from the thread pools.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from autodl.engine import data as data_
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

FOREST_SHARE = 0.5  # of data.memory_budget (itself a quarter of the memory)
FOREST_MAX = 1 << 29  # bytes, whatever the machine: past this, trees add little for their room
MIN_TREES = 100
FIRST = 16  # trees of the first call (time allowing; its first step, one per thread, is timed)
AGAIN = 0.25  # a call that has doubled the trees within this share of its time doubles again
NODE_BYTES = 64  # scikit-learn's tree node, without its value array


def tree_bytes(rows: int, min_leaf: int, outputs: int, classes: int) -> float:
    """Upper estimate of one fully grown tree's bytes."""
    return 2.0 * rows / min_leaf * (NODE_BYTES + 8 * outputs * classes)


class ExtraTrees(Learner):
    """Extremely randomised trees grown in doubling steps (see the module doc)."""

    _rules: ClassVar[dict[str, Any]] = {
        "features": Instance(Features),
        "n_trees": Interval(int, 1),
        "min_samples_leaf": Interval(int, 1),
        "max_features": OneOf(("sqrt", "log2", 0.3, 0.5, 1.0)),
        "max_rows": Interval(int, 1),
        "n_jobs": Interval(int, 0),
        "seed": Interval(int, 0),
        "only": OneOf((None, "multi-label", "single-label")),
    }

    def __init__(
        self,
        *,
        features: Features,
        n_trees: int = 300,
        min_samples_leaf: int = 1,
        max_features: str | float = "sqrt",
        max_rows: int = 50_000,
        n_jobs: int = 0,
        seed: int = 0,
        only: str | None = None,
    ):
        self.features = features
        self.n_trees = n_trees
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.max_rows = max_rows
        self.n_jobs = n_jobs
        self.seed = seed
        # "multi-label": the loop leaves it out of a plan on data with one class per row;
        # "single-label": out of one on data without (`loop.run`)
        self.only = only

    @property
    def name(self) -> str:
        extra = [f"{self.max_features:g} of the columns"] if self.max_features != "sqrt" else []
        if self.min_samples_leaf > 1:
            extra.append(f"leaves of {self.min_samples_leaf}+ rows")
        return f"extratrees({', '.join([self.features.name, *extra])})"

    def _setup(self, data: Arrays, seconds: float) -> None:
        y = np.asarray(data.labels)
        rows = np.arange(len(y))
        if len(y) > self.max_rows:
            rows = stratified_indices(y, self.max_rows, np.random.default_rng(self.seed))
        y = y[rows]
        self._x = np.asarray(self.features(data.x), np.float32)[rows]
        self._coding = LabelCoding.fit(y)
        targets = self._coding.targets(y)
        self._y = None
        if targets:
            self._y = targets[0] if len(targets) == 1 else np.column_stack(targets)
        outputs = len(targets)
        classes = 2 if self._coding.multilabel else max(len(self._coding.classes), 1)
        self._leaf, self._limit = self._size(len(y), max(outputs, 1), classes)
        self._forest = None
        self._trees, self._per_tree = 0, 0.0

    def _size(self, rows: int, outputs: int, classes: int) -> tuple[int, int]:
        """Leaf size and tree count that keep the forest within its memory share, split
        among the k-fold copies that live at once (``shared["copies"]``, `folds.Folds`)."""
        copies = (self.shared or {}).get("copies", 1)
        budget = min(FOREST_SHARE * data_.memory_budget(), FOREST_MAX) / copies
        leaf = self.min_samples_leaf
        per = tree_bytes(rows, leaf, outputs, classes)
        if per * min(self.n_trees, MIN_TREES) > budget:
            leaf = math.ceil(leaf * per * min(self.n_trees, MIN_TREES) / budget)
            per = tree_bytes(rows, leaf, outputs, classes)
        return leaf, max(1, min(self.n_trees, int(budget // per)))

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        if self._y is None:  # nothing learnable: the priors are the model
            return
        jobs = self.n_jobs or self._n_threads()  # the loop's count (`Learner.threads`)
        if self._forest is None:
            self._forest = ExtraTreesClassifier(
                n_estimators=0,
                min_samples_leaf=self._leaf,
                max_features=self.max_features,
                n_jobs=jobs,
                random_state=self.seed,
                warm_start=True,
            )
        self._forest.set_params(n_jobs=jobs)
        target = min(max(2 * self._trees, FIRST), self._limit)
        while self._trees < target:
            s0 = time.monotonic()
            step = target - self._trees if self._trees else min(jobs, target)
            if self._per_tree > 0:  # no more trees than the time left (one at least)
                step = max(1, min(step, int((start + seconds - s0) / self._per_tree)))
            self._forest.set_params(n_estimators=self._trees + step)
            self._forest.fit(self._x, self._y)
            self._trees += step
            now = time.monotonic()
            self._per_tree = (now - s0) / step
            if not self._room(start, seconds, s0, growth=jobs / step):  # a step of >= jobs trees
                break
            if self._trees >= target and now - start < AGAIN * seconds:
                target = min(2 * self._trees, self._limit)  # quick so far: double again

    @property
    def done(self) -> bool:
        if not hasattr(self, "_coding"):
            return False
        return self._y is None or self._trees >= self._limit

    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_coding"):
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        z = np.asarray(self.features(x), np.float32)
        if self._forest is None or not self._trees:
            return self._coding.expand([], len(z))
        p = self._forest.predict_proba(z)
        if not self._coding.multilabel:
            return self._coding.expand([p], len(z))
        per_label = p if isinstance(p, list) else [p]
        classes = self._forest.classes_
        classes = classes if isinstance(classes, list) else [classes]
        outputs = [
            q[:, list(c).index(1)] if 1 in c else np.zeros(len(z))
            for q, c in zip(per_label, classes, strict=True)
        ]
        return self._coding.expand(outputs, len(z))

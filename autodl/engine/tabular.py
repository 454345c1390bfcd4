"""Tabular plan: the feature row as it is; linear models first, then boosting.

Learners, cheapest first: logistic regression on a stratified subsample of at most
500 rows (a first prediction within a second), the same on every row, then LightGBM
grown by rounds (`boost.LightGBM`: NaN as missing; one booster per class for
multi-label), then a second, more randomised LightGBM (extra trees, smaller leaves,
balanced class weights, small-integer columns as categories) that the loop's
ensemble can blend with the first. Once they have converged, five-seed bags of both
LightGBM configurations (`later`). Standardisation replaces NaN by the column median and adds a missing
indicator for columns that had NaN (see `models._preprocessor`).
"""

from __future__ import annotations

import numpy as np

from autodl.engine.bag import Bag
from autodl.engine.boost import LightGBM
from autodl.engine.learner import Features, Learner
from autodl.engine.models import Linear
from autodl.formats.types import DatasetSpec


def flat(x: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(N, F) float32 rows; infinities become NaN; ragged rows are padded with NaN."""
    if isinstance(x, np.ndarray):
        out = np.array(x, np.float32).reshape(len(x), -1)
    else:
        rows = [np.ravel(e) for e in x]
        out = np.full((len(rows), max((len(r) for r in rows), default=0)), np.nan, np.float32)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
    out[np.isinf(out)] = np.nan
    return out


def _extra_trees(f: Features, seed: int) -> LightGBM:
    return LightGBM(
        features=f,
        learning_rate=0.03,
        num_leaves=15,
        feature_fraction=0.6,
        extra_trees=True,
        class_weight="balanced",
        categorical="auto",
        seed=seed,
    )


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The tabular learners, cheapest first."""
    f = Features("flat", flat)
    return [
        Linear(features=f, max_rows=500, seed=seed),
        Linear(features=f, seed=seed),
        LightGBM(features=f, seed=seed),
        _extra_trees(f, seed + 1),
    ]


def later(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """For the time left once the plan has converged: both LightGBM configurations,
    five seeds each, averaged (`bag.Bag`)."""
    f = Features("flat", flat)
    return [
        Bag(base=LightGBM(features=f, seed=seed + 10), n=5),
        Bag(base=_extra_trees(f, seed + 20), n=5),
    ]

"""Tabular plan: the feature row as it is; linear models first, then boosting.

Learners, cheapest first: logistic regression on a stratified subsample of at most
500 rows (a first prediction within a second), the same on every row, then
histogram gradient boosting (one-vs-rest for multi-label). Standardisation replaces
NaN by the column median and adds a missing indicator for columns that had NaN
(see `models._preprocessor`); boosting takes NaN as it is.
"""

from __future__ import annotations

import numpy as np

from autodl.engine.learner import Features, Learner
from autodl.engine.models import Boosting, Linear
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


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The tabular learners, cheapest first."""
    f = Features("flat", flat)
    return [
        Linear(features=f, max_rows=500, seed=seed),
        Linear(features=f, seed=seed),
        Boosting(features=f, seed=seed),
    ]

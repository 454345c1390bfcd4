"""Tabular plan: the feature row as it is; linear models first, then trees.

Learners, cheapest first: logistic regression on a stratified subsample of at most 500
rows (a first prediction within a second), the same on every row, then extremely
randomised trees grown by doublings (`extra_trees.ExtraTrees`: one multi-output forest
for multi-label, leaves of at least 3 rows; leaves of 1 row for single-label), then
LightGBM grown by rounds (`boost.LightGBM`: NaN as missing; one booster per class for
multi-label), then a second, shallower LightGBM (7 leaves, rate 0.03, 60% of the columns
per tree); the loop's ensemble blends them where that helps on the hold-out. Once they
have converged, extra trees trying half the columns per split, then five-seed bags of
both LightGBM configurations (`later`). Standardisation replaces NaN by the column
median and adds a missing indicator for columns that had NaN (see
`linear._preprocessor`). On more than ``LARGE_ROWS`` training rows (`at_scale`): the
linear model on all rows uses a ``LARGE_ROWS`` subsample, and LightGBM starts right
after the first linear model: on a ``LARGE_ROWS`` subsample (early strong predictions),
then both configurations on all rows.

The second configuration was chosen on the tabular samples (three seeds averaged,
all training rows, test NAUC; cityweather / emailspam / moviegenres): the default
31 leaves 0.9994 / 0.8817 / 0.6151; 7 leaves 0.9995 / 0.8906 / 0.6268; 15 leaves
0.9994 / 0.8901 / 0.6182; the former second configuration (extra trees, balanced
class weights, small integers as categories) 0.9987 / 0.8698 / 0.6089. Balanced
weights lowered the NAUC on every sample and on synthetic data with 2-10% positives
(0.548 -> 0.522 at 2%), so they and categories stay options of `boost.LightGBM`.

Extra trees come before LightGBM because a first call is cheap (16 trees, timed) while
LightGBM's first call on many labels builds one booster per label. Their settings were
chosen on single forests of 300 trees (test NAUC; generated yeast-like 14 labels /
moviegenres / emailspam): square root of the columns per split, leaves of 1 row
0.371 / 0.522 / 0.869, of 3 rows 0.423 / 0.563 / 0.860, of 5 rows 0.406 / 0.562 /
0.838; half the columns with leaves of 3 rows 0.395 / 0.586 / 0.888, which `later` adds.
On multi-label data the forests have leaves of 3 rows (``only="multi-label"``); on
single-label data one forest with leaves of 1 row (``only="single-label"``): leaves of 3
rows cost emailspam's top-1 accuracy two points (0.936 -> 0.916 on the test set).
Single-label extra trees need the k-fold choice that tabular data under 4,000 rows gets
(`folds.rows_below`), and run only there (`at_scale`): on emailspam's hold-out of ~48
spam rows they scored NAUC 0.90 against LightGBM's 0.84 and were emitted alone (test
NAUC 0.869 against 0.878; five seeds at 60 s: top-1 0.935 and ALC 0.873, against 0.931
and 0.886 without them); with five folds the ensemble holds them beside LightGBM: top-1
0.938, ALC 0.890, final NAUC 0.895 (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from autodl.engine import folds
from autodl.engine.learner import Features, Learner
from autodl.engine.linear import Linear, cap_linear
from autodl.formats.types import DatasetSpec

if TYPE_CHECKING:  # pragma: no cover
    from autodl.engine.boost import LightGBM

LARGE_ROWS = 20_000  # training rows above which the plan changes (`at_scale`)


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


def _shallow(f: Features, seed: int) -> LightGBM:
    """The second LightGBM: 7-leaf trees, a slower rate, 60% of the columns per tree."""
    from autodl.engine.boost import LightGBM  # lazy: a saved linear model loads without LightGBM

    return LightGBM(features=f, learning_rate=0.03, num_leaves=7, feature_fraction=0.6, seed=seed)


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The tabular learners, cheapest first."""
    from autodl.engine.boost import LightGBM  # lazy: a saved linear model loads without LightGBM
    from autodl.engine.extra_trees import ExtraTrees

    f = Features("flat", flat)
    return [
        Linear(features=f, max_rows=500, seed=seed),
        Linear(features=f, seed=seed),
        ExtraTrees(features=f, min_samples_leaf=3, seed=seed, only="multi-label"),
        ExtraTrees(features=f, seed=seed, only="single-label"),
        LightGBM(features=f, seed=seed),
        _shallow(f, seed + 1),
    ]


def at_scale(learners: list[Learner], rows: int) -> list[Learner]:
    """The plan for ``rows`` training rows. From ``folds.rows_below("tabular")`` rows
    on (no k-fold choice) the single-label extra trees are left out: on a hold-out they
    were emitted for a lucky score (module doc), and a forest of fully grown trees is
    the plan's costliest in memory. Above ``LARGE_ROWS``, the linear model on all rows
    runs on a ``LARGE_ROWS`` subsample, and LightGBM (the strong learner) takes its
    turns right after the first, 500-row linear model, first on a ``LARGE_ROWS``
    subsample (a round costs a fraction of one on all rows: early strong predictions),
    then on all rows, before the others (issue 14: on 219k flights rows the linear model
    on all rows was slow and never competitive). The subsampled LightGBM gives its time
    away once the one on all rows beats it."""
    if rows >= folds.rows_below("tabular"):
        learners = [lr for lr in learners if getattr(lr, "only", None) != "single-label"]
    if rows <= LARGE_ROWS:
        return learners
    out = cap_linear(learners, LARGE_ROWS)
    from autodl.engine.boost import LightGBM  # lazy: a saved linear model loads without LightGBM

    strong = [lr for lr in out if isinstance(lr, LightGBM)]
    quick = [type(lr)(**{**lr.get_params(), "max_rows": LARGE_ROWS}) for lr in strong[:1]]
    return out[:1] + quick + strong + [lr for lr in out[1:] if lr not in strong]


def later(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """For the time left once the plan has converged: extra trees on half the columns
    per split, then both LightGBM configurations, five seeds each, averaged (`bag.Bag`)."""
    from autodl.engine.bag import Bag  # lazy: a saved linear model loads without LightGBM
    from autodl.engine.boost import LightGBM
    from autodl.engine.extra_trees import ExtraTrees

    f = Features("flat", flat)
    return [
        ExtraTrees(
            features=f,
            max_features=0.5,
            min_samples_leaf=3,
            n_trees=500,
            seed=seed + 30,
            only="multi-label",
        ),
        Bag(base=LightGBM(features=f, seed=seed + 10), n=5),
        Bag(base=_shallow(f, seed + 20), n=5),
    ]

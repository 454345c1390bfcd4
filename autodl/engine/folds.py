"""`Folds`: k-fold cross-validation of one learner, for choosing between candidates on
small data (issue 14, point 4).

On a few hundred rows a fifth held out is a few dozen rows, and the learner that scores
best there is often the luckiest: on a 51-clip video set, predictions chosen because
they scored NAUC 1.000 on ~10 held-out clips scored 0.914 and 0.935 on the test set,
against 0.992 for the first one. With fewer than ``KFOLD_ROWS`` training rows (twice
that for tabular data, `rows_below`) the loop wraps every learner in a `Folds`: ``k``
copies of it, copy ``i`` trained on every row outside fold ``i`` (`holdout.folds`:
stratified, in runs of rows for text), so each row gets an out-of-fold prediction from a
model that never saw it. Candidates are then compared on every training row instead of a
fifth (`holdout.prefer`: the paired noise shrinks as the square root of the rows), and
the test prediction is the mean of the ``k`` copies, each trained on (k-1)/k of the
rows: a bag that has seen every row, which is why a `Folds` is never refitted on all
rows (``refit_copies = 0``).

The first ``fit`` call trains copy 0 alone, so the first prediction costs what a
single hold-out model costs; its out-of-fold predictions then cover fold 0 only
(`oof` says which rows). Such partial records (the learners' first turns) are
compared with one another on fold 0's rows, and never replace a record on every row
(`holdout.prefer`). The next call trains the other copies up to the same number of
calls, and every later call advances every copy that has not converged, the time
shared equally.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from autodl.engine import holdout
from autodl.engine.learner import Instance, Interval, Learner, RawX, clone, parts_of
from autodl.formats.types import Arrays

FOLDS = 5  # copies, each trained without one fold
KFOLD_ROWS = 2000  # fewer training rows than this: every learner is cross-validated
#: ... times this in a domain whose learners are cheap at these sizes (`rows_below`)
CHEAP = {"tabular": 2}


def rows_below(domain: str) -> int:
    """The training rows under which ``domain``'s learners are cross-validated:
    ``KFOLD_ROWS``, twice that for tabular data. A tabular turn on a few thousand rows
    costs milliseconds, and a fifth of them still holds few rows of a rare class: on
    emailspam (2,534 rows, 9% spam) the hold-out's ~48 spam rows preferred extra
    trees alone (hold-out NAUC 0.90 against LightGBM's 0.84, test 0.869 against
    0.878), while five folds let an ensemble of both in (test NAUC 0.892-0.902 over five
    seeds, against 0.883-0.897 on a hold-out without extra trees; docs/benchmarks.md)."""
    return KFOLD_ROWS * CHEAP.get(domain, 1)


class Folds(Learner):
    """``k`` copies of ``base``, copy ``i`` fitted on the rows where ``assign != i``;
    `oof` gives their out-of-fold predictions, `predict_proba` their mean. ``base`` is a
    template and is never fitted; ``assign`` (fold of each row) must match the data."""

    _rules: ClassVar[dict[str, Any]] = {
        "base": Instance(Learner),
        "assign": Instance(np.ndarray),
        "k": Interval(int, 2),
    }
    refit_copies: ClassVar[int] = 0  # the copies' mean has seen every row: no refit

    def __init__(self, *, base: Learner, assign: np.ndarray, k: int = FOLDS):
        self.base = base
        self.assign = assign
        self.k = k

    @property
    def name(self) -> str:
        """The name of copy 0 once fitted (a learner's name may say its state: the
        template, never fitted, would say its first state forever), else the template's."""
        models = getattr(self, "_models", None)
        return models[0].name if models and self._calls[0] else self.base.name

    @property
    def progress(self) -> str:
        """``folds 1/5``: how many copies have been fitted so far."""
        calls = getattr(self, "_calls", np.zeros(self.k, int))
        return f"folds {int((calls > 0).sum())}/{self.k}"

    def _setup(self, data: Arrays, seconds: float) -> None:
        if len(self.assign) != len(data):
            raise ValueError(
                f"{self.name}: fold assignment has {len(self.assign)} rows, data {len(data)}."
            )
        self._models = [clone(self.base) for _ in range(self.k)]
        self._share_among_copies()
        # per fold: (rows to fit on, held-out rows, their indices); ``_sub`` is training
        # data, which a saved model leaves out (`export.TRANSIENT`)
        self._sub = [
            (*holdout.split(data, self.assign == i), np.flatnonzero(self.assign == i))
            for i in range(self.k)
        ]
        self._parts: list[tuple[RawX, np.ndarray]] = []  # each part of x and its rows
        for i, (fit, valid, idx) in enumerate(self._sub):
            self._parts += [(fit.x, np.flatnonzero(self.assign != i)), (valid.x, idx)]
        self._calls = np.zeros(self.k, int)
        self._oof: np.ndarray | None = None
        self._n = len(data)

    def _share_among_copies(self) -> None:
        """One `Learner.shared` dict for every copy: what they compute alike is made once;
        ``"copies"``, their count, for a learner that sizes itself to a share of the memory
        (`extra_trees.ExtraTrees`: k forests live at once)."""
        shared: dict = {"copies": len(self._models)}
        for m in self._models:
            m.shared = shared

    def _todo(self) -> list[int]:
        """Copy 0 alone on the first call; then the copies not converged with the fewest calls."""
        if not self._calls.any():
            return [0]
        open_ = [i for i in range(self.k) if self._calls[i] == 0 or not self._models[i].done]
        if not open_:
            return []
        least = min(self._calls[i] for i in open_)
        return [i for i in open_ if self._calls[i] == least]

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        todo = self._todo()
        for j, i in enumerate(todo):
            if j and time.monotonic() >= start + seconds:
                # the turn's time is spent: the other copies wait for the next turn (each
                # fit takes a minimum, a network's first epoch, whatever its share: four
                # copies on no time took a 3 s run to 6.9 s)
                break
            share = max(start + seconds - time.monotonic(), 0.0) / (len(todo) - j)
            model, (fit, valid, idx) = self._models[i], self._sub[i]
            model.threads = self.threads  # the loop's count (`Learner.threads`)
            with parts_of(data.x, self._parts):  # each row featurised once for every copy
                model.fit(fit, share)
                p = np.asarray(model.predict_proba(valid.x), np.float64)
            if self._oof is None:
                self._oof = np.full((self._n, p.shape[1]), np.nan)
            self._oof[idx] = p
            self._calls[i] += 1

    @property
    def done(self) -> bool:
        return (
            hasattr(self, "_models")
            and bool(self._calls.all())
            and all(m.done for m in self._models)
        )

    @property
    def complete(self) -> bool:
        """Every copy fitted: `oof` covers every row."""
        return hasattr(self, "_calls") and bool(self._calls.all())

    def oof(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows covered, sorted; their out-of-fold predictions) from the copies fitted so far."""
        if not hasattr(self, "_models") or self._oof is None:
            raise RuntimeError(f"{self.name}: call fit before oof.")
        covered = np.flatnonzero(np.isin(self.assign, np.flatnonzero(self._calls > 0)))
        return covered, self._oof[covered]

    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_models") or not self._calls.any():
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        if all(m.shared is None for m in self._models):  # a saved model, loaded
            self._share_among_copies()  # (`export.TRANSIENT`: ``shared`` is not saved)
        ready = [m for m, c in zip(self._models, self._calls, strict=True) if c > 0]
        return np.mean([np.asarray(m.predict_proba(x), np.float64) for m in ready], axis=0)


def wrap(learners: list[Learner], assign: np.ndarray) -> list[Learner]:
    """Each learner as a `Folds` on the fold assignment ``assign``."""
    return [Folds(base=lr, assign=assign, k=int(assign.max()) + 1) for lr in learners]

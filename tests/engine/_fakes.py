"""Fake learners for the loop's tests: their scores are chosen, not learnt, so a test
can say which prediction the loop must emit.

- `Lookup`: knows every training row's label (by its bytes) and mixes it with noise:
  ``quality`` of label, the rest uniform noise drawn from ``noise_seed``; rows it does
  not know (test rows) get the noise alone; ``power`` distorts each column (same
  ranking). Converges in one fit. Counts its ``fit`` calls in ``fits`` (class-wide).
- `Slow`: never converges, never beats anything: each turn sleeps a little and
  predicts a constant.
"""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from autodl.engine import Learner


def table(train) -> dict:
    """Each training row's bytes -> its labels (what `Lookup` knows)."""
    data = train.load()
    return {np.asarray(r).tobytes(): lab for r, lab in zip(data.x, data.labels, strict=True)}


class Lookup(Learner):
    """See the module doc. ``unknown``: the score of a row not in ``table`` (None: noise
    alone); ``quality`` 1 with ``unknown=0.5`` is an oracle on training rows."""

    fits: ClassVar[list[str]] = []  # the name of every fitted copy, in order

    def __init__(
        self,
        *,
        table: dict | None = None,
        power=(1.0,),
        name: str = "lookup",
        quality: float = 0.45,
        noise_seed: int | None = None,
        unknown: float | None = None,
    ):
        self.table, self.power, self._name = table, power, name
        self.quality, self.noise_seed, self.unknown = quality, noise_seed, unknown
        self._fits = 0

    @property
    def name(self) -> str:
        return self._name

    @property
    def done(self) -> bool:
        return self._fits >= 1

    def fit(self, data, seconds):
        self._fits += 1
        Lookup.fits.append(self._name)
        return self

    def predict_proba(self, x):
        k = len(next(iter(self.table.values())))
        known = [self.table.get(np.asarray(r).tobytes()) for r in x]
        seed = len(x) if self.noise_seed is None else self.noise_seed * 100_003 + len(x)
        noise = np.random.default_rng(seed).random((len(x), k))
        if self.unknown is not None:
            rows = np.array([np.full(k, self.unknown) if r is None else r for r in known])
            return (self.quality * rows + (1 - self.quality) * noise) ** np.asarray(self.power)
        rows = np.array([np.zeros(k) if r is None else r for r in known])
        return (self.quality * rows + (1 - self.quality) * noise) ** np.asarray(self.power)


class Slow(Learner):
    """Never converges and never beats anything: each turn sleeps a little, predicts a constant."""

    def __init__(self, *, k: int = 1):
        self.k = k

    @property
    def done(self) -> bool:
        return False

    def fit(self, data, seconds):
        time.sleep(min(seconds, 0.2))
        return self

    def predict_proba(self, x):
        return np.full((len(x), self.k), 0.5)

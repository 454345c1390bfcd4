"""Calibration of emitted scores on the hold-out: probabilities a user can act on.

A learner's scores may rank every column well (hold-out NAUC) and still be useless to
act on: issue 14's one-epoch CNN gave about 0.32/0.32/0.36 to every image, so its top
class was the same for all of them. Before a prediction is emitted, its scores ``s``
are mapped through ``z = a * logit(s) + b`` with slopes ``a > 0`` and one bias per
column, fitted on the hold-out predictions by maximum likelihood (a weak Gaussian
prior on ``log a`` and ``b`` keeps a tiny hold-out from making them extreme):

- **multi-class** (every row one class): one slope for the matrix (a temperature) and
  a bias per column, fitted on the softmax's log loss;
- **multi-label** (or one column): Platt scaling, a slope and a bias per column.

Two outputs come from the same ``z``. `Calibration.scores` is strictly increasing in
each column's scores, so every column's AUC (hence NAUC and ALC) is the uncalibrated
one: that is what the engine emits for the test split (the official ``.predict``
files): ``exp(z - max z)`` for multi-class (one constant for the whole matrix, so a
row divided by its sum is the users' probability), ``sigmoid(z)`` for multi-label.
`Calibration.probabilities` is what users get (the unlabelled split,
``unlabelled/predictions.csv``): ``softmax(z)`` for multi-class (rows sum to 1; the
per-row normalisation changes the order within a column, so it is never scored) and
``sigmoid(z)`` for multi-label.

In floating point, a map can round scores that were apart to one value (``sigmoid``
of a large ``z`` is 1.0, ``exp`` of a very negative one 0.0), which would change the
AUC; a column where that happens keeps its raw scores in `scores` (for multi-class the
whole matrix does, so that each row's top class stays comparable); they still rank as
before, and users' probabilities are calibrated regardless.

>>> import numpy as np
>>> y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
>>> s = 0.32 + 0.04 * y  # right ranking, useless top class
>>> c = fit(s, y, multiclass=True)
>>> bool((c.probabilities(s).argmax(axis=1) == y.argmax(axis=1)).all())
True
>>> np.allclose(c.probabilities(s).sum(axis=1), 1)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Weight (in rows) of the Gaussian prior on log(slope) and the biases: on a hold-out of
# 8-9 rows a weaker one (0.5) let the per-class biases flip the first prediction's top
# class (top-1 0.62 -> 0.48 on generated shapes); from ~100 rows on the data decide.
PRIOR = 10.0
FIT_EPS = 1e-12  # scores are clipped to [FIT_EPS, 1 - FIT_EPS] when fitting only
MAX_ITER = 50
SAME = 1e-12  # scores closer than this may be tied by the map (`_keeps_order`)
FIT_ROWS = 2000  # hold-out rows the calibration is fitted on, at most


@dataclass(frozen=True)
class Calibration:
    """``z = a * logit(s) + b`` (``a`` per column, > 0); ``identity``: leave scores as they
    are (no hold-out), users' multi-class rows then only normalised."""

    a: np.ndarray
    b: np.ndarray
    multiclass: bool
    identity: bool = False

    def logits(self, s: np.ndarray) -> np.ndarray:
        """``a * logit(s) + b``; a score of exactly 0 (1) gets the smallest (largest) finite
        logit of the matrix less (plus) 1, so the order is kept and nothing is infinite."""
        s = np.clip(np.asarray(s, np.float64), 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            lo = np.log(s) - np.log1p(-s)
        finite = np.isfinite(lo)
        if not finite.all():
            low, high = (lo[finite].min(), lo[finite].max()) if finite.any() else (0.0, 0.0)
            lo = np.where(s >= 1.0, high + 1.0, np.where(s <= 0.0, low - 1.0, lo))
        return self.a * lo + self.b

    def scores(self, s: np.ndarray) -> np.ndarray:
        """Calibrated scores, strictly increasing in ``s`` per column (each AUC unchanged)."""
        s = np.asarray(s, np.float64)
        if self.identity:
            return s
        z = self.logits(s)
        out = np.exp(z - z.max()) if self.multiclass else _sigmoid(z)
        kept = [_keeps_order(s[:, j], out[:, j]) for j in range(s.shape[1])]
        if self.multiclass and not all(kept):
            return s  # a raw column among calibrated ones would spoil each row's top class
        for j in np.flatnonzero(~np.array(kept, bool)):
            out[:, j] = s[:, j]
        return out

    def probabilities(self, s: np.ndarray) -> np.ndarray:
        """What users get: calibrated, rows summing to 1 for multi-class."""
        s = np.asarray(s, np.float64)
        if self.identity:
            if not self.multiclass:
                return s
            total = s.sum(axis=1, keepdims=True)
            return np.where(total > 0, s / np.where(total > 0, total, 1), 1 / s.shape[1])
        z = self.logits(s)
        return _softmax(z) if self.multiclass else _sigmoid(z)


def identity(k: int, multiclass: bool) -> Calibration:
    """No hold-out to fit on: scores kept, multi-class rows normalised for users."""
    return Calibration(np.ones(k), np.zeros(k), multiclass, identity=True)


def fit(s: np.ndarray, labels: np.ndarray, multiclass: bool) -> Calibration:
    """The calibration of hold-out scores ``s`` against ``labels`` (n, k)."""
    s = np.clip(np.asarray(s, np.float64), FIT_EPS, 1 - FIT_EPS)
    y = (np.asarray(labels) > 0.5).astype(np.float64)
    if len(s) > FIT_ROWS:  # plenty for k + 1 (or 2k) parameters, and 5x faster on 10k
        keep = np.random.default_rng(0).choice(len(s), FIT_ROWS, replace=False)
        s, y = s[keep], y[keep]
    n, k = s.shape
    if n == 0:
        return identity(k, multiclass)
    lo = np.log(s) - np.log1p(-s)
    lam = PRIOR / n
    if multiclass:
        x0 = np.zeros(1 + k)

        def loss(w):
            a, b = np.exp(w[0]), w[1:]
            z = a * lo + b
            z -= z.max(axis=1, keepdims=True)
            lse = np.log(np.exp(z).sum(axis=1, keepdims=True))
            logp = z - lse
            g = (np.exp(logp) - y) / n
            f = -(y * logp).sum() / n + lam * (w @ w)
            grad = np.concatenate([[a * (g * lo).sum()], g.sum(axis=0)]) + 2 * lam * w
            return f, grad

        from scipy.optimize import minimize  # lazy: loading a model needs no scipy

        w = minimize(loss, x0, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER}).x
        return Calibration(np.full(k, np.exp(w[0])), w[1:].copy(), True)

    x0 = np.zeros(2 * k)

    def loss_ml(w):
        a, b = np.exp(w[:k]), w[k:]
        z = a * lo + b
        # binary log loss, stable: log(1 + exp(-z)) for positives, log(1 + exp(z)) else
        f = (np.logaddexp(0, z) - y * z).sum() / n + lam * (w @ w)
        g = (_sigmoid(z) - y) / n
        grad = np.concatenate([a * (g * lo).sum(axis=0), g.sum(axis=0)]) + 2 * lam * w
        return f, grad

    from scipy.optimize import minimize  # lazy: loading a model needs no scipy

    w = minimize(loss_ml, x0, jac=True, method="L-BFGS-B", options={"maxiter": MAX_ITER}).x
    return Calibration(np.exp(w[:k]), w[k:].copy(), False)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _keeps_order(raw: np.ndarray, new: np.ndarray) -> bool:
    """True when ``new`` orders the rows as ``raw`` does and ties no two that were more
    than ``SAME`` apart (closer ones are rounding noise: extra trees' vote shares
    summed in another order differ by 1e-17)."""
    order = np.argsort(raw)
    dr, dn = np.diff(raw[order]), np.diff(new[order])
    return bool(np.all(dn >= 0) and np.all(dn[dr > SAME] > 0) and np.all(dn[dr == 0] == 0))

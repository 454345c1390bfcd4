"""The engine's hold-out: which training rows it keeps back, and how it scores on them.

``HOLDOUT`` of the rows (at most ``MAX_HOLDOUT``) are drawn, stratified on each row's
first positive class (`learner.stratified_indices`), so every class with two rows or
more is seen on both sides. The score is `holdout_nauc`: the official NAUC = 2 * AUC
- 1, macro over the classes with both values in the hold-out, or None when none has.

When the full train split replaces a quick prefix (loop step 1), `draw` keeps the
prefix's hold-out rows and draws anew among the rows the quick model never saw, so
its scores stay comparable and honest.

Text is held out in runs of consecutive rows (``blocks``): records cut from one
document sit together, and a row-wise hold-out rewards memorising documents
(convention2012: train and test are different speeches).

Besides NAUC, `judge` records on the hold-out what users act on (issue 14): the
calibrated probabilities' (`calibrate`) top-1 accuracy (multi-class) or macro F1 at
0.5 (multi-label), and their log loss, each with its per-row values so that two
candidates on the same rows can be compared with a paired noise estimate. `prefer`
says whether a candidate replaces the emitted prediction: clearly better NAUC (by
more than ``TIE_Z`` standard errors of the paired difference, DeLong's placements)
wins, clearly worse loses; within that noise it is a tie, broken by those metrics
(a candidate worse on one by more than ``ACT_Z`` standard errors is never emitted,
one better on one by more than ``WIN_Z`` and worse on none is), and otherwise kept
with the prediction already emitted (issue 14.4: a higher NAUC within the noise is
luck as often as not, and on small data switching on it lowered the test score).

On small data (`folds`) the "hold-out" is every training row, each predicted by the
fold model that did not see it; `folds` deals the rows to folds. A record on some
folds only (``Judged.rows``: a learner's first turn, fold 0) never replaces one on
every row, and is compared with another partial one on the rows both cover; one on
every row is compared with an emitted partial record on that record's rows
(`Judged.on`).

>>> import numpy as np
>>> labels = np.eye(2)[np.arange(10) % 2]
>>> int(draw(labels, np.random.default_rng(0)).sum())
2
>>> holdout_nauc(labels, labels)
1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autodl.engine import calibrate
from autodl.engine.learner import stratified_indices, take
from autodl.formats.types import Arrays
from autodl.scoring.metrics import is_multiclass, nauc_or_none

HOLDOUT = 0.2
MAX_HOLDOUT = 10_000
BLOCKS = 20  # runs of consecutive rows per class for a block hold-out (text)
TIE_Z = 2.0  # NAUC differences within this many standard errors are ties
ACT_Z = 1.0  # a tie: a candidate worse on accuracy/F1 or log loss by more than this loses
#: ... and one better on one of them by more than this (and worse on none) wins: a gain
#: must beat the noise as NAUC's does (at 1 standard error, a candidate of the same
#: quality won about one tie in four on 300 rows, issue 14.4)
WIN_Z = TIE_Z
#: a tie (neither clearly better nor worse) stays with the emitted prediction; False: the
#: rule before issue 14.4 (the higher NAUC wins), kept for bench/small_runs.py's baseline
KEEP_TIES = True
BOOT = 64  # bootstrap draws for the noise of a macro F1 difference (multi-label)
LOSS_EPS = 1e-15


def holdout_nauc(solution: np.ndarray, prediction: np.ndarray) -> float | None:
    """2 * macro AUC - 1 over the columns of ``solution`` with both values; None if none.

    The official metric's own tied-rank AUC (`autodl.scoring.metrics`), which is also
    7-24x faster than scikit-learn's ``roc_auc_score`` on hold-out sizes (32 x 10: 0.28
    against 6.7 ms; 2000 x 100: 14 against 97 ms), and ensemble selection calls it
    for every candidate at every step. Labels are read as positive above 0.5."""
    return nauc_or_none((np.asarray(solution) > 0.5).astype(np.float64), prediction)


def draw(
    labels: np.ndarray,
    rng: np.random.Generator,
    prefix: np.ndarray | None = None,
    blocks: bool = False,
) -> np.ndarray:
    """Boolean hold-out mask; rows beyond ``prefix`` (an earlier mask) are drawn anew.

    ``blocks``: hold out runs of consecutive rows of a class instead of single rows
    (see the module doc)."""
    start = 0 if prefix is None else len(prefix)
    mask = np.zeros(len(labels), bool)
    if prefix is not None:
        mask[:start] = prefix
    rest = labels[start:]
    n_take = max(0, min(MAX_HOLDOUT - int(mask.sum()), round(HOLDOUT * len(rest))))
    if not blocks:
        mask[start + stratified_indices(rest, n_take, rng)] = True
        return mask
    key = np.where(rest.max(axis=1) > 0.5, rest.argmax(axis=1), -1)
    for g in np.unique(key):
        rows = np.flatnonzero(key == g)
        runs = np.array_split(rows, max(1, min(len(rows) // 2, BLOCKS)))
        want = round(n_take * len(rows) / max(len(rest), 1))
        taken = 0
        for r in rng.permutation(len(runs)):
            if taken >= want or taken + len(runs[r]) >= len(rows):
                break
            mask[start + runs[r]] = True
            taken += len(runs[r])
    return mask


def folds(labels: np.ndarray, k: int, rng: np.random.Generator, blocks: bool = False) -> np.ndarray:
    """The fold (0 .. k-1) of each row for k-fold cross-validation (`folds.Folds`):
    stratified on each row's first positive class (each class's rows dealt round the
    folds from a random fold on, in a random order); ``blocks``: each class's rows cut
    into ``k`` runs of consecutive rows, one per fold (see the module doc)."""
    labels = np.asarray(labels)
    key = np.where(labels.max(axis=1) > 0.5, labels.argmax(axis=1), -1)
    out = np.zeros(len(labels), np.int64)
    offset = int(rng.integers(k))
    for g in np.unique(key):
        rows_ = np.flatnonzero(key == g)
        if blocks:
            for f, run in zip(rng.permutation(k), np.array_split(rows_, k), strict=True):
                out[run] = f
        else:
            out[rng.permutation(rows_)] = (offset + np.arange(len(rows_))) % k
            offset = (offset + len(rows_)) % k  # the next class starts where this one ended
    return out


def rows(a: Arrays, mask: np.ndarray) -> Arrays:
    """The rows of ``a`` where ``mask`` is True."""
    idx = np.flatnonzero(mask)
    return Arrays(a.ids[idx], take(a.x, idx), a.labels[idx])


def split(data: Arrays, mask: np.ndarray) -> tuple[Arrays, Arrays]:
    """(rows to fit on, hold-out rows) of ``data`` for a hold-out ``mask``."""
    return rows(data, ~mask), rows(data, mask)


@dataclass
class Judged:
    """A candidate's record on the hold-out (`judge`): NAUC, its calibration, and per-row
    values for paired comparisons with another candidate on the same rows."""

    nauc: float | None
    calibration: calibrate.Calibration
    top1: float  # accuracy (multi-class) or macro F1 at 0.5 (multi-label), calibrated
    log_loss: float
    hits: np.ndarray  # per row: top-1 right (multi-class); per row and column: predicted 1
    losses: np.ndarray  # per row: log loss of the calibrated probabilities
    places: np.ndarray  # per row and column: DeLong placement (NaN: column left out)
    labels: np.ndarray  # the hold-out labels as booleans
    raw: np.ndarray | None = None  # the uncalibrated predictions (for `on`)
    #: k-fold records (`folds`): the training rows covered so far when not all (None: all)
    rows: np.ndarray | None = None

    def on(self, rows: np.ndarray) -> Judged:
        """This record judged again on ``rows`` only (rows of the split, sorted), which it
        must cover: how a record on every row meets one on a fold (`prefer`)."""
        pos = rows if self.rows is None else np.searchsorted(self.rows, rows)
        return judge(self.labels[pos], self.raw[pos], self.calibration.multiclass, rows=rows)

    def summary(self) -> str:
        what = "top-1" if self.calibration.multiclass else "F1"
        return f"{what} {self.top1:.3f}, log loss {self.log_loss:.3f}"


def multiclass(labels: np.ndarray) -> bool:
    """True when every row has exactly one class (and there are two or more)."""
    return np.shape(labels)[1] > 1 and len(labels) > 0 and is_multiclass(labels > 0.5)


def judge(
    labels: np.ndarray,
    p: np.ndarray,
    multi: bool,
    nauc: float | None = None,
    rows: np.ndarray | None = None,
) -> Judged:
    """Calibrate hold-out predictions ``p`` and record what `prefer` compares; ``rows``:
    the training rows they are for, when a k-fold record does not cover every row."""
    y = np.asarray(labels) > 0.5
    p = np.asarray(p, np.float64)
    if nauc is None:
        nauc = holdout_nauc(y, p)
    cal = calibrate.fit(p, y, multi)
    q = np.clip(cal.probabilities(p), LOSS_EPS, 1 - LOSS_EPS)
    if multi:
        hits = q.argmax(axis=1) == y.argmax(axis=1)
        losses = -np.log(q[y])
        top1 = float(hits.mean())
    else:
        hits = q > 0.5
        losses = -(np.log(q) * y + np.log1p(-q) * ~y).mean(axis=1)
        top1 = float(_f1(hits, y).mean())
    places = _placements(y, p)
    return Judged(nauc, cal, top1, float(losses.mean()), hits, losses, places, y, p, rows)


def prefer(new: Judged, old: Judged | None, margin: float = 0.0) -> bool:
    """True when ``new`` should replace the emitted ``old`` (see the module doc); an
    ensemble must gain ``margin`` of NAUC where the noise does not decide."""
    if old is None:
        return True
    if new.nauc is None:
        return False
    if old.nauc is None:
        return True
    if old.rows is not None or new.rows is not None:  # k-fold records (`folds`)
        if old.rows is None or (new.rows is not None and not np.isin(old.rows, new.rows).all()):
            return False  # never judged on fewer rows than the emitted prediction
        if new.rows is None or len(new.rows) != len(old.rows):
            new = new.on(old.rows)  # compared on the emitted prediction's rows
        if new.nauc is None:
            return False
    d = new.nauc - old.nauc
    if new.labels.shape != old.labels.shape:  # not the same rows: NAUC alone
        return d > margin
    band = TIE_Z * _nauc_noise(new, old)
    if d > max(band, margin):
        return True
    if d < -band:
        return False
    worse, better = _actions(new, old)
    if worse:
        return False
    return better or (not KEEP_TIES and d > margin)


def _actions(new: Judged, old: Judged) -> tuple[bool, bool]:
    """(worse on a metric users act on by more than noise, better on one)."""
    diffs = [(old.losses - new.losses, None)]  # positive: new is better
    if new.calibration.multiclass:
        diffs.append((new.hits.astype(np.float64) - old.hits, None))
    else:
        diffs.append((None, _f1_diffs(new, old)))
    worse = better = False
    for per_row, boot in diffs:
        if per_row is not None:
            m = float(per_row.mean())
            se = float(per_row.std(ddof=1) / np.sqrt(len(per_row))) if len(per_row) > 1 else 0.0
        else:
            m, se = boot
        worse |= m < -ACT_Z * se and m < 0
        better |= m > WIN_Z * se and m > 0
    return worse, better


_WEIGHTS: dict[int, np.ndarray] = {}


def _f1_diffs(new: Judged, old: Judged) -> tuple[float, float]:
    """Macro F1 difference (new - old) and its bootstrap standard error (paired rows)."""
    n = len(new.labels)
    if n not in _WEIGHTS:
        _WEIGHTS[n] = np.random.default_rng(0).poisson(1.0, (BOOT, n)).astype(np.float64)
    w = np.vstack([np.ones((1, n)), _WEIGHTS[n]])
    f_new = _f1(new.hits, new.labels, w).mean(axis=1)
    f_old = _f1(old.hits, old.labels, w).mean(axis=1)
    d = f_new - f_old
    return float(d[0]), float(d[1:].std())


def _f1(pred: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Per-column F1 (rows of ``w``: row weights; columns with no positive, predicted or
    true, count as 1)."""
    pred, y = np.asarray(pred, bool), np.asarray(y, bool)
    w = np.ones((1, len(y))) if w is None else w
    tp = w @ (pred & y)
    fp = w @ (pred & ~y)
    fn = w @ (~pred & y)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 1.0)


def _placements(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """DeLong's placement of each row in its column: for a positive, the share of
    negatives scored below it (ties half); for a negative, the share of positives scored
    above it. A column's AUC is the mean over its positives (or its negatives). One
    sort per column: counts of the other class before and within each run of ties."""
    n = len(y)
    n_pos = y.sum(axis=0)
    both = (n_pos > 0) & (n_pos < n)
    out = np.full(p.shape, np.nan)
    if not both.any():
        return out
    yb, pb = y[:, both], p[:, both]
    order = np.argsort(pb, axis=0)  # ties are handled by runs, not by the order
    sv = np.take_along_axis(pb, order, 0)
    ys = np.take_along_axis(yb, order, 0)
    idx = np.arange(n)[:, None]
    first = np.ones(sv.shape, bool)
    first[1:] = sv[1:] != sv[:-1]
    last = np.ones(sv.shape, bool)
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, idx, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, idx, n - 1)[::-1], axis=0)[::-1]
    neg = np.vstack([np.zeros((1, ys.shape[1])), np.cumsum(~ys, axis=0)])  # negatives in [0, i)
    pos = np.vstack([np.zeros((1, ys.shape[1])), np.cumsum(ys, axis=0)])
    col = np.arange(ys.shape[1])
    neg_below = neg[start, col] + 0.5 * (neg[end + 1, col] - neg[start, col])
    pos_above = (pos[-1] - pos[end + 1, col]) + 0.5 * (pos[end + 1, col] - pos[start, col])
    npos, nneg = n_pos[both], n - n_pos[both]
    placed = np.where(ys, neg_below / nneg, pos_above / npos)
    back = np.empty_like(placed)
    np.put_along_axis(back, order, placed, 0)
    out[:, both] = back
    return out


def _nauc_noise(new: Judged, old: Judged) -> float:
    """Standard error of the paired NAUC difference: each row's influence on the macro
    AUC difference (DeLong's structural components, across columns at once)."""
    d = new.places - old.places
    cols = ~np.isnan(d).any(axis=0)
    if not cols.any():
        return 0.0
    d, y = d[:, cols], new.labels[:, cols]
    n_pos, n_neg = y.sum(axis=0), (~y).sum(axis=0)
    mean_pos = np.where(y, d, 0).sum(axis=0) / n_pos
    infl = np.where(y, (d - mean_pos) / n_pos, (d - mean_pos) / n_neg)
    return float(2 * np.sqrt((infl.sum(axis=1) ** 2).sum()) / cols.sum())

"""Where a model fails: confusion matrix, per-class table, ROC and precision-recall curves.

All of it for one prediction against the solution (the run's last counted one), as
pure NumPy functions whose figures equal scikit-learn's:

- **multi-class** (every solution row one-hot): the predicted class is the row's
  argmax (the first column on a tie); `confusion_matrix` counts true class (rows)
  against predicted class (columns) and `per_class` gives precision, recall and F1 at
  that argmax;
- **multi-label** (or a single column): each column is thresholded on its own at
  `MULTILABEL_THRESHOLD`. The scorer never sees the engine's hold-out, so the threshold
  is the one the engine's calibration implies: emitted multi-label scores are Platt-
  calibrated probabilities (``sigmoid(z)``, `autodl.engine.calibrate`), fitted on the
  hold-out, so 0.5 is where a label becomes more likely than not, by the hold-out's own
  evidence (the fewest expected errors). It is recorded in each row's ``threshold``. `label_confusion` gives each label's 2x2 and
  `error_cooccurrence` how often two labels are wrong on the same example.

``auc`` is the official tie-ranked AUC (`metrics.auc_per_class`), ``average_precision``
is scikit-learn's (sum over thresholds of the recall step times the precision).
Precision, recall, F1 and AP are None (null) where they are undefined (nothing
predicted, no positive example), as scikit-learn gives with ``zero_division=nan``.

Curves are bounded: at most `MAX_POINTS` points per class (fewer when there are many
classes, `points_per_class`), every kept point one of scikit-learn's curve points,
ends included; the macro curves average the classes that have both positives and
negatives on a fixed grid.

>>> import numpy as np
>>> sol = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0]])
>>> pred = np.array([[0.8, 0.1, 0.1], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7], [0.2, 0.7, 0.1]])
>>> confusion_matrix(sol, pred)
[[1, 0, 0], [1, 1, 0], [0, 0, 1]]
>>> [row["recall"] for row in per_class(sol, pred, [1.0, 0.75, 1.0], multiclass=True)]
[1.0, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autodl.scoring._arrays import check_prediction, check_solution

__all__ = [
    "MATRIX_MAX_CLASSES",
    "MAX_POINTS",
    "MULTILABEL_THRESHOLD",
    "confusion_matrix",
    "curves",
    "error_cooccurrence",
    "label_confusion",
    "per_class",
    "top_confusions",
]

MULTILABEL_THRESHOLD = 0.5
MATRIX_MAX_CLASSES = 50  # a matrix wider than this is shown as its top-confused pairs
MAX_POINTS = 200  # curve points kept per class
_CURVE_BUDGET = 40_000  # points per curve kind over all classes (bounds curves.json)
_MIN_POINTS = 20
_GRID = 201  # points of the macro curves
_TOP_PAIRS = 25
_DIGITS = 6  # decimals kept in curves.json
_CHUNK_ELEMENTS = 2_000_000  # scores sorted per NumPy call (bounds the temporary arrays)


def predicted_classes(prediction: np.ndarray) -> np.ndarray:
    """The argmax of each row (the first column on a tie)."""
    return np.argmax(prediction, axis=1)


def confusion_matrix(solution: np.ndarray, prediction: np.ndarray) -> list[list[int]]:
    """Counts of true class (rows) against the argmax class (columns); multi-class only."""
    solution = check_solution(solution)
    prediction = check_prediction(prediction, solution.shape)
    c = solution.shape[1]
    true = np.argmax(solution, axis=1)
    flat = np.bincount(true * c + predicted_classes(prediction), minlength=c * c)
    return flat.reshape(c, c).tolist()


def top_confusions(matrix: Sequence[Sequence[int]], limit: int = _TOP_PAIRS) -> list[dict]:
    """The largest off-diagonal cells: ``{true, predicted, count, share}`` (share of the row).

    >>> top_confusions([[5, 3], [1, 4]])
    [{'true': 0, 'predicted': 1, 'count': 3, 'share': 0.375}, {'true': 1, 'predicted': 0, 'count': 1, 'share': 0.2}]
    """
    m = np.asarray(matrix, dtype=np.int64)
    if m.size == 0:
        return []
    off = m.copy()
    np.fill_diagonal(off, 0)
    rows = m.sum(axis=1)
    order = np.argsort(-off, axis=None, kind="stable")[:limit]
    out = []
    for flat in order:
        i, j = divmod(int(flat), m.shape[1])
        if off[i, j] <= 0:
            break
        out.append(
            {
                "true": i,
                "predicted": j,
                "count": int(off[i, j]),
                "share": float(off[i, j] / rows[i]),
            }
        )
    return out


def _decisions(prediction: np.ndarray, multiclass: bool) -> np.ndarray:
    """0/1 decisions: the argmax (multi-class) or each score against the threshold."""
    if multiclass:
        out = np.zeros(prediction.shape, dtype=bool)
        out[np.arange(prediction.shape[0]), predicted_classes(prediction)] = True
        return out
    return prediction >= MULTILABEL_THRESHOLD


def _counts(solution: np.ndarray, prediction: np.ndarray, multiclass: bool):
    truth = solution == 1
    decided = _decisions(prediction, multiclass)
    tp = np.sum(truth & decided, axis=0)
    fp = np.sum(~truth & decided, axis=0)
    fn = np.sum(truth & ~decided, axis=0)
    tn = np.sum(~truth & ~decided, axis=0)
    return tp, fp, fn, tn


def _ratio(num: int, den: int) -> float | None:
    return float(num / den) if den else None


def per_class(
    solution: np.ndarray,
    prediction: np.ndarray,
    aucs: Sequence[float | None],
    *,
    multiclass: bool,
    label_names: Sequence[str] | None = None,
    aps: Sequence[float | None] | None = None,
) -> list[dict]:
    """One row per class, in class order: ``{label, support, precision, recall, f1, auc,
    average_precision, threshold}``; ``threshold`` is None for multi-class (argmax)."""
    solution = check_solution(solution)
    prediction = check_prediction(prediction, solution.shape)
    tp, fp, fn, _ = _counts(solution, prediction, multiclass)
    if aps is None:
        aps = [_ap(tps, fps) for _, tps, fps in _columns(solution, prediction)]
    rows = []
    for k in range(solution.shape[1]):
        auc = aucs[k] if k < len(aucs) else None
        rows.append(
            {
                "label": label_names[k] if label_names is not None else f"class {k}",
                "support": int(tp[k] + fn[k]),
                "precision": _ratio(tp[k], tp[k] + fp[k]),
                "recall": _ratio(tp[k], tp[k] + fn[k]),
                "f1": _ratio(2 * tp[k], 2 * tp[k] + fp[k] + fn[k]),
                "auc": None if auc is None or np.isnan(auc) else float(auc),
                "average_precision": aps[k],
                "threshold": None if multiclass else MULTILABEL_THRESHOLD,
            }
        )
    return rows


def label_confusion(solution: np.ndarray, prediction: np.ndarray) -> list[dict]:
    """Each label's 2x2 at `MULTILABEL_THRESHOLD`: ``{tp, fp, fn, tn}`` (multi-label)."""
    tp, fp, fn, tn = _counts(solution, prediction, multiclass=False)
    return [
        {"tp": int(a), "fp": int(b), "fn": int(c), "tn": int(d)}
        for a, b, c, d in zip(tp, fp, fn, tn, strict=True)
    ]


def error_cooccurrence(solution: np.ndarray, prediction: np.ndarray) -> list[list[int]]:
    """Examples on which label i and label j are both wrong (the diagonal: label i's errors)."""
    wrong = ((solution == 1) != _decisions(prediction, multiclass=False)).astype(np.int64)
    return (wrong.T @ wrong).tolist()


# ------------------------------------------------------------------ curves


def _counts_at_thresholds(truth: np.ndarray, scores: np.ndarray):
    """Cumulative true and false positives at each distinct score of a column sorted from
    the highest score down (``truth`` in the same order)."""
    last = np.flatnonzero(scores[1:] != scores[:-1])
    last = np.append(last, truth.size - 1)
    tps = np.cumsum(truth, dtype=np.float64)[last]
    return tps, (1 + last) - tps


def _columns(solution: np.ndarray, prediction: np.ndarray):
    """``(k, tps, fps)`` for each column, sorting a block of columns per NumPy call (the
    order of equal scores does not matter: counts are taken at the end of each group)."""
    n, c = solution.shape
    chunk = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, c, chunk):
        block = np.ascontiguousarray(prediction[:, start : start + chunk].T)
        order = np.argsort(-block, axis=1)
        scores = np.take_along_axis(block, order, axis=1)
        truth = np.take_along_axis(solution[:, start : start + chunk].T == 1, order, axis=1)
        for i in range(block.shape[0]):
            yield (start + i, *_counts_at_thresholds(truth[i], scores[i]))


def _roc(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if tps.size > 2:  # scikit-learn's drop_intermediate: no point inside a straight run
        keep = np.concatenate(([True], (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), [True]))
        tps, fps = tps[keep], fps[keep]
    tps, fps = np.concatenate(([0.0], tps)), np.concatenate(([0.0], fps))
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr


def _pr(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    precision = tps / (tps + fps)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.concatenate(([0.0], recall)), np.concatenate(([1.0], precision))


def _ap(tps: np.ndarray, fps: np.ndarray) -> float | None:
    if tps[-1] == 0:
        return None
    recall, precision = _pr(tps, fps)
    return float(np.sum(np.diff(recall) * precision[1:]))


def points_per_class(n_classes: int) -> int:
    """Curve points kept per class: `MAX_POINTS`, fewer when many classes share the budget."""
    return max(_MIN_POINTS, min(MAX_POINTS, _CURVE_BUDGET // max(1, n_classes)))


def _downsample(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``n`` of the points, ends kept, spread evenly along the curve's length."""
    if x.size <= n:
        return x, y
    step = np.hypot(np.diff(x), np.diff(y))
    along = np.r_[0.0, np.cumsum(step)]
    targets = np.linspace(0.0, along[-1], n)
    idx = np.unique(np.r_[0, np.searchsorted(along, targets), x.size - 1].clip(0, x.size - 1))
    while idx.size > n:  # ties in the search can leave a few extra: thin evenly
        idx = np.unique(np.r_[idx[:-1:2], idx[-1]])
    return x[idx], y[idx]


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), _DIGITS) for v in values]


def curves(
    solution: np.ndarray,
    prediction: np.ndarray,
    *,
    label_names: Sequence[str] | None = None,
    aucs: Sequence[float | None] = (),
) -> dict:
    """ROC and PR curves of each class that has positives and negatives, and the macro
    curves: the JSON-ready content of curves.json. ``average_precision`` holds every
    class's AP (None without a positive example), for `per_class`: one sort per column
    serves both."""
    solution = check_solution(solution)
    prediction = check_prediction(prediction, solution.shape)
    n, c = solution.shape
    keep = points_per_class(c)
    grid = np.linspace(0.0, 1.0, _GRID)
    classes, roc_tprs, pr_precisions, aps = [], [], [], []
    for k, tps, fps in _columns(solution, prediction):
        aps.append(_ap(tps, fps))
        if tps[-1] == 0 or fps[-1] == 0:  # constant in the solution: no curve
            continue
        fpr, tpr = _roc(tps, fps)
        recall, precision = _pr(tps, fps)
        roc_tprs.append(np.interp(grid, fpr, tpr))
        # The step PR curve (as average precision reads it): at recall r, the precision
        # of the first threshold that reaches r.
        at = np.searchsorted(recall, grid, side="left").clip(0, recall.size - 1)
        pr_precisions.append(np.where(grid == 0, 1.0, precision[at]))
        rx, ry = _downsample(fpr, tpr, keep)
        px, py = _downsample(recall, precision, keep)
        classes.append(
            {
                "index": k,
                "label": label_names[k] if label_names is not None else f"class {k}",
                "auc": aucs[k] if k < len(aucs) else None,
                "average_precision": aps[k],
                "roc": {"fpr": _rounded(rx), "tpr": _rounded(ry), "points": int(fpr.size)},
                "pr": {
                    "recall": _rounded(px),
                    "precision": _rounded(py),
                    "points": int(recall.size),
                },
            }
        )
    macro = None
    if classes:
        mean_tpr = np.mean(roc_tprs, axis=0)
        mean_tpr[0] = 0.0
        mean_precision = np.mean(pr_precisions, axis=0)
        macro = {
            "roc": {
                "fpr": _rounded(grid),
                "tpr": _rounded(mean_tpr),
                "auc": float(np.trapezoid(mean_tpr, grid)),
            },
            "pr": {
                "recall": _rounded(grid),
                "precision": _rounded(mean_precision),
                "average_precision": float(np.sum(np.diff(grid) * mean_precision[1:])),
            },
        }
    return {
        "n_classes": c,
        "max_points": keep,
        "classes": classes,
        "left_out": sorted(set(range(c)) - {row["index"] for row in classes}),
        "macro": macro,
        "average_precision": aps,
    }

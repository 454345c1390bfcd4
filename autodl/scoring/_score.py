"""Scoring a run: from a solution and timed predictions to a `ScoreResult`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autodl.errors import ScoringError
from autodl.scoring import diagnostics
from autodl.scoring._arrays import check_prediction, check_solution, read_array
from autodl.scoring._result import ScoreResult
from autodl.scoring.curve import T0, alc, read_prediction_folder
from autodl.scoring.metrics import (
    accuracy,
    auc_per_class,
    is_multiclass,
    left_out_reason,
    nauc_from_aucs,
    valid_columns,
)


class Scorer:
    """Scores predictions one at a time, as they arrive (ingestion scores live with it).

    >>> s = Scorer(np.array([[1, 0], [0, 1]]), time_budget=60)
    >>> s.add(np.array([[0.9, 0.1], [0.2, 0.8]]), timestamp=3.0)
    1.0
    >>> round(s.result().alc, 4)
    0.9296
    """

    def __init__(
        self,
        solution: np.ndarray,
        time_budget: float,
        *,
        label_names: Sequence[str] | None = None,
        task: str | None = None,
        t0: float = T0,
        name: str = "solution",
    ):
        self.solution = check_solution(solution, name)
        if not time_budget or time_budget <= 0:
            raise ScoringError(
                f"time budget must be a positive number of seconds, got {time_budget!r}."
            )
        n_classes = self.solution.shape[1]
        if label_names is not None and len(label_names) != n_classes:
            raise ScoringError(
                f"{len(label_names)} label names for a solution of {n_classes} columns. "
                "Give one name per solution column, in column order."
            )
        self.time_budget = float(time_budget)
        self.t0 = t0
        self.task = task
        self.label_names = list(label_names) if label_names is not None else None
        self.multiclass = is_multiclass(self.solution)
        valid = set(valid_columns(self.solution).tolist())
        self.ignored = [c for c in range(n_classes) if c not in valid]
        self.timestamps: list[float] = []
        self.nauc: list[float] = []
        self.accuracy: list[float] = []
        self._last_aucs: np.ndarray | None = None
        self._last_prediction: np.ndarray | None = None
        self._last_index: int | None = None
        self._diagnosed: tuple[int, dict] | None = None

    def add(self, prediction: np.ndarray, timestamp: float, name: str | None = None) -> float:
        """Score one prediction made ``timestamp`` seconds after the start; return its NAUC.

        ``name`` is the file it was read from, for error messages (lines are then
        counted from 1 as in an editor).
        """
        unit = "line" if name else "row"
        name = name or f"prediction {len(self.nauc)}"
        prediction = check_prediction(prediction, self.solution.shape, name, unit)
        if self.timestamps and timestamp < self.timestamps[-1]:
            raise ScoringError(
                f"{name} is dated {timestamp} s, before the previous prediction "
                f"({self.timestamps[-1]} s). Predictions must come in the order they were made."
            )
        aucs = auc_per_class(self.solution, prediction)
        score = nauc_from_aucs(aucs)
        self.timestamps.append(float(timestamp))
        self.nauc.append(score)
        if self.multiclass:
            self.accuracy.append(accuracy(self.solution, prediction))
        if timestamp <= self.time_budget:
            self._last_aucs = aucs
            self._last_prediction = prediction
            self._last_index = len(self.nauc) - 1
        return score

    def _diagnostics(self, aucs: list[float | None]) -> dict:
        """The diagnostics of the last counted prediction, computed once per such prediction
        (the service asks for a running job's result at every poll)."""
        if self._last_prediction is None:
            return {}
        if self._diagnosed is not None and self._diagnosed[0] == self._last_index:
            return self._diagnosed[1]
        sol, pred = self.solution, self._last_prediction
        curves = diagnostics.curves(sol, pred, label_names=self.label_names, aucs=aucs)
        rows = diagnostics.per_class(
            sol,
            pred,
            aucs,
            multiclass=self.multiclass,
            label_names=self.label_names,
            aps=curves.pop("average_precision"),
        )
        out: dict = {"diagnosed_prediction": self._last_index, "per_class": rows}
        if self.multiclass:
            matrix = diagnostics.confusion_matrix(sol, pred)
            out.update(confusion_matrix=matrix, top_confusions=diagnostics.top_confusions(matrix))
        else:
            out.update(
                label_confusion=diagnostics.label_confusion(sol, pred),
                error_cooccurrence=diagnostics.error_cooccurrence(sol, pred),
            )
        out["curves"] = {"task": self.task, "diagnosed_prediction": self._last_index, **curves}
        self._diagnosed = (self._last_index, out)
        return out

    def result(self, diagnose: bool = True) -> ScoreResult:
        """The scores so far; ``diagnose=False`` leaves out the diagnostics (confusion
        matrix, per-class table, curves: about one more NAUC's work per new prediction),
        for a live curve polled while the run goes on."""
        late = [i for i, t in enumerate(self.timestamps) if t > self.time_budget]
        counted = [i for i in range(len(self.nauc)) if i not in late]
        aucs = self._last_aucs
        aucs_list = [] if aucs is None else [None if np.isnan(a) else float(a) for a in aucs]
        return ScoreResult(
            alc=alc(self.timestamps, self.nauc, self.time_budget, self.t0),
            final_nauc=self.nauc[counted[-1]] if counted else None,
            nauc=list(self.nauc),
            timestamps=list(self.timestamps),
            time_budget=self.time_budget,
            accuracy=list(self.accuracy) if self.multiclass else None,
            ignored_classes=list(self.ignored),
            ignored_reasons=[left_out_reason(self.solution, c) for c in self.ignored],
            auc_per_class=aucs_list,
            late=late,
            task=self.task,
            label_names=self.label_names,
            t0=self.t0,
            **(self._diagnostics(aucs_list) if diagnose else {}),
        )


def score_arrays(
    solution: np.ndarray,
    predictions: Sequence[np.ndarray],
    timestamps: Sequence[float],
    time_budget: float,
    *,
    label_names: Sequence[str] | None = None,
    task: str | None = None,
) -> ScoreResult:
    """Score in-memory predictions made at ``timestamps`` (seconds after the start).

    >>> sol = np.array([[1, 0], [0, 1], [1, 0]])
    >>> r = score_arrays(sol, [np.full((3, 2), 0.5), sol * 0.9], [1.0, 10.0], 60)
    >>> r.nauc, round(r.alc, 4)
    ([0.0, 1.0], 0.7776)
    """
    if len(predictions) != len(timestamps):
        raise ScoringError(f"{len(predictions)} predictions but {len(timestamps)} timestamps.")
    scorer = Scorer(solution, time_budget, label_names=label_names, task=task)
    for prediction, t in zip(predictions, timestamps, strict=True):
        scorer.add(prediction, t)
    return scorer.result()


def score(
    solution: str | Path | np.ndarray,
    predictions: str | Path,
    time_budget: float | None = None,
    *,
    label_names: Sequence[str] | None = None,
) -> ScoreResult:
    """Score a prediction folder in the official layout against a solution.

    ``solution`` is a ``<task>.solution`` file (the task name is its name up to
    the first '.') or an array. The time budget is ``time_budget`` if given,
    else start.txt's ``time_budget``. Predictions are read one at a time.
    """
    task = None
    if isinstance(solution, str | Path):
        solution_path = Path(solution)
        task = solution_path.name.split(".")[0]
        solution = check_solution(read_array(solution_path), solution_path.name, "line")
    folder = read_prediction_folder(predictions, task=task)
    if task is not None and not folder.files:
        _refuse_other_task(folder, solution_path)
    budget = time_budget if time_budget is not None else folder.time_budget
    if budget is None:
        raise ScoringError(
            f"{folder.path / 'start.txt'}: no 'time_budget' line, so the time budget is unknown. "
            "Pass the time budget in seconds."
        )
    scorer = Scorer(solution, budget, label_names=label_names, task=folder.task)
    for path, t in zip(folder.files, folder.timestamps, strict=True):
        scorer.add(read_array(path), t, name=path.name)
    return scorer.result()


def _refuse_other_task(folder, solution_path: Path) -> None:
    """No ``<task>.predict_*`` in the folder: fine when the run made no prediction, an
    error when the folder is another task's (its prediction files or its start.txt say
    so); an ALC of 0 would hide the mix-up."""
    found = sorted({p.name.split(".predict_")[0] for p in folder.path.glob("*.predict_*")})
    named = folder.start.get("task_name")
    if not found and (not isinstance(named, str) or named == folder.task):
        return
    holds = (
        f"it holds predictions of {', '.join(repr(t) for t in found)}"
        if found
        else f"its start.txt names task {named!r}"
    )
    other = found[0] if found else named
    raise ScoringError(
        f"{folder.path} holds no {folder.task}.predict_* file (task {folder.task!r}, from the "
        f"solution file's name {solution_path.name}); {holds}",
        f"Score them against {other}.solution (in the {other} dataset's folder), or give "
        f"the prediction folder of a run on {folder.task}.",
    )

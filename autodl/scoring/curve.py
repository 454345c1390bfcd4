"""Learning curve and ALC, exactly as the official AutoDL scorer, plus the prediction folder.

Time is transformed to ``x = log(1 + t/t0) / log(1 + T/t0)`` (t0 = 60 s, T the
time budget). The learning curve is a step function: 0 before the first
prediction, the NAUC of prediction i from x_i to x_{i+1}, the last one held up
to x = 1. ALC is the sum of the step areas, added in prediction order as the
official ``auc_step`` adds them, so the figure is the same to the last bit.

One deliberate difference: the official ``get_alc`` also counts predictions made
after the budget (their x is above 1, so they make the last area negative). Here
a prediction after T does not count; `late_predictions` lists such predictions
and the report shows them.

>>> round(alc([2.5, 14.3], [0.5, 0.9], time_budget=300), 6)
0.840886
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodl.errors import ScoringError
from autodl.scoring._keyvalue import read_key_value_file

__all__ = [
    "T0",
    "PredictionFolder",
    "alc",
    "late_predictions",
    "read_end_file",
    "read_prediction_folder",
    "read_start_file",
    "transform_time",
]

T0 = 60.0  # seconds; the official scorer's t0 since v20190508


def transform_time(t, T: float, t0: float = T0):
    """Map seconds to the [0, 1] axis of the learning curve (arrays work too).

    >>> transform_time(300.0, 300.0)
    1.0
    >>> round(transform_time(0.5, 120.0), 5)
    0.00755
    """
    x = np.log(1 + np.asarray(t, dtype=np.float64) / t0) / np.log(1 + T / t0)
    return float(x) if np.ndim(x) == 0 else x


def late_predictions(timestamps: Sequence[float], time_budget: float) -> list[int]:
    """Indices of the predictions made after the time budget (they do not count)."""
    return [i for i, t in enumerate(timestamps) if t > time_budget]


def alc(
    timestamps: Sequence[float],
    scores: Sequence[float],
    time_budget: float,
    t0: float = T0,
) -> float:
    """Area under the learning curve of predictions at ``timestamps`` (seconds after start).

    Predictions after ``time_budget`` are left out; no prediction gives 0.

    >>> alc([], [], 60.0)
    0.0
    >>> alc([0.0], [0.8], 60.0)
    0.8
    """
    if len(timestamps) != len(scores):
        raise ValueError(f"{len(timestamps)} timestamps but {len(scores)} scores")
    _check_increasing(timestamps)
    kept = [i for i, t in enumerate(timestamps) if t <= time_budget]
    x = [0.0] + [transform_time(float(timestamps[i]), time_budget, t0) for i in kept] + [1.0]
    y = [0.0] + [float(scores[i]) for i in kept]
    y.append(y[-1])
    # Same additions in the same order as the official auc_step (the first step has y = 0).
    area = 0.0
    for i in range(len(x) - 1):
        area += (x[i + 1] - x[i]) * y[i]
    return area


def _check_increasing(timestamps: Sequence[float]) -> None:
    for i, t in enumerate(timestamps):
        if t < 0:
            raise ScoringError(
                f"prediction {i} is dated {t} s, before the start of the run. "
                "Timestamps are seconds after start_time."
            )
        if i and t < timestamps[i - 1]:
            raise ScoringError(
                f"prediction {i} is dated {t} s, before prediction {i - 1} ({timestamps[i - 1]} s). "
                "Predictions must be numbered in the order they were made."
            )


def read_start_file(path: str | Path) -> dict:
    """Parse ``start.txt`` as the official scorer does with YAML, without PyYAML.

    Returns a dict like ``{'ingestion_pid': 12, 'task_name': 'mini', 'time_budget': 300,
    'start_time': 1750000000.125, 0: 1750000002.6167, ...}``: integer keys are
    prediction indices, values are int, float or str.
    """
    info = read_key_value_file(path)
    if "start_time" not in info:
        raise ScoringError(
            f"{Path(path).name}: no 'start_time: <seconds since epoch>' line. "
            "It is written by ingestion when the run starts."
        )
    return info


def read_end_file(path: str | Path) -> dict:
    """Parse ``end.txt`` (``ingestion_duration``, ``ingestion_success``, ``end_time``)."""
    return read_key_value_file(path)


@dataclass
class PredictionFolder:
    """A prediction folder in the official layout, read (prediction matrices are not loaded).

    ``timestamps`` are seconds after ``start_time`` (``t_i - start_time`` with
    the parsed floats, as officially).
    ``files[i]`` is ``<task>.predict_<i>``; ``end`` is end.txt's content or None
    while the run is going on.
    """

    path: Path
    task: str
    start_time: float
    time_budget: float | None
    timestamps: list[float]
    files: list[Path]
    end: dict | None = None
    start: dict = field(default_factory=dict)


def read_prediction_folder(directory: str | Path, task: str | None = None) -> PredictionFolder:
    """Read ``start.txt``, the ``<task>.predict_<k>`` names and ``end.txt`` of ``directory``.

    ``task`` defaults to start.txt's ``task_name``, else to the one prefix of the
    ``*.predict_*`` files. Prediction k is paired with the time ``k:`` of start.txt.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ScoringError(f"{directory}: no such prediction folder.")
    start_path = directory / "start.txt"
    if not start_path.is_file():
        raise ScoringError(
            f"{directory}: no start.txt. A prediction folder holds start.txt, "
            "<task>.predict_<k> files and end.txt, as written by ingestion."
        )
    start = read_start_file(start_path)
    task = task or _task_name(directory, start)
    files = _prediction_files(directory, task)
    start_time = _number(start, "start_time", start_path)
    absolute = []
    for k in range(len(files)):
        if k not in start:
            raise ScoringError(
                f"start.txt: no time for prediction {k} ('{k}: <seconds since epoch>') "
                f"although {files[k].name} exists."
            )
        absolute.append(_number(start, k, start_path))
    budget = _number(start, "time_budget", start_path) if "time_budget" in start else None
    end_path = directory / "end.txt"
    return PredictionFolder(
        path=directory,
        task=task,
        start_time=start_time,
        time_budget=budget,
        timestamps=[t - start_time for t in absolute],
        files=files,
        end=read_end_file(end_path) if end_path.is_file() else None,
        start=start,
    )


def _number(info: dict, key, path: Path) -> float:
    value = info[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScoringError(f"{path.name}: '{key}' is {value!r}, expected a number.")
    return float(value)


def _task_name(directory: Path, start: dict) -> str:
    if isinstance(start.get("task_name"), str):
        return start["task_name"]
    prefixes = {p.name.split(".predict_")[0] for p in directory.glob("*.predict_*")}
    if len(prefixes) == 1:
        return prefixes.pop()
    raise ScoringError(
        f"{directory}: cannot tell the task name (start.txt has no task_name and the "
        f"prediction files have {len(prefixes)} prefixes). Pass the task name."
    )


def _prediction_files(directory: Path, task: str) -> list[Path]:
    found: dict[int, Path] = {}
    for path in directory.glob(f"{task}.predict_*"):
        suffix = path.name[len(task) + len(".predict_") :]
        if suffix.isdigit():
            found[int(suffix)] = path
    missing = [k for k in range(len(found)) if k not in found]
    if missing:
        raise ScoringError(
            f"{directory}: {task}.predict_{missing[0]} is missing but later predictions exist. "
            "Predictions are numbered 0, 1, 2, ... in the order they were made."
        )
    return [found[k] for k in range(len(found))]

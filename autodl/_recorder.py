"""The files a run writes as it goes: the official prediction folder (``start.txt``,
``<task>.predict_<k>``, ``end.txt``), the unlabelled part's ``.predict`` and CSV, the
engine's log and the JSON-lines run log. Split from `autodl.ingestion`, which decides
*when* to write (the clock, the deadline); this module decides *how* (atomically, in
the official layout, user text made safe).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from autodl._csv import predictions_csv
from autodl.errors import IngestionError
from autodl.formats.names import dataset_name_problem, valid_dataset_name
from autodl.scoring import key_value_text


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", newline="")  # names may be any Unicode
    os.replace(tmp, path)


def format_prediction(array: np.ndarray) -> str:
    """Rows of space-separated scores, 9 significant digits (float32 round-trips).

    The official ingestion prints 6 digits ('{0:g}'); we keep more so that close
    scores do not become artificial ties, which would change the AUC.
    """
    return "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in array.tolist())


class Recorder:
    """Writes the official prediction folder and the run log as events arrive."""

    def __init__(self, output_dir: Path, task: str, time_budget: float, start_time: float):
        if not valid_dataset_name(task):
            # The task names files and start.txt's task_name: see autodl.formats.names.
            raise IngestionError(dataset_name_problem(str(task)) or f"bad task name {task!r}")
        self.dir = output_dir / "predictions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self.task = task
        self.time_budget = time_budget
        self.start_time = start_time
        budget = int(time_budget) if float(time_budget).is_integer() else float(time_budget)
        self.start_pairs: list[tuple] = [
            ("ingestion_pid", 0),
            ("task_name", task),
            ("time_budget", budget),
            ("start_time", start_time),
        ]
        self._write_start()
        self.log_file = open(output_dir / "engine.log", "a", encoding="utf-8")  # noqa: SIM115
        self.events = open(output_dir / "run.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.event("start", time_budget=time_budget, start_time=start_time)

    def _write_start(self) -> None:
        atomic_write(self.dir / "start.txt", key_value_text(self.start_pairs))

    def event(self, kind: str, **fields) -> None:
        record = {"t": round(time.time() - self.start_time, 4), "event": kind, **fields}
        self.events.write(json.dumps(record) + "\n")
        self.events.flush()

    def log(self, message: str) -> None:
        elapsed = time.time() - self.start_time
        for line in message.splitlines() or [""]:
            self.log_file.write(f"[{elapsed:8.2f}s] {line}\n")
        self.log_file.flush()
        self.event("log", message=message)

    def prediction(self, k: int, test: np.ndarray, timestamp: float) -> Path:
        path = self.dir / f"{self.task}.predict_{k}"
        atomic_write(path, format_prediction(test))
        self.start_pairs.append((k, timestamp))
        self._write_start()
        return path

    def unlabelled(
        self,
        array: np.ndarray,
        label_names: list[str],
        ids: np.ndarray,
        multiclass: bool | None = None,
    ) -> None:
        """The last unlabelled prediction: the official-style .predict and a CSV with ids.

        Our engine sends calibrated probabilities here (rows summing to 1 for
        multi-class: `autodl.engine.calibrate`), while the test ``.predict_<k>`` files
        hold the scored, per-column calibrated values (docs/engine.md).

        The CSV has the layout of ``autodl predict``'s (`autodl._csv.predictions_csv`):
        ``id``, one column per class (9 significant digits) and, for multi-class,
        ``top_class``. ``multiclass`` None: multi-class when there are two classes or
        more and every row sums to 1, as the engine's softmax does (a multi-label
        row is one sigmoid per class)."""
        folder = self.output_dir / "unlabelled"
        folder.mkdir(exist_ok=True)
        atomic_write(folder / f"{self.task}.predict", format_prediction(array))
        if multiclass is None:
            multiclass = _sums_to_one(array)
        # Label names are the user's text: csv-quoted, formula starts neutralised
        # (autodl._csv). The other cells are numbers we format ourselves. Lines end with
        # CR LF (RFC 4180): the csv module then also quotes a carriage return in a name.
        text = predictions_csv(
            "id", ids.tolist(), label_names, array.tolist(), top_class=multiclass
        )
        atomic_write(folder / "predictions.csv", text)

    def end(self, success: bool, end_time: float) -> None:
        text = key_value_text(
            [
                ("ingestion_duration", end_time - self.start_time),
                ("ingestion_success", 1 if success else 0),
                ("end_time", end_time),
            ]
        )
        atomic_write(self.dir / "end.txt", text)
        self.event("end", success=success)
        self.log_file.close()
        self.events.close()


def _sums_to_one(array: np.ndarray) -> bool:
    """Rows of multi-class probabilities: two columns or more, each row summing to 1."""
    array = np.asarray(array, dtype=np.float64)
    return (
        array.ndim == 2
        and array.shape[1] > 1
        and len(array) > 0
        and bool(np.all(np.abs(array.sum(axis=1) - 1.0) <= 1e-6))
    )


def check_prediction(array, n_rows: int, n_cols: int, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1 and n_cols == 1:
        array = array.reshape(-1, 1)
    if array.shape != (n_rows, n_cols):
        raise IngestionError(
            f"the engine gave a {what} prediction of shape {array.shape}, expected ({n_rows}, {n_cols})",
            "One row per record and one column per class.",
        )
    if not np.all(np.isfinite(array)):
        raise IngestionError(f"the engine gave a {what} prediction containing NaN or infinity")
    return array

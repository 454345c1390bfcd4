"""`predict_to_csv` (``autodl predict``) and `check_input` (the service, before queueing).

The CSV has one row per input example: first its name (the record id of an AutoDL
dataset, ``id``; the file's path relative to the input, ``path``; or the row number
of a table, ``row``), then one column per class named by its label name holding
its probability (rows sum to 1 for multi-class, as the run's
``unlabelled/predictions.csv``), and, for multi-class, ``top_class``. ``fmt="predict"``
writes the official ``.predict`` layout instead: one line per example, the
calibrated scores the run recorded for its test split, space-separated.

Examples are read and predicted a batch at a time (``batch_size``; by default 256, or
`MEMORY_BATCH` for a dataset split decoded in one pass, where smaller batches would only
add each learner call's fixed cost: sklearn's checks, a LightGBM call, a featuriser's
set-up; profiled in bench/predict_speed.py); the uncalibrated outputs (examples
x classes floats) are kept until the end and calibrated together, as the run
calibrated its whole test split at once (the multi-class scores share one constant).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autodl._csv import safe_cell, safe_row
from autodl.errors import FormatError
from autodl.model.inputs import open_input
from autodl.model.saved import BATCH, MEMORY_BATCH, Model, load_model

FORMATS = ("csv", "predict")
CHECK_EXAMPLES = 16  # examples `check_input` decodes (after the checks of the whole input)


def _model(model: Model | str | os.PathLike, parts: bool = True) -> Model:
    return model if isinstance(model, Model) else load_model(model, parts=parts)


def check_input(
    model_dir: Model | str | os.PathLike,
    input_path: str | os.PathLike,
    *,
    split: str | None = None,
    examples: int | None = CHECK_EXAMPLES,
) -> None:
    """Raise `FormatError` when the model cannot predict on ``input_path`` (the file and
    what the model expects in the message). Checks the input as a whole (domain, shape,
    vocabulary, columns, kind of files), then decodes its first ``examples`` (None: all).
    A path is read as ``model.json`` only (the spec and format manifest): the learners
    are not unpickled and their libraries (torch, LightGBM, scikit-learn) not imported."""
    model = _model(model_dir, parts=False)
    with open_input(model, input_path, split) as source:
        if source.total == 0:
            raise FormatError(f"{input_path}: nothing to predict on (no examples)")
        seen = 0
        for ids, _xs in source.batches(min(examples or 256, 256)):
            seen += len(ids)
            if examples is not None and seen >= examples:
                break


def predict_to_csv(
    model_dir: Model | str | os.PathLike,
    input_path: str | os.PathLike,
    output_csv: str | os.PathLike,
    *,
    split: str | None = None,
    fmt: str = "csv",
    batch_size: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> int:
    """Predict on ``input_path`` and write ``output_csv`` (module doc, atomically);
    ``progress(done, total)`` after each batch, ``say`` told what is predicted (the
    split of a dataset, when it has to be chosen); ``batch_size`` None: `BATCH`, or
    `MEMORY_BATCH` for a split decoded in one pass (module doc). Returns the rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    model = _model(model_dir)
    names: list[Any] = []
    raws: list[np.ndarray] = []
    with open_input(model, input_path, split) as source:
        done = 0
        if say is not None and source.what:
            say(f"Predicting on {source.what}: {source.total:,} examples")
        if progress is not None:
            progress(0, source.total)
        n = batch_size or (MEMORY_BATCH if source.in_memory else BATCH)
        for ids, xs in source.batches(n):
            raws.append(model.raw(xs))
            names += ids
            done += len(ids)
            if progress is not None:
                progress(done, source.total)
        id_column = source.id_column
    raw = np.concatenate(raws) if raws else np.zeros((0, model.spec.output_dim))
    out = io.StringIO(newline="")
    if fmt == "predict":
        scores = model.calibrate(raw, "scores")
        out.write("".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in scores.tolist()))
    else:
        p = model.calibrate(raw, "probabilities")
        writer = csv.writer(out)
        multiclass = not model.multilabel
        writer.writerow(
            [id_column, *safe_row(model.classes_.tolist()), *(["top_class"] if multiclass else [])]
        )
        top = p.argmax(axis=1) if len(p) else np.zeros(0, int)
        for i, (name, row) in enumerate(zip(names, p.tolist(), strict=True)):
            cells = [safe_cell(name), *(f"{v:.9g}" for v in row)]
            if multiclass:
                cells.append(safe_cell(str(model.classes_[top[i]])))
            writer.writerow(cells)
    target = Path(output_csv)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(target)
    return len(names)

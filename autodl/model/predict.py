"""`predict_to_csv` (``autodl predict``) and `check_input` (the service, before queueing).

The CSV has one row per input example: first its name (the record id of an AutoDL
dataset, ``id``; the file's path relative to the input, ``path``; or the row number
of a table, ``row``: 1 for the first row under the header), then one column per class
named by its label name holding its probability (rows sum to 1 for multi-class, as the
run's ``unlabelled/predictions.csv``), and, for multi-class, ``top_class``. ``fmt="predict"``
writes the official ``.predict`` layout instead: one line per example, the
calibrated scores the run recorded for its test split, space-separated.

Examples are read and predicted a batch at a time (``batch_size``; by default 256, or
`MEMORY_BATCH` for a dataset split decoded in one pass, where smaller batches would only
add each learner call's fixed cost: sklearn's checks, a LightGBM call, a featuriser's
set-up; profiled in bench/predict_speed.py); the uncalibrated outputs (examples
x classes floats) are kept until the end and calibrated together, as the run
calibrated its whole test split at once (the multi-class scores share one constant).

The output may not replace the model or the input (`check_output`); missing folders
above it are made. Raw files of another kind than the model's are left out and named
(``say``); a file that does not decode is an error, or with ``skip_bad`` left out and
named, each with why.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autodl._csv import predictions_csv
from autodl.errors import AutoDLError, FormatError
from autodl.model.inputs import open_input
from autodl.model.saved import BATCH, MEMORY_BATCH, Model, load_model

FORMATS = ("csv", "predict")
CHECK_EXAMPLES = 16  # examples `check_input` decodes (after the checks of the whole input)


def _model(model: Model | str | os.PathLike, parts: bool = True) -> Model:
    return model if isinstance(model, Model) else load_model(model, parts=parts)


def check_output(
    model: Model | str | os.PathLike, input_path: str | os.PathLike, output: str | os.PathLike
) -> None:
    """Raise `AutoDLError` (naming both paths) when writing ``output`` would replace the
    model or the input: ``output`` is the input file or the model's zip, or lies in the
    model's folder (or the run folder given as the model) or in an input folder.
    Links are followed: another name of the same file is the same file."""
    out = Path(output)
    target = out.resolve()
    models = [Path(model.source), model.path] if isinstance(model, Model) else [Path(model)]
    for what, given in [*(("the model", m) for m in models), ("the input", Path(input_path))]:
        where = given.resolve()
        if where.is_dir() and target.is_relative_to(where):
            raise AutoDLError(
                f"--output {out} is inside {what} ({given}): writing it could replace "
                f"{what}'s files",
                "Write the predictions elsewhere (another --output).",
            )
        if target == where or (out.exists() and where.exists() and os.path.samefile(out, where)):
            raise AutoDLError(
                f"--output {out} is {what} ({given}): writing it would replace it",
                "Write the predictions elsewhere (another --output).",
            )


def check_input(
    model_dir: Model | str | os.PathLike,
    input_path: str | os.PathLike,
    *,
    split: str | None = None,
    examples: int | None = CHECK_EXAMPLES,
    name: str | None = None,
) -> None:
    """Raise `FormatError` when the model cannot predict on ``input_path`` (the file and
    what the model expects in the message). Checks the input as a whole (domain, shape,
    vocabulary, columns, kind of files), then decodes its first ``examples`` (None: all).
    A path is read as ``model.json`` only (the spec and format manifest): the learners
    are not unpickled and their libraries (torch, LightGBM, scikit-learn) not imported.
    ``name``: the input's name in messages (the upload's name; default: the path)."""
    model = _model(model_dir, parts=False)
    with open_input(model, input_path, split, name=name) as source:
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
    skip_bad: bool = False,
    skipped: list[tuple[str, str]] | None = None,
    name: str | None = None,
) -> int:
    """Predict on ``input_path`` and write ``output_csv`` (module doc, atomically);
    ``progress(done, total)`` after each batch, ``say`` told what is predicted (the
    split of a dataset, when it has to be chosen) and the files left out; ``batch_size``
    None: `BATCH`, or `MEMORY_BATCH` for a split decoded in one pass (module doc).
    ``skip_bad``: raw files that do not decode are left out (``say``: "skipped NAME:
    WHY"), not an error; ``skipped``, a list, gets (name, why) of every file left out
    (of another kind, or not decoding); ``name``: the input's name in messages.
    Returns the rows written. Refuses an ``output_csv`` that would replace the model or
    the input (`check_output`) before reading anything."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_output(model_dir, input_path, output_csv)
    model = _model(model_dir)
    names: list[Any] = []
    raws: list[np.ndarray] = []
    tell = say or (lambda _line: None)
    with open_input(model, input_path, split, skip_bad=skip_bad, name=name) as source:
        done = told = 0
        if source.what:
            tell(f"Predicting on {source.what}: {source.total:,} examples")
        for line in source.notes:
            tell(line)
        if progress is not None:
            progress(0, source.total)
        n = batch_size or (MEMORY_BATCH if source.in_memory else BATCH)
        for ids, xs in source.batches(n):
            for bad, why in source.skipped[told:]:
                tell(f"skipped {bad}: {why}")
            told = len(source.skipped)
            raws.append(model.raw(xs))
            names += ids
            done = len(names) + told
            if progress is not None:
                progress(done, source.total)
        for bad, why in source.skipped[told:]:
            tell(f"skipped {bad}: {why}")
        if progress is not None and done < source.total:
            progress(source.total, source.total)
        if skipped is not None:
            skipped += source.others + source.skipped
        id_column = source.id_column
    raw = np.concatenate(raws) if raws else np.zeros((0, model.spec.output_dim))
    out = io.StringIO(newline="")
    if fmt == "predict":
        scores = model.calibrate(raw, "scores")
        out.write("".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in scores.tolist()))
    else:
        p = model.calibrate(raw, "probabilities")
        classes = model.classes_.tolist()
        out.write(
            predictions_csv(id_column, names, classes, p.tolist(), top_class=not model.multilabel)
        )
    target = Path(output_csv)
    if target.parent != Path(""):
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text(out.getvalue(), encoding="utf-8")
    tmp.replace(target)
    return len(names)

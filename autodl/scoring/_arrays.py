"""Reading and checking solution and prediction matrices.

Files are read with ``np.loadtxt`` semantics (whitespace-separated numbers, one
row per line, always 2-D). Every problem becomes a `ScoringError` that names the
file, the line and what was expected, because a user who uploads predictions
needs to know which line to fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from autodl.errors import ScoringError


def read_array(path: str | Path) -> np.ndarray:
    """Read a ``.solution`` or ``.predict_<k>`` file as a 2-D float64 array.

    A single column gives shape (n, 1). Parse errors name the file and the line:

    >>> read_array("missing.predict_0")
    Traceback (most recent call last):
    ...
    autodl.errors.ScoringError: missing.predict_0: cannot be read (No such file or directory).
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # loadtxt warns (instead of failing) on an empty file; we report it below.
            warnings.simplefilter("ignore", UserWarning)
            array = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise ScoringError(f"{path.name}: cannot be read (No such file or directory).") from None
    except OSError as exc:
        raise ScoringError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _locate_parse_error(path) from exc
    if array.size == 0:
        raise ScoringError(
            f"{path.name}: the file holds no numbers. "
            "It needs one row of space-separated scores per test record."
        )
    return array


def _locate_parse_error(path: Path) -> ScoringError:
    """Find the first line that np.loadtxt could not read, and say why."""
    n_columns = None
    first_line = 0
    with open(path, encoding="utf-8", errors="replace") as lines:
        for lineno, line in enumerate(lines, 1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            for column, token in enumerate(tokens, 1):
                try:
                    float(token)
                except ValueError:
                    return ScoringError(
                        f"{path.name}: line {lineno}, column {column}: {token[:40]!r} is not a number. "
                        "Each line must hold space-separated numbers only."
                    )
            if n_columns is None:
                n_columns, first_line = len(tokens), lineno
            elif len(tokens) != n_columns:
                return ScoringError(
                    f"{path.name}: line {lineno} has {len(tokens)} values but line {first_line} "
                    f"has {n_columns}. Every line needs one value per class."
                )
    return ScoringError(f"{path.name}: cannot be read as a matrix of numbers.")


def check_solution(solution: np.ndarray, name: str = "solution", unit: str = "row") -> np.ndarray:
    """Return the solution as a 2-D float64 array of 0s and 1s, or raise `ScoringError`.

    ``unit`` names a row in messages: "line" for a file, "row" for an array.
    """
    solution = np.asarray(solution, dtype=np.float64)
    if solution.ndim == 1:
        solution = solution.reshape(-1, 1)
    if solution.ndim != 2 or solution.size == 0:
        raise ScoringError(f"{name}: expected a non-empty matrix (records x classes).")
    bad = ~((solution == 0) | (solution == 1))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ScoringError(
            f"{name}: {unit} {row + 1}, column {col + 1}: {float(solution[row, col])!r} is not 0 or 1. "
            "A solution holds one 0/1 column per class."
        )
    return solution


def check_prediction(
    prediction: np.ndarray, shape: tuple[int, int], name: str = "prediction", unit: str = "row"
) -> np.ndarray:
    """Return the prediction as a 2-D float64 array of ``shape``, or raise `ScoringError`.

    ``unit`` names a row in messages: "line" for a file, "row" for an array.

    >>> check_prediction(np.zeros((3, 2)), (4, 2), "x.predict_0")
    Traceback (most recent call last):
    ...
    autodl.errors.ScoringError: x.predict_0: 3 rows but the solution has 4. Each prediction needs one row per test record, in record order.
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    if prediction.ndim == 1:
        prediction = prediction.reshape(-1, 1)
    if prediction.ndim != 2:
        raise ScoringError(
            f"{name}: expected a matrix (records x classes), got {prediction.ndim} dimensions."
        )
    rows, cols = prediction.shape
    if rows != shape[0]:
        raise ScoringError(
            f"{name}: {rows} rows but the solution has {shape[0]}. "
            "Each prediction needs one row per test record, in record order."
        )
    if cols != shape[1]:
        raise ScoringError(
            f"{name}: {cols} columns but the solution has {shape[1]} classes. "
            "Each row needs one score per class, in the order of the solution's columns."
        )
    finite = np.isfinite(prediction)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise ScoringError(
            f"{name}: {unit} {row + 1}, column {col + 1}: {float(prediction[row, col])!r} is not a finite number. "
            "Scores must be finite (e.g. probabilities in [0, 1])."
        )
    return prediction

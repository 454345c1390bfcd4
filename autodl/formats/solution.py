"""The ``.solution`` file: one row of labels per test record, numbers separated by spaces."""

from __future__ import annotations

import io

import numpy as np

from autodl.errors import FormatError
from autodl.formats import limits
from autodl.formats._layout import Node


def read_solution(node: Node, file: str | None = None) -> np.ndarray:
    """A ``.solution`` file: one row per test record, numbers separated by spaces
    (integers or floats), as a float64 array (rows, columns).

    Refused past AUTODL_MAX_SOLUTION_BYTES before it is read; parsed by numpy's C
    reader straight into the array (a list of Python floats per row would take
    ~16 times the text).
    """
    file = file or node.name
    try:
        raw = limits.read_bounded(node, "max_solution_bytes", file)
    except OSError as e:
        raise FormatError(
            f"{file}: cannot be read ({e}).", "Re-export the solution file.", file=file
        ) from None
    return parse_solution(raw, file)


def parse_solution(raw: bytes, file: str = "solution") -> np.ndarray:
    """The rows of a solution's bytes (see `read_solution`); FormatError naming the line."""
    limits.check("max_solution_bytes", len(raw), "the file ({value:,} bytes)", file=file)
    if not raw.strip():
        return np.zeros((0, 0), np.float64)
    try:
        return np.loadtxt(
            io.BytesIO(raw), dtype=np.float64, comments=None, ndmin=2, encoding="utf-8"
        )
    except (ValueError, UnicodeDecodeError):
        raise _solution_problem(raw, file) from None


def _solution_problem(raw: bytes, file: str) -> FormatError:
    """The first bad line of a solution numpy refused, said as a person would."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return FormatError(
            f"{file}: cannot be read ({e}).", "Re-export the solution file.", file=file
        )
    width = None
    for n, line in enumerate(text.splitlines(), 1):
        values = line.split()
        if not values:
            continue
        try:
            for v in values:
                float(v)
            if "_" in line:
                raise ValueError(line)  # Python's float() takes 1_0; numpy does not
        except ValueError:
            return FormatError(
                f"{file}: line {n} holds something that is not a number: {line.strip()[:60]!r}.",
                "A solution row is numbers separated by spaces.",
                file=file,
                record=n - 1,
            )
        if width is None:
            width = len(values)
        elif len(values) != width:
            return FormatError(
                f"{file}: line {n} has {len(values)} columns but line 1 has {width}.",
                "Every row needs one column per class.",
                file=file,
                record=n - 1,
            )
    return FormatError(
        f"{file}: not a table of numbers.",
        "A solution row is numbers separated by spaces.",
        file=file,
    )

"""The ``.solution`` file: one row of labels per test record, numbers separated by spaces."""

from __future__ import annotations

import io
import re

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


def solution_misfits(
    solution: np.ndarray, file: str, test_records: int | None, output_dim: int | None
) -> list[tuple[str, str]]:
    """What keeps a solution from scoring the test split, as (message, expected) pairs:
    written once because `autodl check` reports them and a run refuses to start on them
    (`autodl.pipeline.check_solution`) rather than fail after its whole budget."""
    misfits = []
    if test_records is not None and len(solution) != test_records:
        misfits.append(
            (
                f"{file} has {len(solution)} rows but test/ holds {test_records} records",
                f"{test_records} rows",
            )
        )
    if output_dim and solution.size and solution.shape[1] != output_dim:
        misfits.append(
            (
                f"{file} has {solution.shape[1]} columns but output_dim is {output_dim}",
                f"{output_dim} columns",
            )
        )
    return misfits


#: a value numpy's text reader takes as a float: ASCII digits, a sign, a point, an
#: exponent, nan or inf (no underscores, no hexadecimal, no other scripts' digits)
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan|inf(?:inity)?)", re.I
)


def parse_solution(raw: bytes, file: str = "solution") -> np.ndarray:
    """The rows of a solution's bytes (see `read_solution`); FormatError naming the line."""
    limits.check("max_solution_bytes", len(raw), "the file ({value:,} bytes)", file=file)
    if not raw.strip():
        return np.zeros((0, 0), np.float64)
    table = _zeros_and_ones(raw)
    if table is not None:
        return table
    try:
        return np.loadtxt(
            io.BytesIO(raw), dtype=np.float64, comments=None, ndmin=2, encoding="utf-8"
        )
    except (ValueError, UnicodeDecodeError):
        raise _solution_problem(raw, file) from None


def _zeros_and_ones(raw: bytes) -> np.ndarray | None:
    """The table when every line is laid out as the first one, byte for byte, except
    that each value may be ``0`` or ``1`` (written ``0``/``1`` or ``0.0``/``1.0``): what
    every known writer produces. Read as one byte grid with numpy (2 ms for 50,000
    rows of 4 classes where numpy's text reader takes 30 ms, ~150 ns a value), with no
    array larger than the text besides the result. None for anything else, which the
    text reader then parses."""
    line = raw.find(b"\n") + 1
    if line < 2 or raw.count(b"\r") != raw.count(b"\r\n"):
        return None  # a lone carriage return: numpy's reader refuses it, and says so
    tokens = raw[:line].split()
    if not tokens or any(t not in (b"0", b"1", b"0.0", b"1.0") for t in tokens):
        return None
    if len(raw) % line == line - 1:  # no newline after the last row
        raw += b"\n"
    if len(raw) % line:
        return None
    grid = np.frombuffer(raw, np.uint8).reshape(-1, line)
    first = grid[0]
    value = np.zeros(line, bool)  # the first byte of each token: the digit
    value[np.flatnonzero(first > 32)[:1]] = True
    value[1:] |= (first[1:] > 32) & (first[:-1] <= 32)
    fixed = np.flatnonzero(~value)
    if not (grid[:, fixed] == first[fixed]).all():
        return None
    digits = grid[:, np.flatnonzero(value)]
    if not ((digits == 48) | (digits == 49)).all():
        return None
    return (digits - 48).astype(np.float64)


def _solution_problem(raw: bytes, file: str) -> FormatError:
    """The first bad line of a solution numpy refused, said as a person would. Lines and
    values are cut as numpy's reader cuts them: lines at each line feed (a carriage return
    before it dropped), values at whitespace (Unicode's, as numpy's), each value an ASCII
    number (an Arabic-Indic digit or ``0x1`` is not)."""
    width = None
    for n, line in enumerate(raw.split(b"\n"), 1):
        if line.endswith(b"\r"):
            line = line[:-1]
        problem, text = None, ""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            problem = f"line {n} is not UTF-8 text (byte {line[e.start]:#04x})"
        values = text.split()  # Unicode whitespace, as numpy's reader splits
        if problem is None and "\r" in text:
            problem = f"line {n} holds a carriage return inside it: {text.strip()[:60]!r}"
        if problem is None and not all(_NUMBER.fullmatch(v) for v in values):
            problem = f"line {n} holds something that is not a number: {text.strip()[:60]!r}"
        if problem is not None:
            return FormatError(
                f"{file}: {problem}.",
                "A solution row is numbers separated by spaces, one row per line.",
                file=file,
                record=n - 1,
            )
        if not values:
            continue
        if width is None:
            width, first = len(values), n
        elif len(values) != width:
            return FormatError(
                f"{file}: line {n} has {len(values)} columns but line {first} has {width}.",
                "Every row needs one column per class.",
                file=file,
                record=n - 1,
            )
    return FormatError(
        f"{file}: not a table of numbers.",
        "A solution row is numbers separated by spaces.",
        file=file,
    )

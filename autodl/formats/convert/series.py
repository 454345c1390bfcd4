"""Time series from a table -> DENSE (T, 1, 1, C), one value per step, as the reference osuleaf.

Two table shapes:

- wide: one series per row; every data column is one time step, in column
  order. Trailing missing cells are trimmed (series of different lengths);
  missing cells inside a series stay NaN.
- long: one row per (series, time): an id column (``--id-column``, else
  ``id``/``series``/``series_id``), a time column (``time``/``timestamp``/
  ``t``/``step``) and one or more value columns (several = channels). Steps are
  ordered by time (numbers, else text order, which suits ISO dates). The label
  and split are the series' own: every row of a series must agree. Rows of a
  series that sit together are streamed; when they are scattered the table is
  grouped in memory (a warning says so: sort it by id for very large files).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from autodl.formats.convert._items import BadInput
from autodl.formats.convert.tables import Table, is_missing

ID_NAMES = ("id", "series", "series_id", "seriesid")
TIME_NAMES = ("time", "timestamp", "t", "step", "date")


def long_columns(table: Table, id_column: str | None) -> tuple[int, int] | None:
    """(id column, time column) when the table is in long format, else None."""
    lower = [c.strip().lower() for c in table.columns]
    ids = (
        [table.index(id_column, "--id-column")]
        if id_column
        else [i for i, c in enumerate(lower) if c in ID_NAMES]
    )
    times = [i for i, c in enumerate(lower) if c in TIME_NAMES]
    return (ids[0], times[0]) if ids and times else None


def wide_values(table: Table, row: list[Any], cols: list[int]) -> np.ndarray:
    """One row of a wide table -> (T, 1, 1, 1); raises `BadInput`."""
    vals = []
    for c in cols:
        x = table.number(row[c])
        if x is None:
            raise BadInput(f"column {table.columns[c]!r} holds {row[c]!r}, not a number")
        vals.append(x)
    arr = np.asarray(vals, np.float32)
    finite = np.flatnonzero(~np.isnan(arr))
    if not len(finite):
        raise BadInput("the series has no value")
    return arr[: finite[-1] + 1].reshape(-1, 1, 1, 1)


class LongSeries:
    """Groups the rows of a long table into series (one record each)."""

    def __init__(self, table: Table, id_col: int, time_col: int, value_cols: list[int]):
        self.table = table
        self.id_col, self.time_col, self.value_cols = id_col, time_col, value_cols
        self.contiguous = True
        self.bad: dict[str, str] = {}  # series id -> why it cannot be used

    def key(self, row: list[Any]) -> str:
        """The series id of a row ('' for a row with the wrong number of fields)."""
        return str(row[self.id_col]).strip() if len(row) == len(self.table.columns) else ""

    def rows(self) -> Iterator[tuple[int, list[Any]]]:
        n = 0
        for chunk in self.table.chunks():
            for row in chunk:
                yield n, row
                n += 1

    def scan(self) -> Iterator[tuple[str, int, list[Any]]]:
        """Pass 1: (series id, first row number, that row) in order of first appearance.
        Notes whether each series' rows sit together, and which series hold a value
        that is not a number (`bad`, complete once the scan is over)."""
        seen: set[str] = set()
        current = None
        width = len(self.table.columns)
        for n, row in self.rows():
            key = self.key(row)
            if len(row) != width:
                self.bad.setdefault(key, f"data row {n} has {len(row)} fields, the header {width}")
            elif key not in self.bad:
                for c in self.value_cols:
                    if self.table.number(row[c]) is None:
                        self.bad[key] = (
                            f"data row {n}: column {self.table.columns[c]!r} holds {row[c]!r}, not a number"
                        )
                        break
            if key != current:
                if key in seen:
                    self.contiguous = False
                else:
                    seen.add(key)
                    yield key, n, row
                current = key

    def series(self) -> Iterator[tuple[str, list[list[Any]]]]:
        """Pass 2: (series id, its rows) in order of first appearance."""
        if self.contiguous:
            current, rows = None, []
            for _, row in self.rows():
                key = self.key(row)
                if key != current and rows:
                    yield current, rows  # type: ignore[misc]
                    rows = []
                current = key
                rows.append(row)
            if rows:
                yield current, rows  # type: ignore[misc]
            return
        groups: dict[str, list[list[Any]]] = {}
        for _, row in self.rows():
            groups.setdefault(self.key(row), []).append(row)
        yield from groups.items()

    def values(self, rows: list[list[Any]]) -> np.ndarray:
        """A series' rows -> (T, 1, 1, C) ordered by time; raises `BadInput`."""
        number = self.table.number
        times = [number(r[self.time_col]) for r in rows]
        if any(t is None or math.isnan(t) for t in times):
            order = sorted(range(len(rows)), key=lambda i: str(rows[i][self.time_col]))
        else:
            order = sorted(range(len(rows)), key=lambda i: times[i])  # type: ignore[arg-type, return-value]
        out = np.empty((len(rows), len(self.value_cols)), np.float32)
        for j, i in enumerate(order):
            for k, c in enumerate(self.value_cols):
                v = rows[i][c]
                x = math.nan if is_missing(v) else number(v)
                if x is None:
                    raise BadInput(f"column {self.table.columns[c]!r} holds {v!r}, not a number")
                out[j, k] = x
        return out.reshape(len(rows), 1, 1, len(self.value_cols))

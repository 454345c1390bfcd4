"""Tabular rows -> one DENSE step of features, shape (1, 1, F, 1), as the official tabular tool.

The first pass over the table (`observe`) learns each data column's type:

- number: every value that is not missing reads as a number; also when at
  most 5 % do not (those cells are then missing, and the manifest says which
  values were read so);
- category, at most ``ONE_HOT_MAX`` values: one 0/1 feature per value
  (``column=value``), in natural order of the values;
- category with more values: one feature holding the value's code (0, 1, …
  in natural order of the values);
- a column whose values are all different (an identifier, free text) or with
  more than ``MAX_CATEGORIES`` values is left out, with a warning.

Missing values are stored as NaN, in every feature of a one-hot group too; the
engine imputes them (the official reader passes NaN through as a float).
Features keep the column order of the input. The mapping is written to the
manifest (``features``) so that new data can be encoded the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from autodl.formats.convert.labels import natural_key
from autodl.formats.convert.tables import Table, is_missing

ONE_HOT_MAX = 10
MAX_CATEGORIES = 10000
NUMERIC_SHARE = 0.95


class _Column:
    __slots__ = ("index", "name", "numbers", "texts", "values", "overflow", "examples")

    def __init__(self, index: int, name: str):
        self.index, self.name = index, name
        self.numbers = self.texts = 0
        self.values: dict[str, int] = {}
        self.overflow = False
        self.examples: list[str] = []


class TabularEncoder:
    """Learns the columns in a first pass, then encodes rows as float32 features."""

    def __init__(self, table: Table, columns: list[int]):
        self.table = table
        self.cols = [_Column(i, table.columns[i]) for i in columns]
        self.features: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._plan: list[tuple[str, int, Any]] = []

    def observe(self, row: list[Any]) -> None:
        """Pass 1: count numbers and distinct values of each data column."""
        number = self.table.number
        for c in self.cols:
            v = row[c.index]
            x = number(v)
            if x is None:
                key = str(v).strip()
                c.texts += 1
                if len(c.examples) < 3 and key not in c.examples:
                    c.examples.append(key)
            elif x != x:  # NaN: a missing cell
                continue
            else:
                key = v.strip() if v.__class__ is str else str(v)
                c.numbers += 1
            if not c.overflow:
                c.values[key] = c.values.get(key, 0) + 1
                if len(c.values) > MAX_CATEGORIES:
                    c.overflow, c.values = True, {}

    def finish(self) -> list[dict[str, Any]]:
        """Decide each column's encoding; returns the feature list (for the manifest)."""
        for c in self.cols:
            seen = c.numbers + c.texts
            if c.texts == 0 or (seen and c.numbers >= NUMERIC_SHARE * seen):
                if c.texts:
                    self.warnings.append(
                        f"column {c.name!r}: {c.texts} value(s) that are not numbers read as missing "
                        f"(e.g. {', '.join(map(repr, c.examples))})"
                    )
                self._add("number", c, None, {"name": c.name, "column": c.name, "kind": "number"})
            elif c.overflow or (len(c.values) == seen and seen > ONE_HOT_MAX):
                self.warnings.append(
                    f"column {c.name!r} left out: {'over ' + str(MAX_CATEGORIES) if c.overflow else 'all ' + str(seen)} "
                    "different values (an identifier or free text?); --drop it to silence this"
                )
            else:
                cats = sorted(c.values, key=natural_key)
                if len(cats) <= ONE_HOT_MAX:
                    for v in cats:
                        name = f"{c.name}={v}"
                        self._add(
                            "onehot",
                            c,
                            v,
                            {"name": name, "column": c.name, "kind": "one-hot", "value": v},
                        )
                else:
                    code = {v: float(i) for i, v in enumerate(cats)}
                    self._add(
                        "code",
                        c,
                        code,
                        {"name": c.name, "column": c.name, "kind": "code", "categories": cats},
                    )
        return self.features

    def _add(self, kind: str, col: _Column, arg: Any, info: dict[str, Any]) -> None:
        info["index"] = len(self.features)
        self.features.append(info)
        self._plan.append((kind, col.index, arg))

    @property
    def width(self) -> int:
        return len(self._plan)

    def encode(self, row: list[Any]) -> np.ndarray:
        """Pass 2: one row -> (1, 1, F, 1) float32 features."""
        return encode_row(self._plan, row, self.table.number)


def encode_row(
    plan: list[tuple[str, int, Any]],
    row: list[Any],
    number: Callable[[Any], float | None],
    not_a_number: Callable[[int, Any], None] | None = None,
) -> np.ndarray:
    """One row -> (1, 1, F, 1) float32 features by ``plan`` (kind, column, arg): "number"
    (``number``; NaN where it is none, after ``not_a_number(column, value)`` is called for
    a value that is not missing either), "onehot" (1 where the value is ``arg``), else a
    category's code (``arg``: value -> code); a missing value is NaN."""
    out = np.empty(len(plan), np.float32)
    for i, (kind, col, arg) in enumerate(plan):
        v = row[col]
        if kind == "number":
            x = number(v)
            if x is None and not_a_number is not None and not is_missing(v):
                not_a_number(col, v)
            out[i] = math.nan if x is None else x
        elif is_missing(v):
            out[i] = math.nan
        elif kind == "onehot":
            out[i] = 1.0 if str(v).strip() == arg else 0.0
        else:
            out[i] = arg.get(str(v).strip(), math.nan)
    return out.reshape(1, 1, -1, 1)

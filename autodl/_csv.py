"""CSV files that are safe to open in a spreadsheet.

Text from users (label names, file names) goes into the CSV files we write.
Excel, LibreOffice and Google Sheets read a cell that starts with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return as a formula ("CSV injection"), so such a
text cell gets a leading single quote, which spreadsheets show as text. A cell
that is a plain number (``-1``, ``+0.5``, ``1e-05``) is left as it is: a number
runs nothing, and labels like ``-1`` and ``+1`` are common. Commas, double quotes
and newlines are the csv module's to quote; a label may hold them.

>>> safe_row(["id", "=HYPERLINK(\\"http://x\\")", "-1", "a,b"])
['id', '\\'=HYPERLINK("http://x")', '-1', 'a,b']
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPECIAL = re.compile(r'[,"\r\n]')  # what the csv module quotes


def safe_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    return [safe_cell(v) for v in values]


def predictions_csv(
    id_column: str,
    names: Iterable[object],
    classes: Sequence[object],
    rows: Iterable[Sequence[float]],
    *,
    top_class: bool,
) -> str:
    """The text of a predictions CSV: the one layout of ``autodl predict``'s CSV and of a
    run's ``unlabelled/predictions.csv``.

    A header (``id_column``, then each class's name), one row per example: its name
    (record id, file path or row number), its probability for each class with 9
    significant digits (float32 round-trips), and, when ``top_class``, the class of
    the highest one (the first of equal ones). Text cells are made safe for spreadsheets
    (`safe_cell`); lines end with CR LF (the csv module's, RFC 4180).

    >>> predictions_csv("id", [7], ["a", "=b"], [[0.25, 0.75]], top_class=True)
    "id,a,'=b,top_class\\r\\n7,0.25,0.75,'=b\\r\\n"
    """
    classes = list(classes)
    cells = _Cells()
    out = [cells.row([id_column, *classes, *(["top_class"] if top_class else [])])]
    numbers = ",".join(["%.9g"] * len(classes))  # the text of f"{v:.9g}", a row at once
    tops = [cells.one(c) for c in classes]
    for name, row in zip(names, rows, strict=True):
        line = f"{cells.one(name)},{numbers % tuple(row)}" if classes else cells.one(name)
        if top_class:
            best = max(range(len(row)), key=row.__getitem__) if len(row) else None
            line += "," + ("" if best is None else tops[best])
        out.append(line)
    return "\r\n".join(out) + "\r\n"


class _Cells:
    """Cells as the csv module writes them (`safe_cell`, then quoted when they hold a
    comma, a quote or a line break): an int and a text that needs neither take no trip
    through the csv module (the rows of a 100k-row prediction: one format per row)."""

    def __init__(self) -> None:
        self._buf = io.StringIO(newline="")
        self._writer = csv.writer(self._buf)

    def row(self, values: Sequence[object]) -> str:
        self._buf.seek(0)
        self._buf.truncate()
        self._writer.writerow(safe_row(values))
        return self._buf.getvalue()[:-2]

    def one(self, value: object) -> str:
        if type(value) is int:
            return str(value)
        if isinstance(value, str) and not _SPECIAL.search(value):
            safe = safe_cell(value)
            if safe is value:
                return value
        return self.row([value])

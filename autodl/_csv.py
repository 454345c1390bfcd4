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
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    header = [id_column, *safe_row(classes), *(["top_class"] if top_class else [])]
    writer.writerow(header)
    for name, row in zip(names, rows, strict=True):
        cells = [safe_cell(name), *(f"{v:.9g}" for v in row)]
        if top_class:
            best = max(range(len(row)), key=row.__getitem__) if len(row) else None
            cells.append("" if best is None else safe_cell(str(classes[best])))
        writer.writerow(cells)
    return out.getvalue()

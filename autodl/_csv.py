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

import re
from collections.abc import Iterable

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: object) -> object:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def safe_row(values: Iterable[object]) -> list[object]:
    return [safe_cell(v) for v in values]

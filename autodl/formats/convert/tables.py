"""CSV and Parquet tables, read in chunks of rows (never whole), and their label,
split and id columns.

CSV: the delimiter is the one of ``, ; TAB |`` that the header line holds most
(TAB for ``.tsv``), quoting as the csv module reads it; UTF-8 (a BOM is fine),
else Latin-1 when the start of the file is not UTF-8. Blank lines are not rows.
With ``;`` as delimiter a decimal comma (``3,5``) reads as a number. Parquet
needs ``pyarrow`` (``pip install 'autodl-selfservice[parquet]'``).

A cell is missing when it is empty or one of ``NA``, ``N/A``, ``NaN``,
``null``, ``None``, ``?`` (any case), or a Parquet null. Row numbers (in
messages and in the records manifest) count data rows from 0, header and blank
lines excluded: the index pandas gives them.
"""

from __future__ import annotations

import csv
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import FormatError
from autodl.formats.convert.labels import flag, split_word
from autodl.formats.convert.options import FormatOptions

TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")
MISSING = {"", "na", "n/a", "nan", "null", "none", "?", "#n/a"}
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")
#: Column names taken for the label when none is given (by `autodl format`, and by
#: `detect.describe_raw` when it describes raw data).
LABEL_NAMES = ("label", "labels", "class", "target", "category", "y")
CHUNK = 2048

# csv's default cap is 128 KiB per field; a long text is more. Process-wide,
# but only raised, never lowered.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    return isinstance(v, str) and v.strip().lower() in MISSING


class Table:
    """A CSV or Parquet file: ``columns`` and ``chunks()`` of rows (lists of cells)."""

    def __init__(self, path: Path, like: Table | None = None):
        self.path = path
        self._like = like
        self.parquet = path.suffix.lower() in (".parquet", ".pq")
        self.encoding = "utf-8-sig"
        self.note: str | None = None
        self.delimiter = ","
        self.columns = self._parquet_columns() if self.parquet else self._csv_header()
        if not self.columns:
            raise FormatError(f"{path} has no header row.", "The first line names the columns.")
        self.decimal_comma = self.delimiter == ";"

    # ------------------------------------------------------------ CSV

    def _csv_header(self) -> list[str]:
        try:
            head = self.path.open("rb").read(1 << 16)
        except OSError as e:
            raise FormatError(
                f"{self.path}: cannot be read ({e.strerror}).", "Check the path."
            ) from None
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            if e.start < len(head) - 4:  # not just a character cut at the end of the sample
                self.encoding, self.note = "latin-1", "not UTF-8; read as Latin-1"
            text = head.decode(self.encoding, "ignore")
        first = text.splitlines()[0] if text.strip() else ""
        if self.path.suffix.lower() == ".tsv":
            self.delimiter = "\t"
        elif self._like is not None and not any(d in first for d in ",;\t|"):
            self.delimiter = self._like.delimiter  # one column: read as the labelled table
        else:
            self.delimiter = max(",;\t|", key=lambda d: (first.count(d), d == ","))
        rows = self._rows()
        header = next(rows, [])
        return [h.strip() for h in header]

    def _rows(self) -> Iterator[list[str]]:
        with open(self.path, newline="", encoding=self.encoding) as f:
            try:
                for row in csv.reader(f, delimiter=self.delimiter):
                    if row:
                        yield row
            except UnicodeDecodeError as e:
                raise FormatError(
                    f"{self.path}: byte {e.start} of a line is not UTF-8.",
                    "Save the file as UTF-8 (most spreadsheet programs offer 'CSV UTF-8').",
                ) from None
            except csv.Error as e:
                raise FormatError(
                    f"{self.path}: not a readable CSV file ({e}).", "Check its quoting."
                ) from None

    # ------------------------------------------------------------ Parquet

    def _pq(self):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise FormatError(
                f"{self.path}: reading Parquet needs the pyarrow package.",
                "pip install pyarrow (or 'autodl-selfservice[parquet]'), or save the table as CSV.",
            ) from None
        try:
            return pq.ParquetFile(self.path)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types
            raise FormatError(
                f"{self.path}: not a readable Parquet file ({e}).", "Check the file."
            ) from None

    def _parquet_columns(self) -> list[str]:
        return list(self._pq().schema_arrow.names)

    # ------------------------------------------------------------ both

    def chunks(self, size: int = CHUNK) -> Iterator[list[list[Any]]]:
        """Data rows, ``size`` at a time."""
        if self.parquet:
            for batch in self._pq().iter_batches(batch_size=size):
                cols = [c.to_pylist() for c in batch.columns]
                yield [list(r) for r in zip(*cols, strict=True)]
            return
        rows = self._rows()
        next(rows, None)  # header
        chunk: list[list[Any]] = []
        for r in rows:
            chunk.append(r)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def number(self, v: Any) -> float | None:
        """A cell as a float (NaN when missing), or None when it is not a number.

        The hot path of a table: CSV cells are tried with ``float`` first (which
        takes surrounding spaces, and ``nan``), the missing markers only after."""
        if v.__class__ is str:
            try:
                return float(v)
            except ValueError:
                s = v.strip()
                if s.lower() in MISSING:
                    return math.nan
                if self.decimal_comma and _DECIMAL_COMMA.match(s):
                    return float(s.replace(",", "."))
                return None
        if v is None:
            return math.nan
        if isinstance(v, bool):
            return None
        if isinstance(v, (int, float)):
            return float(v)
        return self.number(str(v))

    def index(self, name: str, what: str) -> int:
        """The position of column ``name`` (exact, else case-insensitive match)."""
        if name in self.columns:
            return self.columns.index(name)
        lower = [c.lower() for c in self.columns]
        if name.lower() in lower:
            return lower.index(name.lower())
        raise FormatError(
            f"{self.path.name} has no column {name!r} ({what}); its columns: {', '.join(self.columns)}.",
            "Name the column as it is written in the header.",
        )


@dataclass
class Roles:
    """Which columns hold what; every other column is data."""

    labels: list[int] = field(default_factory=list)
    split: int | None = None
    id: int | None = None
    drop: list[int] = field(default_factory=list)

    def data_columns(self, n: int) -> list[int]:
        used = set(self.labels) | set(self.drop) | {self.split, self.id}
        return [i for i in range(n) if i not in used]


def resolve_roles(table: Table, opts: FormatOptions, *, labelled: bool = True) -> Roles:
    """The label, split, id and dropped columns of ``table``, from the options or by name."""
    r = Roles()
    if labelled:
        if opts.labels:
            r.labels = [table.index(n, "--label") for n in opts.labels]
        else:
            found = [i for i, c in enumerate(table.columns) if c.strip().lower() in LABEL_NAMES]
            if not found:
                raise FormatError(
                    f"{table.path.name}: which column holds the labels? (columns: {', '.join(table.columns)})",
                    "Name it with --label COLUMN (several --label for 0/1 class columns).",
                )
            r.labels = found[:1]
        if opts.split_column:
            r.split = table.index(opts.split_column, "--split-column")
    else:  # the unlabelled table may or may not carry the label and split columns
        names = set(opts.labels) | {opts.split_column} | set(LABEL_NAMES)
        r.drop = [
            i for i, c in enumerate(table.columns) if c in names or c.strip().lower() in LABEL_NAMES
        ]
    if opts.id_column:
        r.id = table.index(opts.id_column, "--id-column")
    r.drop += [table.index(n, "--drop") for n in opts.drop]
    return r


def row_labels(row: list[Any], roles: Roles, columns: list[str], sep: str | None) -> list[str]:
    """Class names of a row; raises ValueError with the reason for a bad cell."""
    if len(roles.labels) > 1:
        out = []
        for c in roles.labels:
            on = flag(row[c])
            if on is None:
                raise ValueError(f"class column {columns[c]!r} holds {row[c]!r}, not 0/1")
            if on:
                out.append(columns[c])
        return out
    cell = row[roles.labels[0]]
    if is_missing(cell):
        if sep is not None:
            return []
        raise ValueError(f"no label in column {columns[roles.labels[0]]!r}")
    text = str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell).strip()
    return [s.strip() for s in text.split(sep) if s.strip()] if sep is not None else [text]


def row_split(row: list[Any], roles: Roles, columns: list[str]) -> int:
    """The part a row's split cell names, -2 when there is no split column."""
    if roles.split is None:
        return -2
    part = split_word(row[roles.split])
    if part is None:
        raise ValueError(
            f"split column {columns[roles.split]!r} holds {row[roles.split]!r}, not train/test"
        )
    return part

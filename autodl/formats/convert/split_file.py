"""``--split-file``: the split given as a list of records.

One record per line, as ``ITEM`` (a test record) or ``ITEM,PART`` with PART
``train``, ``test`` or ``unlabelled``; records not listed are train records.
ITEM is a file's path relative to INPUT (or its bare name when that is
unique) for folders, and for tables the ``--id-column`` value or else the row
number (data rows counted from 0). A header line (``file,split``) is allowed.
"""

from __future__ import annotations

import csv
from pathlib import Path

from autodl.errors import FormatError
from autodl.formats.convert._run import Run
from autodl.formats.convert.labels import TEST, split_word


def read_split_file(path: Path, keys: list[str], run: Run) -> dict[str, int]:
    """{record key: part} for the records the file names (keys as the input gives them)."""
    by_name: dict[str, str | None] = {}
    for k in keys:
        base = k.rsplit("/", 1)[-1]
        by_name[base] = None if base in by_name else k  # None: the bare name is ambiguous
    known = set(keys)
    out: dict[str, int] = {}
    unknown = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and r[0].strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(
            f"--split-file {path}: cannot be read ({e}).", "Give a UTF-8 text file."
        ) from None
    for n, r in enumerate(rows, 1):
        item = r[0].strip()
        part = split_word(r[1]) if len(r) > 1 else TEST
        if part is None:
            if n == 1 and item not in known:
                continue  # a header line
            raise FormatError(
                f"--split-file {path} line {n}: {r[1]!r} is not train, test or unlabelled.",
                "Write ITEM or ITEM,train|test|unlabelled on each line.",
            )
        key = item if item in known else by_name.get(item)
        if key is None:
            unknown.append(item)
        else:
            out[key] = part
    if unknown:
        run.warnings.append(
            f"{len(unknown)} line(s) of {path.name} match no input record (e.g. {unknown[0]!r})"
        )
    return out

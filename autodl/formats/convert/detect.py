"""Raw data given where an AutoDL dataset is expected: what it is, and how to convert it.

`describe_raw(path)` looks at a file, a folder or a zip without decoding anything (a
table's header, file names and extensions, at most `MAX_NAMES` of them) and says
whether it is data that `autodl format` converts: a table (CSV, TSV, Parquet) or
files of images, audio, video or text. The readers call it when they find no AutoDL
dataset, so that the user is told what they gave and the exact command to run.

>>> describe_raw("no/such/path") is None
True
"""

from __future__ import annotations

import os
import shlex
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from autodl.errors import FormatError

#: File names looked at, at most (a folder of a million images is recognised from these).
MAX_NAMES = 10_000
_TABLES = (".csv", ".tsv", ".parquet", ".pq")
#: Names of files and folders that only an AutoDL dataset has: such a path is not raw.
_AUTODL_MARKS = (".tfrecord", ".textproto", ".solution")
_WORDS = {"image": "image", "audio": "audio", "video": "video", "text": "text"}


@dataclass(frozen=True)
class RawData:
    """Raw data that `autodl format` converts."""

    path: Path
    kind: str  # "table", or the files' kind: "image", "audio", "video", "text"
    summary: str  # e.g. "a CSV table with 5 columns (a, b, c, d, species)"
    label: str | None = None  # for a table: the label column `autodl format` would take
    columns: list[str] = field(default_factory=list)

    def command(self, output: str = "formatted") -> str:
        """The `autodl format` command that converts it (a table names its label column)."""
        words = ["autodl", "format", shlex.quote(str(self.path))]
        if self.kind == "table":
            words += ["--label", shlex.quote(self.label) if self.label else "COLUMN"]
        return " ".join([*words, "--output", output])

    def python_call(self, output: str = "formatted") -> str:
        """`command` in Python, for callers of the API (`autodl.run` on raw data)."""
        label = ""
        if self.kind == "table":
            label = f", label={self.label or 'COLUMN'!r}"
        return f"result = autodl.format_dataset({str(self.path)!r}, {output!r}{label})"

    def message(self) -> str:
        return f"{self.path} is raw data, not an AutoDL dataset: {self.summary}"

    def hint(self) -> str:
        from autodl.formats.convert.options import default_name

        label = ""
        if self.kind == "table":
            label = (
                " (COLUMN: the column that holds the classes)"
                if not self.label
                else f" ({self.label!r} guessed from its name; name another with --label)"
            )
        name = default_name(self.path.resolve())
        return (
            f"Convert it first: `{self.command()}`{label}, then use formatted/{name} "
            f"(or upload formatted/{name}.zip)."
        )

    def error(self) -> FormatError:
        return FormatError(self.message(), self.hint())


def describe_raw(path: str | os.PathLike) -> RawData | None:
    """What raw data ``path`` holds, or None when it is not raw data `autodl format` reads."""
    path = Path(path)
    try:
        if path.is_dir():
            return _from_names(path, _walk(path), "folder")
        if path.is_file():
            if path.suffix.lower() in _TABLES:
                return _table(path)
            if zipfile.is_zipfile(path):
                with zipfile.ZipFile(path) as zf:
                    names = [n for n in zf.namelist()[:MAX_NAMES] if not n.endswith("/")]
                return _from_names(path, names, "zip archive")
    except (OSError, zipfile.BadZipFile, FormatError, ValueError):
        return None
    return None


def _walk(root: Path) -> list[str]:
    names: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        rel = Path(dirpath).relative_to(root)
        names += [(rel / f).as_posix() for f in filenames if not f.startswith(".")]
        if len(names) >= MAX_NAMES:
            break
    return names[:MAX_NAMES]


def _table(path: Path) -> RawData:
    from autodl.formats.convert.tables import LABEL_NAMES, Table

    columns = Table(path).columns
    label = next((c for c in columns if c.strip().lower() in LABEL_NAMES), None)
    kind = "Parquet" if path.suffix.lower() in (".parquet", ".pq") else path.suffix[1:].upper()
    return RawData(
        path,
        "table",
        f"a {kind} table with {len(columns)} columns ({_listed(columns)})",
        label,
        columns,
    )


def _from_names(path: Path, names: list[str], container: str) -> RawData | None:
    from autodl.formats.convert.files import kind_of

    if any(n.endswith(_AUTODL_MARKS) or ".data/" in f"/{n}" for n in names):
        return None  # an AutoDL dataset (maybe a broken one): its own errors say more
    kinds = Counter(k for n in names if (k := kind_of(PurePosixPath(n))) is not None)
    tables = [n for n in names if n.lower().endswith(_TABLES)]
    if not kinds:
        if len(tables) == 1 and container == "folder":
            return _table(path / tables[0])
        return None
    kind, count = kinds.most_common(1)[0]
    classes = sorted(
        {
            PurePosixPath(n).parts[-2]
            for n in names
            if kind_of(PurePosixPath(n)) == kind and len(PurePosixPath(n).parts) >= 2
        }
    )
    where = f" in {len(classes)} folders ({_listed(classes)})" if classes else ""
    more = "+" if len(names) >= MAX_NAMES else ""
    return RawData(path, kind, f"a {container} of {count}{more} {_WORDS[kind]} files{where}")


def _listed(items: list[str], most: int = 6) -> str:
    shown = ", ".join(items[:most])
    return shown + (f", … ({len(items)} in all)" if len(items) > most else "")

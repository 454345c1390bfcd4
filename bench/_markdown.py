"""The `--markdown` output shared by the bench scripts: docs/benchmarks.md's tables.

A figure without its command and date cannot be compared with a later run, so every
table a script prints with ``--markdown`` ends with the line saying how and when it was
measured. Without ``--markdown`` the scripts print their rows as they come (a long run
shows its progress); with it they print one table at the end, ready to paste.
"""

from __future__ import annotations

import datetime
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the sample datasets beside the clone (the team's compatibility reference)
SAMPLES = ROOT.parent / "shared" / "data" / "datasets"
#: the sample datasets the repeated-run benchmarks take, in this order
SAMPLE_NAMES = (
    "cityweather",
    "emailspam",
    "moviegenres",
    "osuleaf",
    "handdigits",
    "movingdigits",
    "convention2012",
    "spokendigits",
)


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table.

    >>> print(table(["a", "b"], [[1, "x"]]))
    | a | b |
    |---|---|
    | 1 | x |
    """
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _commit() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (and uncommitted changes)" if git("status", "--porcelain", "-uno") else "")


def provenance() -> str:
    """The line under a table: the command that printed it, the date and the commit."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else script.name
    command = shlex.join(["python", name, *sys.argv[1:]])
    today = datetime.date.today().isoformat()
    return f"Measured {today} at commit {_commit()} with: `{command}`."


class Rows:
    """A script's result rows: printed as they come, or one markdown table at the end."""

    def __init__(self, markdown: bool, columns: Sequence[str]):
        self.markdown = markdown
        self.columns = list(columns)
        self.rows: list[list[object]] = []

    def add(self, cells: Sequence[object], plain: str) -> None:
        """Record a row; print its plain-text form now unless the output is markdown."""
        if self.markdown:
            self.rows.append(list(cells))
        else:
            print(plain, flush=True)

    def end(self, *notes: str) -> None:
        """With --markdown: the table, any notes, and the command and date."""
        if self.markdown:
            print(table(self.columns, self.rows))
            print()
            for note in notes:
                print(note)
            print(provenance())

"""State shared by the conversion flows: options, bad inputs, notes and warnings.

A bad input (unreadable file, row without label …) is recorded with its name.
With ``--skip-bad`` it is left out and listed at the end; without, the
conversion stops with the list, at the end of the pass that found them or as
soon as ``MAX_BAD`` are known (no point decoding 10 000 more files to report
that the input is not what we think it is).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from autodl.errors import FormatError
from autodl.formats.convert.options import FormatOptions

MAX_BAD = 20
#: How a table's "data row N" is counted, said once under the rows a conversion refused:
#: as in the records manifest (``row``) and pandas' index, not as an editor's lines.
ROWS_COUNTED = (
    "data rows count from 0: data row 0 is the first line after the header, "
    "blank lines not counted, as in the records manifest"
)


@dataclass
class Run:
    """One conversion in progress."""

    input: Path
    output: Path
    opts: FormatOptions
    workers: int
    progress: TextIO | None = None
    bad: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)
    note_examples: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def bad_input(self, source: str, message: str, *, stop_early: bool = True) -> None:
        """Record a bad input; without --skip-bad stop once MAX_BAD are known."""
        self.bad.append((source, message))
        if stop_early and not self.opts.skip_bad and len(self.bad) >= MAX_BAD:
            raise self.failure(complete=False)

    def note(self, source: str, note: str | None) -> None:
        """Something the user should know about an input that was converted anyway."""
        if note:
            self.notes[note] += 1
            self.note_examples.setdefault(note, source)

    def stop_if_bad(self) -> None:
        """Without --skip-bad, fail when any bad input was found."""
        if self.bad and not self.opts.skip_bad:
            raise self.failure(complete=True)

    def failure(self, complete: bool) -> FormatError:
        shown = self.bad[:MAX_BAD]
        lines = "\n".join(f"  {src}: {msg}" for src, msg in shown)
        more = "" if complete else " (stopped at the first ones)"
        what = (
            "input could not be converted"
            if len(self.bad) == 1
            else "inputs could not be converted"
        )
        if "data row " in lines:  # a table's rows: say how they are counted, once
            lines += f"\n  ({ROWS_COUNTED})"
        return FormatError(
            f"{len(self.bad)} {what}{more}:\n{lines}",
            "Fix or remove them, or pass --skip-bad to leave them out (they are listed in the manifest).",
        )

    def all_warnings(self) -> list[str]:
        """Warnings, plus one line per kind of note ('3 files: not UTF-8; read as Latin-1')."""
        out = list(self.warnings)
        for note, n in self.notes.items():
            out.append(f"{n} input(s): {note} (e.g. {self.note_examples[note]})")
        return out

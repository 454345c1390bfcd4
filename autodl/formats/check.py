"""Validate a dataset folder or zip: a summary and every problem found in the data.

Bad data is never an exception here, only a problem in the report; what is not the
data's fault (a bad AUTODL_* setting, a bug) is raised instead.

>>> report = check_dataset("handdigits/")       # doctest: +SKIP
>>> report.ok, report.to_json()["train"]        # doctest: +SKIP
(True, {'count': 1039})

What is checked (each problem names file, record, field and what was expected):

- parts: train/ and test/ folders, their ``metadata.textproto`` and ``sample*``
  record files, the ``.solution`` file; unparsable metadata (with its line);
- metadata: output_dim and matrix_spec present, train/test/unlabelled agree on
  shape, format and output_dim, label map indices within output_dim;
- every record of every split: framing and both CRCs (a corrupt or truncated
  record stops the reading of that file), the feature list of the format and
  its number of values for the shape, ``id`` present and unique (train and test
  together), label indices within output_dim, as many scores as indices;
- counts: ``sample_count`` against the records, solution rows against the test
  records, solution columns against output_dim;
- COMPRESSED frames: every frame's header against the pixel and decoded-size
  caps; frames decode and have the metadata's size: all frames when a split
  holds at most ``DECODE_ALL`` of them, else the first ``DECODE_ALL`` plus a
  sample of the rest, within a decoding budget of pixels (``_scan``); framing,
  CRCs and fields are still checked on every record;
- the caps of `limits` (classes, records, record bytes, frames, pixels, decoded
  size, metadata, solution and label-file size): a breach is a problem naming
  the setting that raises the cap, and the reading of that part stops there;
- warnings: a class with no training example, train records with no label,
  test or unlabelled records that carry labels (they belong in the solution).

A problem repeated on many records is reported for the first ``MAX_REPEATS``
records, then once more with the count of the others.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from autodl.errors import FormatError
from autodl.formats import limits
from autodl.formats._layout import Layout, locate
from autodl.formats._scan import SplitScan, expected_of
from autodl.formats.dataset import learn_channels, read_solution
from autodl.formats.names import DATASET_NAME_RULE, layout_name_problem
from autodl.formats.solution import solution_misfits
from autodl.formats.spec import Metadata, label_names_from, parse_metadata, spec_from_metadata

MAX_REPEATS = 10


@dataclass
class Problem:
    """One finding. ``severity`` is "error" (the dataset cannot be used as is) or "warning"."""

    file: str | None
    record: int | None
    field: str | None
    message: str
    expected: str | None = None
    severity: str = "error"


@dataclass
class CheckReport:
    """Summary of a dataset and the problems found in it."""

    name: str | None = None
    domain: str | None = None
    output_dim: int | None = None
    label_names: list[str] | None = None
    shape: tuple[int, int, int, int] | None = None
    format: str | None = None
    train: int | None = None
    test: int | None = None
    unlabelled: int | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: the summary, split counts ({"count": N} or None), problems."""

        def count(n: int | None) -> dict[str, int] | None:
            return None if n is None else {"count": n}

        return {
            "name": self.name,
            "domain": self.domain,
            "output_dim": self.output_dim,
            "label_names": self.label_names,
            "shape": list(self.shape) if self.shape is not None else None,
            "format": self.format,
            "train": count(self.train),
            "test": count(self.test),
            "unlabelled": count(self.unlabelled),
            "problems": [asdict(p) for p in self.problems],
        }


class _Collector:
    """Problems, with repeats of one kind in one file capped at MAX_REPEATS."""

    def __init__(self, report: CheckReport):
        self.report = report
        self.repeats: Counter = Counter()
        self.first: dict = {}

    def add(self, file, record, fld, message, expected=None, severity="error", kind=None) -> None:
        message = _unrepeated(file, record, message)
        key = (file, fld, kind or message)
        self.repeats[key] += 1
        if self.repeats[key] <= MAX_REPEATS:
            self.report.problems.append(Problem(file, record, fld, message, expected, severity))
        elif key not in self.first:
            self.first[key] = (file, fld, severity, message)

    def finish(self) -> None:
        for key, (file, fld, severity, message) in self.first.items():
            more = self.repeats[key] - MAX_REPEATS
            self.report.problems.append(
                Problem(
                    file,
                    None,
                    fld,
                    f"… and {more} more records with the same problem ({message})",
                    None,
                    severity,
                )
            )


def problem_line(p: dict) -> str:
    """One problem of `CheckReport.to_json` as a line: ``error: FILE, record N, FIELD:
    message`` (the parts it has), as the CLI prints a check and a refused upload."""
    record = None if p.get("record") is None else f"record {p['record']}"
    where = ", ".join(str(x) for x in (p.get("file"), record, p.get("field")) if x)
    return f"{p.get('severity', 'error')}: {where}: {p.get('message')}"


def _unrepeated(file: str | None, record: int | None, message: str) -> str:
    """``message`` without the file and record its problem names already: errors raised
    for other readers start with them ("train/x.tfrecord: record 25 at byte 4850: the
    data CRC is …"), which a check line would otherwise say twice."""
    if file and message.startswith(f"{file}: "):
        message = message[len(file) + 2 :]
    if record is not None:
        for head in (f"record {record}: ", f"record {record} "):
            if message.startswith(head):
                return message[len(head) :]
    return message


def _meta(c: _Collector, folder, split: str) -> Metadata | None:
    file = f"{split}/metadata.textproto"
    node = folder / "metadata.textproto"
    if not node.is_file():
        c.add(
            file, None, None, f"{file} is missing.", "a DataSpecification in protobuf text format"
        )
        return None
    try:
        return parse_metadata(limits.read_bounded(node, "max_metadata_bytes", file), file=file)
    except FormatError as e:
        c.add(
            file,
            None,
            e.field,
            e.message,
            expected_of(e, "protobuf text format (DataSpecification)"),
        )
        return None
    except OSError as e:
        c.add(file, None, None, f"{file}: cannot be read ({e}).")
        return None


def _compare(c: _Collector, ref: Metadata, other: Metadata, split: str) -> None:
    file = f"{split}/metadata.textproto"
    for name in ("output_dim", "sequence_size", "row_count", "col_count", "num_channels", "format"):
        a, b = getattr(ref, name), getattr(other, name)
        if name == "num_channels" and (a is None or b is None):
            continue
        if a != b:
            c.add(
                file,
                None,
                name,
                f"{file}: {name} is {b} but train/metadata.textproto says {a}.",
                f"{a}, as in train/",
            )


def _check_meta(c: _Collector, m: Metadata, split: str) -> None:
    file = f"{split}/metadata.textproto"
    if m.output_dim is None or m.output_dim <= 0:
        c.add(
            file,
            None,
            "output_dim",
            f"{file}: output_dim is {m.output_dim or 'missing'}.",
            "the number of classes (≥ 1)",
        )
    if m.matrix_spec_count == 0:
        c.add(
            file, None, "matrix_spec", f"{file}: there is no matrix_spec.", "one matrix_spec block"
        )
    elif m.storage_format != "COMPRESSED" and ((m.row_count or 0) <= 0 or (m.col_count or 0) <= 0):
        c.add(
            file,
            None,
            "row_count",
            f"{file}: {m.storage_format} data needs row_count and col_count ≥ 1 (got {m.row_count}×{m.col_count}).",
            "the matrix size",
        )
    seen: dict[str, int] = {}
    for k, v in m.label_to_index:
        if m.output_dim and not 0 <= v < m.output_dim:
            c.add(
                file,
                None,
                "label_to_index_map",
                f"{file}: label '{k}' has index {v}, outside the {m.output_dim} classes.",
                f"0 … {m.output_dim - 1}",
            )
        if k in seen:
            c.add(
                file,
                None,
                "label_to_index_map",
                f"{file}: label '{k}' is listed twice.",
                "each label once",
                "warning",
            )
        seen[k] = v


def _solution(c: _Collector, lay: Layout, report: CheckReport, counted: bool = True) -> None:
    """``counted``: every test record was read (damage did not stop the count, which is
    then no measure of the rows the solution needs)."""
    file = f"{lay.name}.solution"
    if lay.solution is None:
        c.add(
            file,
            None,
            None,
            f"{file} is missing: test predictions cannot be scored.",
            "one row of labels per test record",
        )
        return
    try:
        sol = read_solution(lay.solution, file)
    except FormatError as e:
        c.add(file, e.record, None, e.message, expected_of(e, "numbers separated by spaces"))
        return
    rows = report.test if counted else None
    for message, expected in solution_misfits(sol, file, rows, report.output_dim):
        if "rows" in expected:
            message += ". Re-export the solution with the test split"
        c.add(file, None, None, message + ".", expected)


def check_dataset(path: Any) -> CheckReport:
    """Check the dataset at ``path`` (folder or zip); never raises on bad input (only on
    what is not the data's fault: a `SettingError`, a MemoryError, a bug)."""
    report = CheckReport()
    c = _Collector(report)
    try:
        lay = locate(path)
    except FormatError as e:
        c.add(e.file, None, None, e.message, expected_of(e, "a dataset folder or zip"))
        return report
    try:
        _check(c, lay, report)
    except FormatError as e:  # the data stopped the reading: a problem of the dataset
        c.add(e.file, e.record, e.field, f"the check stopped early: {e.message}", severity="error")
    # Anything else is not the dataset's fault and is raised, never reported as a problem
    # of it: a bad AUTODL_* setting (SettingError, read with the first cap), the caller's
    # memory limit (MemoryError: autodl._checkproc's typed answer), a bug of ours.
    finally:
        lay.close()
    c.finish()
    return report


def _check(c: _Collector, lay: Layout, report: CheckReport) -> None:
    report.name = lay.name
    if bad_name := layout_name_problem(lay):  # it becomes file names: see formats.names
        c.add(bad_name[0], None, "name", bad_name[1], DATASET_NAME_RULE)
    folders = {s: lay.data_dir / s for s in ("train", "test")}
    if lay.unlabelled is not None:
        folders["unlabelled"] = lay.unlabelled
    metas: dict[str, Metadata] = {}
    for split, folder in folders.items():
        if not folder.is_dir():
            c.add(
                f"{split}/",
                None,
                None,
                f"{lay.name}.data/{split}/ is missing.",
                f"a {split}/ folder",
            )
            continue
        m = _meta(c, folder, split)
        if m is not None:
            _check_meta(c, m, split)
            metas[split] = m
    ref = metas.get("train") or metas.get("test")
    spec = None
    if ref is not None and ref.output_dim and ref.output_dim > 0 and ref.matrix_spec_count:
        label_lines = None
        if lay.label_file is not None:
            name = lay.label_file.name
            try:
                raw = limits.read_bounded(lay.label_file, "max_metadata_bytes", name)
                label_lines = raw.decode("utf-8", "replace").splitlines()
            except FormatError as e:
                c.add(name, None, None, e.message, expected_of(e, None))
        learned = None
        if ref.storage_format == "COMPRESSED" and (
            ref.num_channels is None or ref.num_channels <= 0
        ):
            # Learned before the scan: frames are decoded (a sample) while scanning.
            learned = learn_channels([f for f in folders.values() if f.is_dir()])
        try:
            spec = spec_from_metadata(
                ref, lay.name, label_file_lines=label_lines, learned_channels=learned
            )
        except FormatError:
            spec = None
        if spec is not None:
            report.domain, report.output_dim, report.format = (
                spec.domain,
                spec.output_dim,
                spec.format,
            )
            report.label_names = label_names_from(ref, label_lines)
            report.shape = spec.shape
    if "train" in metas:
        for split in ("test", "unlabelled"):
            if split in metas:
                _compare(c, metas["train"], metas[split], split)
    scans: dict[str, SplitScan] = {}
    for split, folder in folders.items():
        if not folder.is_dir():
            continue
        meta = metas.get(split, ref)
        s = SplitScan(c, split, folder, spec, (meta or Metadata()).storage_format)
        s.run()
        scans[split] = s
        setattr(report, split, s.count)
        if (
            meta is not None
            and split in metas
            and meta.sample_count is not None
            and meta.sample_count != s.count
            and s.complete  # damage stopped the count: that problem is reported already
        ):
            c.add(
                f"{split}/metadata.textproto",
                None,
                "sample_count",
                f"{split}/metadata.textproto: sample_count is {meta.sample_count} but {split}/ holds {s.count} records. Re-export the {split} split.",
                f"{s.count}",
            )
    if "train" in scans and "test" in scans:
        train_ids = scans["train"].ids
        for rid, (file, i) in scans["test"].ids.items():
            if rid in train_ids:
                of, oi = train_ids[rid]
                c.add(
                    file,
                    i,
                    "id",
                    f"{file}: record {i} has id {rid}, also used by {of} record {oi}.",
                    "test ids 0 … n_test-1, train ids after them",
                    kind="shared id",
                )
    if spec is not None and "train" in scans and scans["train"].count:
        names = report.label_names or [str(i) for i in range(spec.output_dim)]
        for k in np.flatnonzero(scans["train"].label_sums == 0):
            c.add(
                "train/",
                None,
                "label_index",
                f"class '{names[k]}' (column {k}) has no training example.",
                "at least one train record per class",
                "warning",
                kind=f"class {k}",
            )
    _solution(c, lay, report, "test" not in scans or scans["test"].complete)


__all__ = ["CheckReport", "Problem", "check_dataset", "problem_line"]

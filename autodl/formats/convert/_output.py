"""Where a conversion writes: a staging folder inside ``--output``, streamed splits,
then everything moved into place at once.

Nothing is written outside the output folder: records go to
``DIR/.<name>.<random>.tmp/`` and are renamed into ``DIR`` only when the
dataset is complete and passes `check_dataset`; a failure or Ctrl-C removes
the staging folder. ``--force`` replaces an earlier output, but only one that
looks like an AutoDL dataset (a ``<name>.data`` folder inside), never some
other folder that happens to share the name.

Records are streamed: each split's TFRecord file is open while the converter
runs, and ``metadata.textproto`` (which needs the count, the shape and the
vocabulary) is written for every split at the end. The solution and the
records manifest are streamed too; nothing holds a split in memory.

Shuffled splits (`DatasetOutput.add` with ``place``, the record's position in
its split, drawn from ``--seed``): records arrive in input order, are encoded at
once with their final id and kept in memory up to ``SPOOL_FLUSH_BYTES``; past
that they go to temporary bucket files of ``SPOOL_BUCKET_BYTES`` each (bucket =
place // rows per bucket, fixed from the mean record size at the first flush).
`finish` reads one bucket at a time, sorts it by place and appends the records,
the solution rows and the records manifest rows in that order: memory stays
bounded by a bucket, whatever the input's size.
"""

from __future__ import annotations

import csv
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from autodl._csv import safe_row
from autodl.errors import FormatError
from autodl.formats.spec import metadata_for, render_metadata
from autodl.formats.tfrecord import TFRecordWriter
from autodl.formats.types import DatasetSpec
from autodl.formats.writer import DatasetWriter, format_solution

SPLITS = ("train", "test", "unlabelled")
SPOOL_FLUSH_BYTES = 32 << 20  # records of a shuffled split held in memory before bucketing
SPOOL_BUCKET_BYTES = 64 << 20  # about what one bucket file holds (read whole by `finish`)


def output_paths(output: Path, name: str) -> dict[str, Path]:
    """What a conversion leaves in ``output``."""
    return {
        "dataset": output / name,
        "zip": output / f"{name}.zip",
        "manifest": output / f"{name}.manifest.json",
        "records": output / f"{name}.records.csv",
    }


class Staging:
    """A temporary folder inside ``output``, published by `publish` or removed."""

    def __init__(self, output: Path, name: str, force: bool, inputs: list[Path]):
        self.output = output
        self.name = name
        self.targets = output_paths(output, name)
        existing = [p for p in self.targets.values() if p.exists() or p.is_symlink()]
        for src in inputs:
            for p in self.targets.values():
                if src.resolve() == p.resolve() or p.resolve() in src.resolve().parents:
                    raise FormatError(
                        f"the output {p} would replace the input {src}.",
                        "Choose another --output or --name.",
                    )
        if existing and not force:
            raise FormatError(
                f"{existing[0]} already exists.",
                "Pass --force to replace it, or choose another --output or --name.",
            )
        ds = self.targets["dataset"]
        if ds.exists() and not (ds.is_dir() and (ds / f"{name}.data").is_dir() or _empty(ds)):
            raise FormatError(
                f"{ds} exists and is not an AutoDL dataset; --force replaces only a dataset.",
                "Move it away or choose another --name.",
            )
        # The folders made here are removed again if the conversion fails (while empty):
        # a failed `autodl format` leaves nothing behind.
        self._made = [p for p in (output, *output.parents) if not p.exists()]
        try:
            output.mkdir(parents=True, exist_ok=True)
            self.dir = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=output))
        except OSError as e:
            raise FormatError(
                f"cannot write in {output} ({e.strerror}).", "Check the path and its permissions."
            ) from None
        self.root = self.dir / name

    def path(self, key: str) -> Path:
        """Where a target is staged."""
        return self.dir / self.targets[key].name

    def publish(self) -> dict[str, Path]:
        """Replace the targets by the staged files; returns the final paths."""
        for key, dest in self.targets.items():
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            elif dest.exists() or dest.is_symlink():
                dest.unlink()
            os.replace(self.path(key), dest)
        self.cleanup()
        return dict(self.targets)

    def cleanup(self) -> None:
        """Remove the staging folder, and the output folders this run made if still empty."""
        shutil.rmtree(self.dir, ignore_errors=True)
        for folder in self._made:  # innermost first
            try:
                folder.rmdir()
            except OSError:
                break  # not empty (the published dataset), or not ours to remove


def _empty(p: Path) -> bool:
    return p.is_dir() and not any(p.iterdir())


class SplitSink:
    """One split's record file, open while records stream in. Ids count up from ``first_id``."""

    def __init__(self, writer: DatasetWriter, split: str, first_id: int):
        self.writer = writer
        self.split = split
        self.first_id = first_id
        self.count = 0
        self.folder = writer.data_dir / split
        self.folder.mkdir(parents=True, exist_ok=True)
        name = writer.spec.name
        fname = (
            "sample-unlabelled.tfrecord"
            if split == "unlabelled"
            else f"sample-{name}-{split}.tfrecord"
        )
        self._records = TFRecordWriter(self.folder / fname)

    def write(self, x: Any, labels: np.ndarray | None) -> int:
        """Append one record (test and unlabelled records get no labels); returns its id.
        ``labels``: class indices (a list: DatasetWriter reads an array as a dense vector)."""
        rid = self.first_id + self.count
        stored = (
            [int(v) for v in labels] if (self.split == "train" and labels is not None) else None
        )
        self._records.write(self.writer.encode_record(rid, x, stored))
        self.count += 1
        return rid

    def close(self) -> None:
        self._records.close()


class _Spool:
    """A shuffled split's records, (place, record, solution line, manifest row), kept
    in memory and, past ``SPOOL_FLUSH_BYTES``, in bucket files of contiguous places."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.held: list[tuple] = []
        self.held_bytes = 0
        self.rows_per_bucket = 0  # 0: not bucketed yet (everything in `held`)
        self.buckets: set[int] = set()
        self.count = 0

    def add(self, item: tuple) -> None:
        self.held.append(item)
        self.held_bytes += len(item[1]) + 256  # with the tuple, the row and the line
        self.count += 1
        if self.held_bytes >= SPOOL_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if not self.rows_per_bucket:
            self.rows_per_bucket = max(1, SPOOL_BUCKET_BYTES * len(self.held) // self.held_bytes)
            self.folder.mkdir(parents=True, exist_ok=True)
        by_bucket: dict[int, list[tuple]] = {}
        for item in self.held:
            by_bucket.setdefault(item[0] // self.rows_per_bucket, []).append(item)
        for b, items in by_bucket.items():
            with open(self.folder / f"{b}.bucket", "ab") as f:
                pickle.dump(items, f, protocol=pickle.HIGHEST_PROTOCOL)
            self.buckets.add(b)
        self.held, self.held_bytes = [], 0

    def ordered(self) -> Any:
        """The records by place, one bucket in memory at a time; checks that the
        places are 0 … count-1, each once."""
        if self.held and self.rows_per_bucket:
            self._flush()
        groups: Any = (
            [self.held]
            if not self.rows_per_bucket
            else (self._load(b) for b in range(-(-self.count // self.rows_per_bucket)))
        )
        expected = 0
        for items in groups:
            items.sort(key=lambda t: t[0])
            for item in items:
                if item[0] != expected:
                    raise RuntimeError(
                        f"shuffled split: record place {item[0]}, expected {expected}"
                    )
                expected += 1
                yield item
        if expected != self.count:
            raise RuntimeError(f"shuffled split: {expected} records written of {self.count}")
        self.held = []
        shutil.rmtree(self.folder, ignore_errors=True)

    def _load(self, b: int) -> list[tuple]:
        items: list[tuple] = []
        if b not in self.buckets:
            return items
        path = self.folder / f"{b}.bucket"
        with open(path, "rb") as f:
            while True:
                try:
                    items += pickle.load(f)
                except EOFError:
                    break
        path.unlink()
        return items


class DatasetOutput:
    """The dataset being written in the staging folder: three sinks, the solution,
    the records manifest, and the shape seen so far."""

    def __init__(self, staging: Staging, fmt: str, classes: list[str]):
        self.staging = staging
        self.classes = classes
        self.fmt = fmt
        provisional = DatasetSpec(staging.name, (-1, -1, -1, -1), len(classes), fmt)  # type: ignore[arg-type]
        self.writer = DatasetWriter(staging.dir, provisional)
        self.writer.dataset_dir.mkdir(parents=True, exist_ok=True)
        self.sinks: dict[str, SplitSink] = {}
        self.shape: list[int] | None = None
        self._solution = open(
            self.writer.dataset_dir / f"{staging.name}.solution", "w", encoding="utf-8"
        )
        self._manifest_parts = {
            s: open(staging.dir / f"records-{s}.part", "w", newline="", encoding="utf-8")
            for s in SPLITS
        }
        self._manifest = {s: csv.writer(f) for s, f in self._manifest_parts.items()}
        self._spools: dict[str, _Spool] = {}

    def sink(self, split: str, first_id: int | None = None) -> SplitSink:
        """The split's sink, opened on first use (train ids follow the test ids)."""
        if split not in self.sinks:
            if first_id is None:
                first_id = (
                    self.sinks["test"].count if split == "train" and "test" in self.sinks else 0
                )
            self.sinks[split] = SplitSink(self.writer, split, first_id)
        return self.sinks[split]

    def add(
        self,
        split: str,
        x: Any,
        shape: tuple[int, ...],
        labels: np.ndarray | None,
        source: str,
        row: int | str = "",
        place: int | None = None,
    ) -> int:
        """Write one record; ``shape`` is its (T, H, W, C), ``labels`` its class indices.
        ``place``: its position in a shuffled split (0 … n-1, each once; the records are
        put in that order by `finish`), None: appended as it comes."""
        self._merge_shape(shape)
        solution = None
        if split == "test":
            dense = np.zeros((1, len(self.classes)))
            dense[0, labels] = 1.0
            solution = format_solution(dense, "int")
        sink = self.sink(split)
        if place is None:
            rid = sink.write(x, labels)
            if solution is not None:
                self._solution.write(solution)
            self._manifest[split].writerow(safe_row([split, rid, source, row]))  # see autodl._csv
            return rid
        rid = sink.first_id + int(place)
        stored = [int(v) for v in labels] if (split == "train" and labels is not None) else None
        record = self.writer.encode_record(rid, x, stored)
        if split not in self._spools:
            self._spools[split] = _Spool(self.staging.dir / f"spool-{split}")
        self._spools[split].add((int(place), record, solution, safe_row([split, rid, source, row])))
        sink.count += 1
        return rid

    def _unspool(self) -> None:
        """Write the shuffled splits' records, solution and manifest rows in place order."""
        for split, spool in self._spools.items():
            sink = self.sinks[split]
            for _, record, solution, mrow in spool.ordered():
                sink._records.write(record)
                if solution is not None:
                    self._solution.write(solution)
                self._manifest[split].writerow(mrow)
        self._spools = {}

    def _merge_shape(self, shape: tuple[int, ...]) -> None:
        if self.shape is None:
            self.shape = list(shape)
            return
        for i, v in enumerate(shape):
            if i == 3:  # channels: colour wins (gray frames decode fine as RGB)
                self.shape[3] = max(self.shape[3], v)
            elif self.shape[i] != v:
                self.shape[i] = -1

    def count(self, split: str) -> int:
        return self.sinks[split].count if split in self.sinks else 0

    def finish(
        self, shape: tuple[int, int, int, int], vocabulary: dict[str, int] | None, domain: str
    ) -> DatasetSpec:
        """Close the files; write every split's metadata, ``metadata``, the label file and the records CSV."""
        self._unspool()
        for s in self.sinks.values():
            s.close()
        self._solution.close()
        spec = DatasetSpec(
            self.staging.name,
            shape,
            len(self.classes),
            self.fmt,
            list(self.classes),
            vocabulary,
            domain=domain,
        )  # type: ignore[arg-type]
        for s in self.sinks.values():
            meta = metadata_for(spec, s.count, label_map=True)
            (s.folder / "metadata.textproto").write_text(render_metadata(meta), encoding="utf-8")
        root = self.writer.dataset_dir
        (root / "metadata").write_bytes(b"")
        (root / f"{spec.name}_label.name").write_text(
            "".join(n + "\n" for n in self.classes), encoding="utf-8"
        )
        with open(self.staging.path("records"), "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerow(["split", "id", "source", "row"])
            for split in ("test", "train", "unlabelled"):
                self._manifest_parts[split].close()
                part = self.staging.dir / f"records-{split}.part"
                with open(part, encoding="utf-8") as f:
                    shutil.copyfileobj(f, out)
                part.unlink()
        self.writer.spec = spec
        return spec

    def abort(self) -> None:
        for s in self.sinks.values():
            s.close()
        self._solution.close()
        for f in self._manifest_parts.values():
            f.close()

"""One pass over every record of a split, for ``check.py``: framing, fields, ids, labels.

Problems go to ``collector.add(file, record, field, message, expected,
severity, kind)``; nothing raises on bad records.
"""

from __future__ import annotations

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _records, images
from autodl.formats.dataset import dense_x, frames_x, labels_of, sparse_x
from autodl.formats.tfrecord import iter_framed, split_files

# Decode every COMPRESSED frame of a split up to this many; past it, the first
# DECODE_ALL frames and an even sample of ~200 more records.
DECODE_ALL = 2000


class SplitScan:
    """Read every record of a split once; gather counts, ids, label sums."""

    def __init__(self, c, split: str, folder, spec, fmt: str):  # c: check._Collector
        self.c, self.split, self.folder, self.spec, self.fmt = c, split, folder, spec, fmt
        self.count = 0
        self.ids: dict[int, tuple[str, int]] = {}
        self.label_sums = np.zeros(spec.output_dim if spec else 0)
        self.unlabelled_train = 0
        self.frames: list[tuple[str, int, int | None, list[bytes]]] = []

    def run(self) -> None:
        files = split_files(self.folder)
        if not files:
            self.c.add(
                f"{self.split}/",
                None,
                None,
                f"{self.split}/ holds no sample* record files.",
                "sample-<name>-<split>.tfrecord",
            )
        for f in files:
            file = f"{self.split}/{f.name}"
            try:
                with f.open("rb") as stream:
                    for info, data in iter_framed(stream, file):
                        self.count += 1
                        self._record(file, info.index, data)
            except FormatError as e:
                self.c.add(
                    file,
                    e.record,
                    "framing",
                    e.message,
                    "intact TFRecord framing with matching CRCs",
                )
            except OSError as e:
                self.c.add(file, None, None, f"{file}: cannot be read ({e}).")

    def _record(self, file: str, i: int, data: bytes) -> None:
        c, spec = self.c, self.spec
        try:
            d = _records.decode_record(data, self.fmt)
        except _records.RecordError as e:
            c.add(
                file,
                i,
                e.field or None,
                f"{file}: record {i}: {e.message}.",
                e.expected,
                kind=e.field,
            )
            return
        if d.id is None:
            c.add(file, i, "id", f"{file}: record {i} has no 'id'.", "an int64 id", kind="no id")
        elif d.id in self.ids:
            of, oi = self.ids[d.id]
            c.add(
                file,
                i,
                "id",
                f"{file}: record {i} has id {d.id}, already used by {of} record {oi}.",
                "unique ids",
                kind="duplicate id",
            )
        else:
            self.ids[d.id] = (file, i)
        if spec is None:
            return
        try:
            y = labels_of(d, spec.output_dim)
            if self.split == "train":
                self.label_sums += y
                if not y.any():
                    self.unlabelled_train += 1
                    c.add(
                        file,
                        i,
                        "label_index",
                        f"{file}: record {i} has no label.",
                        "at least one label index",
                        "warning",
                        kind="no label",
                    )
            elif y.any():
                c.add(
                    file,
                    i,
                    "label_index",
                    f"{file}: record {i} carries labels; {self.split} labels belong in the solution file.",
                    "empty label lists",
                    "warning",
                    kind="labels",
                )
        except _records.RecordError as e:
            c.add(file, i, e.field, f"{file}: record {i}: {e.message}.", e.expected, kind=e.field)
        try:
            if d.dense is not None:
                dense_x(d.dense, spec.shape)
            elif d.sparse is not None:
                sparse_x(d.sparse, spec.shape)
            else:
                t = spec.shape[0]
                n = len(d.frames or [])
                if t > 0 and n != t:
                    raise _records.RecordError(
                        _records.COMPRESSED_KEY,
                        f"the record has {n} frames",
                        f"sequence_size = {t}",
                    )
                self.frames.append((file, i, d.id, d.frames or []))
        except _records.RecordError as e:
            c.add(file, i, e.field, f"{file}: record {i}: {e.message}.", e.expected, kind=e.field)

    def decode_frames(self) -> None:
        recs = self.frames
        total = sum(len(fr) for *_, fr in recs)
        if total > DECODE_ALL:
            n_head = max(1, DECODE_ALL // max(1, total // len(recs)))
            rest = recs[n_head:]
            recs = recs[:n_head] + rest[:: max(1, len(rest) // 200)]
        flat = [f for *_, fr in recs for f in fr]
        decoded = images.decode_frames(flat, self.spec.shape[3])
        k = 0
        for file, i, _rid, fr in recs:
            mine = decoded[k : k + len(fr)]
            k += len(fr)
            bad = [p for p in mine if isinstance(p, ValueError)]
            if bad:
                self.c.add(
                    file,
                    i,
                    _records.COMPRESSED_KEY,
                    f"{file}: record {i}: a frame does not decode ({bad[0]}).",
                    "a PNG or JPEG image",
                    kind="decode",
                )
                continue
            try:
                frames_x(mine, self.spec.shape)
            except _records.RecordError as e:
                self.c.add(
                    file,
                    i,
                    e.field,
                    f"{file}: record {i}: {e.message}.",
                    e.expected,
                    kind="frame size",
                )

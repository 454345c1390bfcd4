"""One pass over every record of a split, for ``check.py``: framing, fields, ids, labels.

Problems go to ``collector.add(file, record, field, message, expected,
severity, kind)``; nothing raises on bad records.

Bounded whatever the split holds: the caps of `limits` apply (records, record
length, frames, pixels, decoded size), every frame's header is checked but only a
sample of frames is decoded (`FrameSample`), a batch at a time, and decoded pixels
are dropped as soon as their size is checked. Encoded frames are never kept
beyond the batch being decoded.
"""

from __future__ import annotations

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _records, images, limits
from autodl.formats.dataset import (
    check_frame_sizes,
    check_frames,
    dense_x,
    labels_of,
    sparse_x,
)
from autodl.formats.tfrecord import iter_framed, split_files

# Decode every COMPRESSED frame of a split up to this many; past it, an even
# sample: every `stride`-th record, the stride doubling each SAMPLE records, so a
# split of n records costs about DECODE_ALL + SAMPLE * log2(n / SAMPLE) decodes.
DECODE_ALL = 2000
SAMPLE = 200
# At most this many pixels are decoded per split (a few seconds of decoding);
# past it, frames are checked by their headers only.
DECODE_PIXELS = 400_000_000
# A batch decoded together (keeps the pooled / stacked fast paths of
# `images.decode_frames`) holds at most this many frames, pixels and bytes.
BATCH_FRAMES = 512
BATCH_PIXELS = 1 << 24
BATCH_BYTES = 64 << 20


def expected_of(e: FormatError | _records.RecordError, default: str | None) -> str | None:
    """What a problem's "expected" says: the cap and its setting for a cap error."""
    if isinstance(e, limits.LimitExceeded):
        return f"at most {e.limit:,} ({e.setting})"
    if isinstance(e, _records.RecordError) and e.cap:
        return f"at most {getattr(limits.current(), e.cap):,} ({limits.setting_of(e.cap)})"
    return default


class SplitScan:
    """Read every record of a split once; gather counts, ids, label sums."""

    def __init__(self, c, split: str, folder, spec, fmt: str):  # c: check._Collector
        self.c, self.split, self.folder, self.spec, self.fmt = c, split, folder, spec, fmt
        self.count = 0
        self.complete = True  # False when damage or a cap stopped a file: count is a floor
        self.ids: dict[int, tuple[str, int]] = {}
        self.label_sums = np.zeros(spec.output_dim if spec else 0)
        self.pending: list[tuple[str, int, list[bytes]]] = []
        self.pending_pixels = self.pending_bytes = self.pending_frames = 0
        self.frames_seen = self.sampled = 0
        self.stride = 1
        self.pixels_decoded = 0

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
        most = limits.current().max_records
        for f in files:
            file = f"{self.split}/{f.name}"
            try:
                with f.open("rb") as stream:
                    for info, data in iter_framed(stream, file):
                        if self.count >= most:
                            raise limits.exceeded(
                                "max_records",
                                f"the {self.split} split holds more than the {{limit}} records allowed",
                                file=file,
                            )
                        self.count += 1
                        self._record(file, info.index, data)
            except limits.LimitExceeded as e:
                self.complete = False
                self.c.add(file, e.record, e.field or "framing", e.message, expected_of(e, None))
                if e.setting == "AUTODL_MAX_RECORDS":
                    break
            except FormatError as e:
                self.complete = False
                self.c.add(
                    file,
                    e.record,
                    "framing",
                    e.message,
                    "intact TFRecord framing with matching CRCs",
                )
            except limits.READ_ERRORS as e:  # a damaged zip member
                self.complete = False
                self.c.add(file, None, None, f"{file}: cannot be read ({e}).")
        self._flush()

    def _problem(self, file: str, i: int, e: _records.RecordError, kind: str | None = None) -> None:
        message = e.error(file, i).message if e.cap else f"{file}: record {i}: {e.message}."
        self.c.add(
            file, i, e.field or None, message, expected_of(e, e.expected), kind=kind or e.field
        )

    def _record(self, file: str, i: int, data: bytes) -> None:
        c, spec = self.c, self.spec
        try:
            d = _records.decode_record(data, self.fmt)
        except _records.RecordError as e:
            self._problem(file, i, e)
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
            self._problem(file, i, e)
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
                frames = d.frames or []
                sizes = check_frames(frames, spec.shape[3])
                self._sample(file, i, frames, sizes)
        except _records.RecordError as e:
            self._problem(file, i, e)

    def _sample(self, file: str, i: int, frames: list[bytes], sizes: list) -> None:
        """Queue this record's frames for decoding if it is in the sample (module doc)."""
        if not frames or self.spec is None or self.spec.format != "COMPRESSED":
            return
        head = self.frames_seen < DECODE_ALL
        self.frames_seen += len(frames)
        if not head:
            self.sampled += 1
            if self.sampled % self.stride:
                return
            if self.sampled >= SAMPLE * self.stride:
                self.stride *= 2
        pixels = sum(h * w for h, w in (s for s in sizes if s is not None))
        if self.pixels_decoded + pixels > DECODE_PIXELS:
            return  # the decoding budget is spent: headers only from here
        self.pixels_decoded += pixels
        self.pending.append((file, i, frames))
        self.pending_frames += len(frames)
        self.pending_pixels += pixels
        self.pending_bytes += sum(len(f) for f in frames)
        if (
            self.pending_frames >= BATCH_FRAMES
            or self.pending_pixels >= BATCH_PIXELS
            or self.pending_bytes >= BATCH_BYTES
        ):
            self._flush()

    def _flush(self) -> None:
        """Decode the queued frames, check each record's, and drop them all."""
        recs, self.pending = self.pending, []
        self.pending_pixels = self.pending_bytes = self.pending_frames = 0
        if not recs:
            return
        flat = [f for *_, fr in recs for f in fr]
        decoded = images.decode_frames(flat, self.spec.shape[3])
        del flat
        k = 0
        for file, i, fr in recs:
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
                # Sizes only: the float copy frames_x would make is not needed here.
                check_frame_sizes([p.shape[:2] for p in mine], self.spec.shape)
            except _records.RecordError as e:
                self._problem(file, i, e, kind="frame size")

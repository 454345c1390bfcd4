"""`TFRecordSplit.load` on the bulk path: chunks framed together (`_chunks`), decoded
together (`_bulk`), and the records the bulk path does not take decoded one by one by
the general decoder, in record order, so that values and errors are the ones the
record-at-a-time reader gives (``tests/formats/test_bulk.py`` checks it on every
sample and on generated data in every storage format).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _bulk, _png, _records, images, limits
from autodl.formats._chunks import Chunk, iter_chunks
from autodl.formats.tfrecord import open_file
from autodl.formats.types import Arrays, stack_if_same_shape

if TYPE_CHECKING:
    from autodl.formats.dataset import TFRecordSplit


def chunks(split: TFRecordSplit, limit: int | None) -> Iterator[tuple[str, Chunk, int]]:
    """(file shown to users, chunk, split position of its first record), the caps of
    `TFRecordSplit.records` applied: a chunk's framing error, or the record count cap,
    is raised after the records before it have been used."""
    most = limits.current().max_records
    n = 0
    for f in split.files:
        if limit is not None and n >= limit:
            return
        with open_file(f) as stream:
            left = None if limit is None else limit - n
            for chunk in iter_chunks(stream, split.display(f), verify=split.verify, limit=left):
                error: FormatError | None = chunk.error
                if n + len(chunk) > most:
                    keep = most - n
                    chunk.start, chunk.end = chunk.start[:keep], chunk.end[:keep]
                    error = split._too_many_records(f)
                if len(chunk):
                    yield split.display(f), chunk, n
                n += len(chunk)
                if error is not None:
                    raise error


def _general(split: TFRecordSplit, chunk: Chunk, k: int, file: str):
    """Record k of a chunk through the general decoder (raises its errors)."""
    data = chunk.buf[chunk.start[k] : chunk.end[k]]
    try:
        return _records.decode_record(data, split.spec.format)
    except _records.RecordError as e:
        raise _records.format_error(file, chunk.first + k, None, e) from None


def compressed_chunks(
    split: TFRecordSplit, limit: int | None
) -> Iterator[tuple[str, Chunk, int, _bulk.Bulk]]:
    """(file, chunk, split position of its first record, what the bulk path made of it)
    of a COMPRESSED split."""
    for file, chunk, n in chunks(split, limit):
        yield file, chunk, n, _bulk.decode_chunk(chunk, "COMPRESSED", split.spec)


def chunk_records(
    split: TFRecordSplit, file: str, chunk: Chunk, n: int, bulk: _bulk.Bulk
) -> Iterator[tuple[int, _records.Decoded, str, int, tuple[int, np.ndarray] | None]]:
    """A chunk's COMPRESSED records in order: (position, Decoded, file, record number,
    (id, labels) when the bulk path decoded them, else None: `TFRecordSplit._labels`)."""
    assert bulk.frames is not None
    for k in range(len(chunk)):
        if bulk.ok[k]:
            rid = int(bulk.ids[k]) if bulk.has_id[k] else n + k
            d = _records.Decoded(rid, None, None, frames=bulk.frames[k])
            yield n + k, d, file, chunk.first + k, (rid, bulk.labels[k])
        else:
            yield n + k, _general(split, chunk, k, file), file, chunk.first + k, None


def decoded(
    split: TFRecordSplit, limit: int | None
) -> Iterator[tuple[int, _records.Decoded, str, int, tuple[int, np.ndarray] | None]]:
    """COMPRESSED records in order, as `chunk_records` gives them."""
    for file, chunk, n, bulk in compressed_chunks(split, limit):
        yield from chunk_records(split, file, chunk, n, bulk)


def _shrunk(x: np.ndarray | list, max_side: int | None) -> np.ndarray | list:
    if max_side is None:
        return x
    if isinstance(x, np.ndarray):
        h, w = x.shape[2:4]
        if images.shrunk_size(h, w, max_side) == (h, w):
            return x
    return [images.shrink_float(e, max_side) for e in x]


def load_arrays(split: TFRecordSplit, limit: int | None, max_side: int | None) -> Arrays:
    """DENSE and SPARSE splits as `Arrays` (see the module doc)."""
    ids, ys, xs = [], [], []
    t, h, w, c = split.spec.shape
    room = None  # records of one known shape, not shrunk: decoded into one array
    if t > 0 and h > 0 and w > 0 and c > 0 and images.shrunk_size(h, w, max_side) == (h, w):
        room = Preallocated(split, limit, count=False)
    for file, chunk, n in chunks(split, limit):
        into = room.take(len(chunk), (t, h, w, c)) if room is not None else None
        bulk = _bulk.decode_chunk(chunk, split.spec.format, split.spec, into)
        x = bulk.x if bulk.x is not None else [None] * len(chunk)  # all to the general path
        rid = np.where(bulk.has_id, bulk.ids, n + np.arange(len(chunk)))
        y = bulk.labels
        for k in np.flatnonzero(~bulk.ok).tolist():
            d = _general(split, chunk, k, file)
            rid[k], y[k] = split._labels(d, n + k, file, chunk.first + k)
            xk = split._x(d, file, chunk.first + k)
            if isinstance(x, np.ndarray) and xk.shape != x.shape[1:]:
                x = list(x)
            x[k] = xk
        ids.append(rid)
        ys.append(y)
        xs.append(_shrunk(x, max_side))
    labels = np.concatenate(ys) if ys else np.zeros((0, split.spec.output_dim), np.float32)
    ids_arr = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, np.int64)
    whole = room.whole(xs) if room is not None else None
    return Arrays(ids_arr, whole if whole is not None else joined(xs), labels)


def joined(blocks: list[np.ndarray | list]) -> np.ndarray | list:
    """Blocks of records (arrays (n, T, H, W, C) or lists of per-record arrays) as one
    array when every record has one shape (as `stack_if_same_shape`), else one list."""
    if blocks and all(isinstance(b, np.ndarray) for b in blocks):
        if len(blocks) == 1:
            return blocks[0]  # no copy
        if all(b.shape[1:] == blocks[0].shape[1:] for b in blocks):
            return np.concatenate(blocks)
    return stack_if_same_shape([e for b in blocks for e in b])


def frame_count(records: list, t: int) -> int | None:
    """The number of frames of every record, when it is one number (``t`` when the
    metadata gives it) and not 0; else None."""
    n = {len(d.frames or []) for d, _, _ in records}
    if len(n) != 1:
        return None
    k = n.pop()
    return None if k == 0 or (t > 0 and k != t) else k


def png_block(
    k: int | None,
    flat: list[bytes],
    shape: tuple[int, int, int, int],
    max_side: int | None,
    workers: int | None,
    room: Preallocated | None = None,
):
    """Records of ``k`` frames each (``flat``, in order) as one float32 array (records,
    k, H, W, C) when all frames are plain PNGs of one size that agrees with the
    metadata (``shape``, its sides already shrunk to ``max_side``), needs no shrinking
    and passes AUTODL_MAX_DECODED_BYTES per record: decoded together in threads
    (`images.decode_block`), the values `frames_block` would give; else None, decided
    from the first frame's header before anything is decoded where it can be (then
    the caller's way: `images.decode_frames` and `frames_block`, and its errors)."""
    t, h, w, c = shape
    if k is None or not flat or len(flat) % k:
        return None
    size = _png.header_size(flat[0])
    if size is None:
        return None
    ph, pw = size
    if (h > 0 and ph != h) or (w > 0 and pw != w):
        return None
    if images.shrunk_size(ph, pw, max_side) != (ph, pw):
        return None
    if 4 * k * ph * pw * max(c, 1) > limits.current().max_decoded_bytes:
        return None  # every frame has the first one's size, or the block is refused
    m = len(flat) // k
    into = room.take(m, (k, ph, pw, c)) if room is not None else None
    out = into.reshape(len(flat), ph, pw, c) if into is not None else None
    x = images.decode_block(flat, c, workers, out)
    if x is None:
        return None  # `into` is left unused: `Preallocated.whole` then declines
    return x.reshape(m, k, ph, pw, c)


class Preallocated:
    """One float32 array for the x of a whole `TFRecordSplit.load`, which the block paths
    fill chunk after chunk (`frames_chunk`, `load_arrays`): no concatenation of the
    chunks' blocks (a second pass over every value, into fresh pages) when all of them
    took that path.

    Its size is the split's record count: counted (headers only, seeks) for frames,
    where a record is large; for DENSE and SPARSE, whose records are small and many
    (counting 100k of them costs a tenth of reading them), the metadata's
    ``sample_count`` when it is at most what the files could hold (16 bytes of framing a
    record), else no array. Either way it is a guess that the read checks: more
    records than room, or fewer, and `whole` declines (the blocks are joined)."""

    def __init__(self, split: TFRecordSplit, limit: int | None, count: bool = True):
        self.total: int | None = None
        if split._len is not None or (count and all(isinstance(f, Path) for f in split.files)):
            try:  # plain files: the count walks the headers only (seeks)
                self.total = len(split)
            except FormatError:
                self.total = None  # the read itself reports it, where it meets it
        elif split.expected is not None and split.expected >= 0:
            try:
                room = split.stored_bytes() // 16
            except limits.READ_ERRORS:  # a file that cannot be sized: the read says why
                room = 0
            if split.expected <= min(room, limits.current().max_records):
                self.total = split.expected
        if self.total is not None and limit is not None:
            self.total = min(limit, self.total)
        self.array: np.ndarray | None = None
        self.used = 0

    def take(self, m: int, shape: tuple[int, ...]) -> np.ndarray | None:
        """Room for the next ``m`` records of x shape ``shape``, or None."""
        if self.total is None:
            return None
        if self.array is None:
            if self.used:
                return None
            try:  # zeros: fresh pages from the system, zero until written (no pass)
                self.array = np.zeros((self.total, *shape), np.float32)
            except (MemoryError, ValueError):  # ValueError: a size past what numpy can index
                self.total = None
                return None
        if self.array.shape[1:] != shape or self.used + m > self.total:
            self.total = None  # another shape or more records than counted: no more
            return None
        view = self.array[self.used : self.used + m]
        self.used += m
        return view

    def whole(self, blocks: list) -> np.ndarray | None:
        """The array, when ``blocks`` are exactly its filled parts in order."""
        if self.array is None or not blocks or self.used != self.array.shape[0]:
            return None
        at = 0
        for b in blocks:
            if not isinstance(b, np.ndarray) or b.base is not self.array:
                return None
            if b.shape[0] and b.ctypes.data != self.array[at:].ctypes.data:
                return None
            at += b.shape[0]
        return self.array if at == self.used else None


def frames_chunk(
    split: TFRecordSplit,
    bulk: _bulk.Bulk,
    n: int,
    max_side: int | None,
    room: Preallocated | None = None,
):
    """A chunk's COMPRESSED records as (ids, labels, x block) when the bulk path took
    every one and `png_block` takes their frames, else None (then record by record).
    ``room``: the block is decoded into its next rows when it has room for them."""
    if not bulk.ok.all() or bulk.frames is None:
        return None
    t, h, w, c = split.spec.shape
    if h > 0 and w > 0:
        h, w = images.shrunk_size(h, w, max_side)
    counts = {len(f) for f in bulk.frames}
    k = counts.pop() if len(counts) == 1 else None
    if k == 0 or (t > 0 and k != t):
        k = None
    flat = [f for fs in bulk.frames for f in fs]
    x = png_block(k, flat, (t, h, w, c), max_side, split.workers, room)
    if x is None:
        return None
    ids = np.where(bulk.has_id, bulk.ids, n + np.arange(len(bulk.ok)))
    return ids.astype(np.int64), bulk.labels, x


def frames_block(records: list, pixels: list, shape: tuple[int, int, int, int]):
    """Decoded frames of a chunk of records as one float32 array (records, T, H, W, C),
    or None unless every record has the same number of frames (``T`` when the metadata
    gives it), all decoded to one size that agrees with the metadata: then
    `_arrays.frames_x` would accept each record and give these values."""
    t, h, w, c = shape
    k = frame_count(records, t)
    if k is None or not pixels:
        return None
    first = pixels[0]
    if not isinstance(first, np.ndarray):
        return None
    ph, pw = first.shape[:2]
    if (h > 0 and ph != h) or (w > 0 and pw != w):
        return None
    if not all(isinstance(p, np.ndarray) and p.shape == first.shape for p in pixels):
        return None
    stacked = np.stack(pixels)
    return images.to_float(stacked).reshape(len(records), k, *first.shape)

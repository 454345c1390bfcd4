"""`TFRecordSplit.load` on the bulk path: chunks framed together (`_chunks`), decoded
together (`_bulk`), and the records the bulk path does not take decoded one by one by
the general decoder, in record order, so that values and errors are the ones the
record-at-a-time reader gives (``tests/formats/test_bulk.py`` checks it on every
sample and on generated data in every storage format).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _bulk, _records, images, limits
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
            for chunk in iter_chunks(stream, f, verify=split.verify, limit=left):
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


def decoded(
    split: TFRecordSplit, limit: int | None
) -> Iterator[tuple[int, _records.Decoded, str, int, tuple[int, np.ndarray] | None]]:
    """COMPRESSED records in order: (position, Decoded, file, record number, (id, labels)
    when the bulk path decoded them, else None: `TFRecordSplit._labels` then)."""
    for file, chunk, n in chunks(split, limit):
        bulk = _bulk.decode_chunk(chunk, "COMPRESSED", split.spec)
        assert bulk.frames is not None
        for k in range(len(chunk)):
            if bulk.ok[k]:
                rid = int(bulk.ids[k]) if bulk.has_id[k] else n + k
                d = _records.Decoded(rid, None, None, frames=bulk.frames[k])
                yield n + k, d, file, chunk.first + k, (rid, bulk.labels[k])
            else:
                yield n + k, _general(split, chunk, k, file), file, chunk.first + k, None


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
    for file, chunk, n in chunks(split, limit):
        bulk = _bulk.decode_chunk(chunk, split.spec.format, split.spec)
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
    return Arrays(ids_arr, joined(xs), labels)


def joined(blocks: list[np.ndarray | list]) -> np.ndarray | list:
    """Blocks of records (arrays (n, T, H, W, C) or lists of per-record arrays) as one
    array when every record has one shape (as `stack_if_same_shape`), else one list."""
    if blocks and all(isinstance(b, np.ndarray) for b in blocks):
        if all(b.shape[1:] == blocks[0].shape[1:] for b in blocks):
            return np.concatenate(blocks)
    return stack_if_same_shape([e for b in blocks for e in b])


def frames_block(records: list, pixels: list, shape: tuple[int, int, int, int]):
    """Decoded frames of a chunk of records as one float32 array (records, T, H, W, C),
    or None unless every record has the same number of frames (``T`` when the metadata
    gives it), all decoded to one size that agrees with the metadata: then
    `_arrays.frames_x` would accept each record and give these values."""
    t, h, w, c = shape
    n = {len(d.frames or []) for d, _, _ in records}
    if len(n) != 1 or not pixels:
        return None
    k = n.pop()
    if k == 0 or (t > 0 and k != t):
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

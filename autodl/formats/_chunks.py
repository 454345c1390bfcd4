"""TFRecord framing of many records at once, for the bulk reader (``_bulk.py``).

`iter_framed` (``tfrecord.py``) hands out one record at a time; the bulk reader
wants a whole chunk of records as one buffer plus the offsets of each record's
data, so that numpy can decode them together. `iter_chunks` walks the headers
in one tight loop (the length fields chain, so this walk cannot be vectorised),
checks every length CRC in a few numpy operations (8 bytes each: slice-by-4
CRC32C over all headers together) and every data CRC with the C extension.

Errors are the same as `iter_framed`'s, and come at the same point: a chunk
holds the records before the first bad one, and carries the error, which the
caller raises after it has used those records (a bad record earlier in the
file must be reported first, as the record-at-a-time reader would).
"""

from __future__ import annotations

import functools
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import google_crc32c
import numpy as np

from autodl.errors import FormatError
from autodl.formats import limits
from autodl.formats.tfrecord import corrupt, masked_crc32c, too_long, unreadable

_LENGTH = struct.Struct("<Q")
_PAD = 16  # zero bytes after the data: vectorised reads may run a little past a record
_ZEROS = bytes(_PAD)
RUN = 4096  # records of one length looked for at once
FIRST_BYTES = 1 << 20  # the first read is small: `load(limit=32)` must not read 32 MB
# 8 MB: buffers under glibc's largest mmap threshold (32 MB) are reused from the heap
# once freed; 32 MB ones were fresh pages every chunk (page faults): 15-20 % more CPU
# on DENSE and SPARSE sets (bench/read_speed.py, issue 14).
CHUNK_BYTES = 8 << 20


@dataclass
class Chunk:
    """Records ``first`` .. ``first + len(start) - 1`` of a file, framing checked.

    ``buf`` holds them (plus padding), ``arr`` is its uint8 view; record k's data
    is ``buf[start[k]:end[k]]``. ``error``: what stopped the framing after them.
    """

    buf: bytes
    arr: np.ndarray
    start: np.ndarray
    end: np.ndarray
    first: int
    error: FormatError | None = None

    def __len__(self) -> int:
        return len(self.start)


def _crc_tables() -> np.ndarray:
    t0 = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t0[i] = c
    tables = [t0]
    for _ in range(3):
        prev = tables[-1]
        tables.append((prev >> np.uint32(8)) ^ t0[prev & np.uint32(0xFF)])
    return np.stack(tables)


_TABLES = _crc_tables()
_MASK_DELTA = np.uint32(0xA282EAD8)


def masked_crc_of_lengths(arr: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The masked CRC32C of the 8 bytes at each offset, all together (slice-by-4)."""
    t0, t1, t2, t3 = _TABLES
    crc = np.full(len(offsets), 0xFFFFFFFF, np.uint32)
    b = arr[offsets[:, None] + np.arange(8)].astype(np.uint32)
    for w in (0, 4):
        crc ^= b[:, w] | (b[:, w + 1] << 8) | (b[:, w + 2] << 16) | (b[:, w + 3] << 24)
        crc = t3[crc & 0xFF] ^ t2[(crc >> 8) & 0xFF] ^ t1[(crc >> 16) & 0xFF] ^ t0[crc >> 24]
    crc ^= np.uint32(0xFFFFFFFF)
    return ((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA


def _frame(
    buf: bytes, eof: bool, path: Any, index: int, offset: int, cap: int, verify: bool, most: int
) -> tuple[np.ndarray, np.ndarray, int, FormatError | None]:
    """Header offsets and lengths of the whole records at the start of ``buf`` (its
    data: all but the `_PAD` bytes at its end), where they end, and the framing error
    that stops them, if any.

    The loop only chains the length fields (a record is three bytecodes here); every
    check is made afterwards on all records at once, and the first record that fails
    one gets the error `iter_framed` would give it (its length CRC, then the length
    cap, then truncation, then its data CRC).
    """
    arr = np.frombuffer(buf, np.uint8)
    size = len(buf) - _PAD
    heads = _heads(buf, size, arr, most + 1)
    h = np.asarray(heads[: most + 1], np.int64)
    n = arr[h[:, None] + np.arange(8)].view("<u8")[:, 0] if len(h) else np.zeros(0, np.uint64)
    bad_len = n > np.uint64(cap)
    short = np.zeros(len(h), bool)
    short[~bad_len] = h[~bad_len] + 16 + n[~bad_len].astype(np.int64) > size
    bad_head = np.zeros(len(h), bool)
    if verify and len(h):
        stored = arr[h[:, None] + np.arange(8, 12)].view("<u4")[:, 0]
        bad_head = masked_crc_of_lengths(arr, h) != stored
    stop_at = np.flatnonzero(bad_len | short | bad_head)
    k = int(stop_at[0]) if len(stop_at) else len(h)
    if k > most:
        k = most
    h, n = h[:k], n[:k].astype(np.int64)
    end = int(h[-1] + 16 + n[-1]) if k else 0
    error = None
    stored = arr[(h + 12 + n)[:, None] + np.arange(4)].view("<u4")[:, 0] if verify else None
    if verify and k and not _data_crcs_hold(arr, h, n, stored):
        crc = google_crc32c.value
        starts, ends = (h + 12).tolist(), (h + 12 + n).tolist()
        raw = np.array([crc(buf[a:b]) for a, b in zip(starts, ends, strict=True)], np.uint32)
        actual = ((raw >> np.uint32(15)) | (raw << np.uint32(17))) + _MASK_DELTA
        bad = np.flatnonzero(actual != stored)
        if len(bad):
            j, a = int(bad[0]), starts[int(bad[0])]
            error = corrupt(
                path, index + j, offset + a - 12,
                f"the data CRC is {int(stored[j]):#010x}",
                f"{int(actual[j]):#010x} (the record's bytes are damaged)",
            )  # fmt: skip
            return h[:j], n[:j], a - 12, error
    if k < len(heads) and k < most:  # record k stops the framing
        pos = heads[k]
        at = index + k
        error = _head_error(buf, pos, path, at, offset + pos, verify)
        if error is None and n_at(buf, pos) > cap:
            error = too_long(path, at, n_at(buf, pos), cap)
        if error is None and not eof:
            return h, n, end, None  # the rest comes with the next read
        error = error or corrupt(
            path, at, offset + pos,
            f"the file ends after {size - pos - 12} of {n_at(buf, pos) + 4} record bytes",
            f"{n_at(buf, pos)} data bytes and a 4-byte CRC",
        )  # fmt: skip
    elif k == len(heads) and eof and end < size and k < most:
        error = corrupt(
            path, index + k, offset + end,
            f"the file ends inside a record header ({size - end} of 12 bytes)",
            "12 header bytes (length and its CRC)",
        )  # fmt: skip
    return h, n, end, error


_SCRATCH = threading.local()  # a reused buffer per thread: fresh 8 MB pages cost more


@functools.lru_cache(maxsize=4096)
def _crc_of_zeros(length: int) -> int:
    return google_crc32c.value(bytes(length))


def _data_crcs_hold(arr: np.ndarray, h: np.ndarray, n: np.ndarray, stored: np.ndarray) -> bool:
    """Whether the data CRC (``stored``, masked) of every record at header offsets ``h``
    holds, in two passes of the C CRC over the chunk (20 GB/s) instead of a call per
    record (0.2 us each: 30 ms for 150,000 rows). False sends the caller to the
    per-record check, which finds the first bad record.

    CRC32C is affine over GF(2): crc(X) = L(X) ^ K(len X) with L linear. A record's
    data D with its true CRC c appended gives the constant residue, crc(D || c) =
    0x48674BC7, whatever D; so two records of one length that both hold have equal
    L(D || c). Every record holding is therefore the same as the chunk having the L
    of the chunk where each D is replaced by zeros (and c by the CRC of those zeros):
    L(W) = 0 for W = the chunk with every header zeroed and every stored CRC replaced
    by (its unmasked value) ^ crc(zeros of the record's length). One damaged record
    always shows (A^k, the shift past the bytes after it, is invertible); damage in
    two records cancels only when the two errors do, with odds of 2^-32 for random
    damage (the same odds as one record's damage matching its CRC). Damage made on
    purpose to cancel (32 linear equations: a stranger's trial did it) is read as data,
    where the per-record check names it; so is any record its author wrote with a
    valid CRC: the CRC guards against accidents, not against the file's author, whose
    records are checked as data by the decoder either way.

    False, too, for a chunk over 2 x `CHUNK_BYTES` (a few large records, where the
    per-record check costs nothing and needs no copy of a large chunk)."""
    first, last = int(h[0]), int(h[-1] + 16 + n[-1])
    size = last - first
    if size > 2 * CHUNK_BYTES:
        return False
    w = getattr(_SCRATCH, "buf", None)
    if w is None or len(w) < size:
        w = np.empty(2 * CHUNK_BYTES if size > CHUNK_BYTES else CHUNK_BYTES, np.uint8)
        _SCRATCH.buf = w
    w = w[:size]
    w[:] = arr[first:last]
    rel = h - first
    w[rel[:, None] + np.arange(12)] = 0
    rotated = stored - _MASK_DELTA
    crc = (rotated << np.uint32(15)) | (rotated >> np.uint32(17))  # unmasked
    lengths, which = np.unique(n, return_inverse=True)
    zeros = np.array([_crc_of_zeros(int(m)) for m in lengths], np.uint32)[which]
    w[(rel + 12 + n)[:, None] + np.arange(4)] = (
        (crc ^ zeros).astype("<u4").view(np.uint8).reshape(-1, 4)
    )
    # extend() from 0xFFFFFFFF starts from a zero register: it gives L(W) ^ 0xFFFFFFFF
    return google_crc32c.extend(0xFFFFFFFF, w) == 0xFFFFFFFF


def _heads(buf: bytes, size: int, arr: np.ndarray, most: int) -> list[int]:
    """The offsets of the record headers that start in the first ``size`` bytes of
    ``buf`` (where the chain of length fields leads; a length may be damaged, the
    caller checks).

    Records of a split mostly have the same length (a tabular row: the id's varint
    grows every 16,384 records): a run of records of one length is found with one
    numpy read of the length fields where the run would put them; between runs, the
    fields are followed one at a time in a tight loop.
    """
    unpack = _LENGTH.unpack_from
    out: list[int] = []
    pos, last = 0, size - 12
    stretch = 16
    while pos <= last and len(out) < most:
        length = unpack(buf, pos)[0]
        stride = length + 16
        k = min(RUN, (size - pos) // stride) if stride < size else 0
        if k >= 16:
            at = pos + stride * np.arange(k, dtype=np.int64)
            same = arr[at[:, None] + np.arange(8)].view("<u8")[:, 0] == length
            m = k if same.all() else int(np.argmin(same))
            if m >= 16:
                out.extend(at[:m].tolist())
                pos += m * stride
                stretch = 16
                continue
        for _ in range(stretch):  # lengths that change from record to record
            if pos > last:
                break
            out.append(pos)
            pos += 16 + unpack(buf, pos)[0]
        stretch = min(2 * stretch, 4096)
    return out


def _head_error(
    buf: bytes, pos: int, path: Any, index: int, offset: int, verify: bool
) -> FormatError | None:
    """The error of a damaged length field at ``pos``, if it is damaged (checked first,
    as `iter_framed` does)."""
    if not verify:
        return None
    expected = masked_crc32c(buf[pos : pos + 8])
    (stored,) = struct.unpack_from("<I", buf, pos + 8)
    if expected == stored:
        return None
    return corrupt(
        path, index, offset,
        f"the CRC of the length field is {stored:#010x}",
        f"{expected:#010x} (a damaged header)",
    )  # fmt: skip


def n_at(buf: bytes, pos: int) -> int:
    """The length field of the record header at ``pos``."""
    return _LENGTH.unpack_from(buf, pos)[0]


def iter_chunks(
    stream: BinaryIO,
    path: Any = "<stream>",
    *,
    verify: bool = True,
    limit: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[Chunk]:
    """The records of a stream as `Chunk`s of about ``chunk_bytes`` (the first one
    smaller); at most ``limit`` records. The last chunk may carry an error (module doc)."""
    cap = limits.current().record_bytes
    left = limit if limit is not None else 1 << 62
    index = offset = 0
    rest = b""
    want = min(FIRST_BYTES, chunk_bytes)
    eof = False
    while left > 0:
        parts, have = [rest], len(rest)
        while have < want and not eof:
            try:
                more = stream.read(min(want - have, chunk_bytes))
            except limits.READ_ERRORS as e:
                raise unreadable(path, index, offset, e) from None
            eof = not more
            parts.append(more)
            have += len(more)
        data = b"".join([*parts, _ZEROS])  # one copy, padded (`_PAD`)
        size = len(data) - _PAD
        heads, lengths, stop, err = _frame(data, eof, path, index, offset, cap, verify, left)
        if not len(heads) and err is None and not eof:  # one record larger than `want`
            want = 12 if size < 12 else 16 + struct.unpack_from("<Q", data)[0]
            rest = data[:size]
            continue
        chunk = Chunk(
            data, np.frombuffer(data, np.uint8), heads + 12, heads + 12 + lengths, index, err
        )
        if len(chunk) or chunk.error is not None:
            yield chunk
        if chunk.error is not None or (eof and stop == size):
            return
        left -= len(heads)
        index += len(heads)
        offset += stop
        rest = data[stop:size]
        want = chunk_bytes
        if eof and not rest:
            return

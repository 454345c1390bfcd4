"""TFRecord framing, read and written without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64  length            (little endian)
    uint32  masked_crc32c(length bytes)
    bytes   data[length]
    uint32  masked_crc32c(data)

with ``masked_crc(x) = ((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)``,
exactly as ``tensorflow/core/lib/hash/crc32c.h`` defines it. A split is every
file matching ``sample*`` in its folder, read in sorted name order (the official
reader globs ``sample*``; TensorFlow's glob returns sorted names).

Files are read through any object with ``open("rb")`` and ``name``: a
``pathlib.Path`` or a ``zipfile.Path`` (members of an archive are streamed, never
extracted).

>>> import io, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with TFRecordWriter(d / "sample-x.tfrecord") as w:
...     w.write(b"hello")
>>> [bytes(r) for r in read_records(d / "sample-x.tfrecord")]
[b'hello']
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import google_crc32c

from autodl.errors import FormatError
from autodl.formats import limits

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """The masked CRC32C TensorFlow stores beside each length and each record.

    >>> hex(masked_crc32c(b""))
    '0xa282ead8'
    """
    crc = google_crc32c.value(bytes(data))
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def frame_record(data: bytes) -> bytes:
    """One record framed as TensorFlow's ``TFRecordWriter`` writes it."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (length, _FOOTER.pack(masked_crc32c(length)), data, _FOOTER.pack(masked_crc32c(data)))
    )


class RecordInfo(NamedTuple):
    """Where a record lies: its number in the file and the offset of its header."""

    index: int
    offset: int
    length: int


def _display(path: Any) -> str:
    return str(path)


def corrupt(path: Any, index: int, offset: int, what: str, expected: str) -> FormatError:
    """A damaged record's error: file, record number, byte offset, what was found."""
    return FormatError(
        f"{_display(path)}: record {index} at byte {offset}: {what}; expected {expected}.",
        "The file is truncated or corrupt. Re-export or re-download this split.",
        file=_display(path),
        record=index,
    )


_CHUNK = 1 << 20
_BIG_READ = 16 << 20


def unreadable(path: Any, index: int, offset: int, e: BaseException) -> FormatError:
    at = f"record {index} at byte {offset}: " if index >= 0 else ""
    return FormatError(
        f"{_display(path)}: {at}the file cannot be read ({e}).",
        "The archive member is damaged. Re-create the archive or re-export this split.",
        file=_display(path),
        record=index,
    )


def too_long(path: Any, index: int, length: int, cap: int) -> FormatError:
    return limits.exceeded(
        "max_record_bytes",
        f"a record of {length:,} bytes (its length field)",
        limit=cap,
        file=_display(path),
        record=index,
        unit=" bytes",
    )


def iter_framed(
    stream: BinaryIO, path: Any = "<stream>", *, verify: bool = True
) -> Iterator[tuple[RecordInfo, bytes]]:
    """Records of an open binary stream, with their position.

    Reads the stream in 1 MB chunks (two small reads per record would cost
    more than decoding a tabular row). Raises `FormatError` naming the file,
    the record number and its byte offset when a record is truncated or a CRC
    does not match (when ``verify``). A length field above the cap
    (AUTODL_MAX_RECORD_BYTES, never above 2 GiB) raises `limits.LimitExceeded`
    before a byte of the record is read, CRCs verified or not: a matching CRC
    only says the length was not damaged, not that it is sane.
    """
    cap = limits.current().record_bytes
    buf = b""
    pos = index = offset = 0
    eof = False

    def fill(n: int) -> None:
        nonlocal buf, pos, eof
        parts = [buf[pos:]]
        have = len(parts[0])
        while have < n and not eof:
            # At most _BIG_READ at once: a file object allocates the size asked for
            # before reading, and a length field is a claim until the bytes arrive.
            try:
                more = stream.read(min(max(_CHUNK, n - have), _BIG_READ))
            except limits.READ_ERRORS as e:
                raise unreadable(path, index, offset, e) from None
            if not more:
                eof = True
            parts.append(more)
            have += len(more)
        buf, pos = b"".join(parts), 0

    while True:
        if len(buf) - pos < 12:
            fill(12)
        avail = len(buf) - pos
        if avail == 0:
            return
        if avail < 12:
            raise corrupt(
                path, index, offset,
                f"the file ends inside a record header ({avail} of 12 bytes)",
                "12 header bytes (length and its CRC)",
            )  # fmt: skip
        length, length_crc = _HEADER.unpack_from(buf, pos)
        if verify:
            expected = masked_crc32c(buf[pos : pos + 8])
            if expected != length_crc:
                raise corrupt(
                    path, index, offset,
                    f"the CRC of the length field is {length_crc:#010x}",
                    f"{expected:#010x} (a damaged header)",
                )  # fmt: skip
        if length > cap:
            raise too_long(path, index, length, cap)
        need = 16 + length
        if len(buf) - pos < need:
            fill(need)
        if len(buf) - pos < need:
            raise corrupt(
                path, index, offset,
                f"the file ends after {len(buf) - pos - 12} of {length + 4} record bytes",
                f"{length} data bytes and a 4-byte CRC",
            )  # fmt: skip
        data = buf[pos + 12 : pos + 12 + length]
        if verify:
            (data_crc,) = _FOOTER.unpack_from(buf, pos + 12 + length)
            actual = masked_crc32c(data)
            if actual != data_crc:
                raise corrupt(
                    path, index, offset,
                    f"the data CRC is {data_crc:#010x}",
                    f"{actual:#010x} (the record's bytes are damaged)",
                )  # fmt: skip
        yield RecordInfo(index, offset, length), data
        pos += need
        index += 1
        offset += need


def open_file(path: Any) -> BinaryIO:
    if isinstance(path, (str, PathLike)) and not hasattr(path, "open"):
        path = Path(path)
    try:
        return path.open("rb")
    except limits.READ_ERRORS as e:
        raise FormatError(
            f"{_display(path)}: cannot be read ({getattr(e, 'strerror', None) or e}).",
            "Check that the file exists and is readable.",
            file=_display(path),
        ) from e


def read_records(
    path: Any, *, verify: bool = True, limit: int | None = None, name: str | None = None
) -> Iterator[bytes]:
    """The records of one TFRecord file (a path or a ``zipfile.Path``), in order.

    Reads the file as a stream, so ``limit`` records cost only their bytes (the record
    after the last one is not read, so damage there is not met). ``name``: the file as
    errors name it (the path by default; a dataset gives ``train/sample-...``, never a
    server's folders).
    """
    if limit is not None and limit <= 0:
        return
    with open_file(path) as f:
        for info, data in iter_framed(f, path if name is None else name, verify=verify):
            yield data
            if limit is not None and info.index + 1 >= limit:
                return


def count_records(path: Any) -> int:
    """Number of records in a file, reading only the headers (seeks over the data).

    The caps apply (record length, AUTODL_MAX_RECORDS records per file).
    """
    caps = limits.current()
    with open_file(path) as f:
        try:
            return _count(f, path, caps.record_bytes, caps.max_records)
        except limits.READ_ERRORS as e:
            raise unreadable(path, -1, -1, e) from None


def _count(f: BinaryIO, path: Any, cap: int, most: int) -> int:
    n = 0
    seekable = f.seekable()
    while True:
        header = f.read(12)
        if not header:
            return n
        if len(header) < 12:
            raise corrupt(path, n, -1, "the file ends inside a record header", "12 bytes")
        (length,) = struct.unpack_from("<Q", header)
        if length > cap:
            raise too_long(path, n, length, cap)
        if seekable:
            f.seek(length + 4, 1)
        else:
            while length + 4 > 0:  # skip in chunks: never one read of a claimed size
                skipped = len(f.read(min(length + 4, _CHUNK)))
                if not skipped:
                    break
                length -= skipped
        n += 1
        if n > most:
            raise limits.exceeded(
                "max_records", "the file holds more than the {limit} records allowed",
                file=_display(path),
            )  # fmt: skip


def split_files(folder: Any) -> list[Any]:
    """The record files of a split folder: names matching ``sample*``, sorted."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir() if p.name.startswith("sample") and p.is_file()),
        key=lambda p: p.name,
    )


class TFRecordWriter:
    """Write framed records to a file, as ``tf.io.TFRecordWriter`` does (no compression)."""

    def __init__(self, path: str | PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self.count = 0

    def write(self, data: bytes) -> None:
        self._f.write(frame_record(data))
        self.count += 1

    def write_all(self, records: Iterable[bytes]) -> None:
        for r in records:
            self.write(r)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

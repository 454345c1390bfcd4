"""Hostile datasets of a few kilobytes that claim gigabytes: built for the limit tests,
`bench/fuzz.py` and `bench/bounded_readers.py`.

Each builder writes real files (a valid tiny dataset, then one part made hostile)
and returns the path to give `open_dataset` / `check_dataset`.
"""

from __future__ import annotations

import bz2
import re
import struct
import zipfile
import zlib
from functools import cache
from pathlib import Path

from autodl.formats import _wire, samples
from autodl.formats.tfrecord import TFRecordWriter, masked_crc32c


def png_header_only(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose IHDR says width x height (8-bit gray) with the given IDAT data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(body, zlib.crc32(kind))
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@cache
def blank_png(side: int) -> bytes:
    """A real side x side gray PNG of zeros: ~80 KB for 9000 x 9000 (81 MB of pixels).
    Compressed row by row, so building it never holds the pixels."""
    z = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte 0 + the row's zeros
    parts = [z.compress(row) for _ in range(side)]
    parts.append(z.flush())
    return png_header_only(side, side, b"".join(parts))


def inflate_bomb_png(width: int = 100, height: int = 100, inflated: int = 64 << 20) -> bytes:
    """A PNG whose header says width x height but whose IDAT inflates to ``inflated`` bytes."""
    z = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [z.compress(block) for _ in range(inflated >> 20)]
    parts.append(z.flush())
    return png_header_only(width, height, b"".join(parts))


def image_record(rid: int, frames: list[bytes], label: int | None = 0) -> bytes:
    """A serialised SequenceExample holding ``frames`` (COMPRESSED)."""
    ctx = {"id": _wire.encode_feature("int64", [rid])}
    if label is not None:
        ctx["label_index"] = _wire.encode_feature("int64", [label])
        ctx["label_score"] = _wire.encode_feature("float", [1.0])
    return _wire.encode_sequence_example(
        dict(sorted(ctx.items())), {"0_compressed": _wire.encode_bytes_steps(frames)}
    )


def _set_meta(folder: Path, **fields: int) -> None:
    for meta in folder.rglob("metadata.textproto"):
        text = meta.read_text()
        for name, value in fields.items():
            text, n = re.subn(rf"{name}: -?\d+", f"{name}: {value}", text)
            if not n:
                text = f"{name}: {value}\n" + text
        meta.write_text(text)


def huge_frames(root: Path, n: int = 40, side: int = 9000) -> Path:
    """An image dataset whose train split holds ``n`` records of one side x side frame."""
    path = samples.make_image(root, n_train=3, n_test=2, unlabelled=False, name="bigframes")
    data = path / "bigframes.data"
    for f in (data / "train").glob("sample*"):
        f.unlink()
    frame = blank_png(side)
    with TFRecordWriter(data / "train" / "sample-bigframes-train.tfrecord") as w:
        for i in range(n):
            w.write(image_record(100 + i, [frame]))
    _set_meta(data, row_count=-1, col_count=-1)
    (data / "train" / "metadata.textproto").write_text(
        re.sub(
            r"sample_count: \d+",
            f"sample_count: {n}",
            (data / "train" / "metadata.textproto").read_text(),
        )
    )
    return path


def many_classes(root: Path, n: int = 2_000_000_000, label_map: bool = True) -> Path:
    """A tabular dataset whose metadata says ``output_dim: n`` (with one label-map entry,
    or none: then the label sums are sized by it)."""
    path = samples.make_tabular(
        root, n_train=6, n_test=3, unlabelled=False, name="manyclasses" + ("" if label_map else "2")
    )
    data = next(path.glob("*.data"))
    _set_meta(data, output_dim=n)
    if label_map:
        for meta in data.rglob("metadata.textproto"):
            meta.write_text(meta.read_text() + "label_to_index_map {\n  key: 'a'\n  value: 0\n}\n")
    for f in path.glob("*_label.name"):
        f.unlink()
    return path


def lying_record_header(claimed: int = 1 << 40, then: int = 0) -> bytes:
    """TFRecord bytes whose first header claims ``claimed`` bytes (its CRC is right),
    followed by ``then`` zero bytes."""
    length = struct.pack("<Q", claimed)
    return length + struct.pack("<I", masked_crc32c(length)) + bytes(then)


def zip_with(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def nested_zip_folder(
    root: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED
) -> Path:
    """An extracted upload holding only ``x.data.zip`` (the given members)."""
    root.mkdir(parents=True, exist_ok=True)
    zip_with(root / "x.data.zip", members, method)
    return root


def bzip2_ratio(n: int) -> float:
    """How much n zero bytes shrink under bzip2 (what a zip bomb exploits)."""
    return n / len(bz2.compress(bytes(n)))

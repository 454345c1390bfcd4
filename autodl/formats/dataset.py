"""Open an AutoDL dataset (folder or zip) and read its splits as TensorFlow would.

>>> ds = open_dataset("handdigits/")                        # doctest: +SKIP
>>> ds.spec.shape, len(ds.train), ds.train.load().x.shape   # doctest: +SKIP
((1, 8, 8, 1), 1039, (1039, 1, 8, 8, 1))

Each record becomes an `Example` (id, float32 x of shape (T, H, W, C), float32
label vector) following the official reader (``dataset.py`` of the AutoDL
starting kit):

- labels: ``label_index``/``label_score`` scattered into zeros of length
  ``output_dim`` (``tf.sparse_to_dense``); test and unlabelled records have
  empty lists, hence zero vectors;
- DENSE: the steps of ``0_dense_input`` (H*W*C floats each) reshaped to
  (steps, H, W, C);
- COMPRESSED: one image per ``0_compressed`` value, decoded to ``num_channels``
  channels and scaled by ``float32(1/255)``; variable-size images give variable
  shapes (``Arrays.x`` is then a list). PNG pixels equal TensorFlow's; JPEG
  pixels too when ``simplejpeg`` is installed, else within a few levels (see
  ``images.py``);
- SPARSE: ``0_sparse_{row,col,value}_index`` (+ optional ``0_sparse_channel_index``)
  scattered into zeros of shape (T, H, W, C); the step index of a value is the
  position of its step in the feature list, as in the official reader.

Deviations, on purpose: ``num_channels`` missing for COMPRESSED data is learned
from the first frame (the TF reader would fall back to the proto default 1 and
decode the kit's colour ``Monkeys`` to gray); a record without ``id`` gets its
position in the split. A record that TF could not parse either (wrong number of
values, out-of-range label ...) raises `FormatError` naming file, record, field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _records, images
from autodl.formats._layout import Layout, Node, locate
from autodl.formats.spec import Metadata, parse_metadata, spec_from_metadata
from autodl.formats.tfrecord import count_records, read_records, split_files
from autodl.formats.types import (
    Arrays,
    DatasetSpec,
    Example,
    RawExample,
    Split,
    stack_if_same_shape,
)

RecordError = _records.RecordError
CHUNK_BYTES = 64 << 20  # encoded frames decoded together by `TFRecordSplit.load`


# ---------------------------------------------------------------- record -> arrays


def labels_of(d: _records.Decoded, output_dim: int) -> np.ndarray:
    """The dense label vector of a record (``tf.sparse_to_dense`` of its lists)."""
    y = np.zeros(output_dim, np.float32)
    li = d.label_index or []
    ls = d.label_score or []
    if len(li) != len(ls):
        raise RecordError(
            "label_score",
            f"label_score holds {len(ls)} values for {len(li)} label indices",
            f"{len(li)} scores",
        )
    for i, score in zip(li, ls, strict=True):
        if not 0 <= i < output_dim:
            raise RecordError(
                "label_index",
                f"label index {i} is out of range",
                f"0 … {output_dim - 1} (output_dim is {output_dim})",
            )
        y[i] = score
    return y


def dense_x(values: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """(steps, k) floats -> (steps, H, W, C), checking k = H*W*C and the step count."""
    t, h, w, c = shape
    steps, k = values.shape
    per = h * w * c
    if h <= 0 or w <= 0:
        raise RecordError(
            _records.DENSE_KEY,
            f"DENSE data but the metadata gives the matrix size {h}×{w}",
            "row_count and col_count ≥ 1",
        )
    if steps and k != per:
        raise RecordError(
            _records.DENSE_KEY,
            f"a step holds {k} values",
            f"{per} = row_count × col_count × num_channels ({h}×{w}×{c})",
        )
    if t > 0 and steps != t:
        raise RecordError(
            _records.DENSE_KEY, f"the record has {steps} steps", f"sequence_size = {t}"
        )
    return values.reshape(steps, h, w, c)


def frames_x(pixels: list[np.ndarray], shape: tuple[int, int, int, int]) -> np.ndarray:
    """Decoded uint8 frames -> float32 (frames, h, w, C) scaled to [0, 1]."""
    t, h, w, c = shape
    if t > 0 and len(pixels) != t:
        raise RecordError(
            _records.COMPRESSED_KEY, f"the record has {len(pixels)} frames", f"sequence_size = {t}"
        )
    if not pixels:
        return np.zeros((0, max(h, 0), max(w, 0), c), np.float32)
    sizes = {p.shape[:2] for p in pixels}
    if len(sizes) > 1:
        raise RecordError(
            _records.COMPRESSED_KEY,
            f"the frames have different sizes {sorted(sizes)}",
            "one size per record",
        )
    ph, pw = pixels[0].shape[:2]
    if (h > 0 and ph != h) or (w > 0 and pw != w):
        raise RecordError(
            _records.COMPRESSED_KEY,
            f"a frame is {ph}×{pw} pixels",
            f"{h}×{w} (row_count × col_count)",
        )
    return images.to_float(np.stack(pixels))


def sparse_x(s: dict[str, np.ndarray], shape: tuple[int, int, int, int]) -> np.ndarray:
    """Sparse entries scattered into zeros (T, H, W, C)."""
    t, h, w, c = shape
    if h <= 0 or w <= 0:
        raise RecordError(
            _records.SPARSE_KEYS[0],
            f"SPARSE data but the metadata gives the matrix size {h}×{w}",
            "row_count and col_count ≥ 1",
        )
    steps = s["step"]
    if t <= 0:
        t = int(steps.max()) + 1 if len(steps) else 0
    for name, key, limit in (
        ("step", "0_sparse_value", t),
        ("row", "0_sparse_row_index", h),
        ("col", "0_sparse_col_index", w),
        ("channel", "0_sparse_channel_index", c),
    ):
        idx = s[name]
        bad = idx[(idx < 0) | (idx >= limit)]
        if len(bad):
            raise RecordError(
                key, f"{name} index {int(bad[0])} is out of range", f"0 … {limit - 1}"
            )
    x = np.zeros((t, h, w, c), np.float32)
    x[steps, s["row"], s["col"], s["channel"]] = s["value"]
    return x


# ---------------------------------------------------------------- split


def _format_error(file: str, record: int, rid: int | None, e: RecordError) -> FormatError:
    where = f"record {record}" + (f" (id {rid})" if rid is not None else "")
    field_part = f" field '{e.field}':" if e.field else ""
    expected = f"; expected {e.expected}" if e.expected else ""
    return FormatError(
        f"{file}: {where}:{field_part} {e.message}{expected}.",
        "Check this record (autodl check) and re-export the split.",
        file=file,
        record=record,
        field=e.field or None,
    )


class TFRecordSplit(Split):
    """A split stored as TFRecord shards (``<split>/sample*``), read lazily."""

    def __init__(
        self,
        name: str,
        spec: DatasetSpec,
        folder: Node,
        *,
        workers: int | None = None,
        verify: bool = True,
    ):
        self.name = name
        self.spec = spec
        self.folder = folder
        self.files = split_files(folder)
        self.workers = workers
        self.verify = verify
        self._len: int | None = None

    def display(self, f: Node) -> str:
        return f"{self.name}/{f.name}"

    def __len__(self) -> int:
        if self._len is None:
            self._len = sum(count_records(f) for f in self.files)
        return self._len

    def _decoded(
        self, limit: int | None = None
    ) -> Iterator[tuple[int, _records.Decoded, str, int]]:
        fmt = self.spec.format
        for pos, (file, i, data) in enumerate(self.records(limit)):
            try:
                yield pos, _records.decode_record(data, fmt), file, i
            except RecordError as e:
                raise _format_error(file, i, None, e) from None

    def records(self, limit: int | None = None) -> Iterator[tuple[str, int, bytes]]:
        """(file shown to users, record number in that file, bytes), in order;
        only the first ``limit`` records are read."""
        n = 0
        for f in self.files:
            for i, data in enumerate(
                read_records(f, verify=self.verify, limit=None if limit is None else limit - n)
            ):
                yield self.display(f), i, data
                n += 1
            if limit is not None and n >= limit:
                return

    def _labels(self, d: _records.Decoded, pos: int, file: str, i: int) -> tuple[int, np.ndarray]:
        rid = d.id if d.id is not None else pos
        try:
            return rid, labels_of(d, self.spec.output_dim)
        except RecordError as e:
            raise _format_error(file, i, d.id, e) from None

    def _x(self, d: _records.Decoded, file: str, i: int) -> np.ndarray:
        try:
            if d.dense is not None:
                return dense_x(d.dense, self.spec.shape)
            if d.sparse is not None:
                return sparse_x(d.sparse, self.spec.shape)
            pixels = [self._decode_frame(f, file, i) for f in d.frames or []]
            return frames_x(pixels, self.spec.shape)
        except RecordError as e:
            raise _format_error(file, i, d.id, e) from None

    def _decode_frame(
        self, frame: bytes | np.ndarray | ValueError, file: str, i: int
    ) -> np.ndarray:
        if isinstance(frame, bytes):
            try:
                return images.decode_frame(frame, self.spec.shape[3])
            except ValueError as e:
                frame = e
        if isinstance(frame, ValueError):
            raise RecordError(
                _records.COMPRESSED_KEY, f"a frame does not decode: {frame}", "a PNG or JPEG image"
            )
        return frame

    def __iter__(self) -> Iterator[Example]:
        for pos, d, file, i in self._decoded():
            rid, y = self._labels(d, pos, file, i)
            yield Example(rid, self._x(d, file, i), y)

    def iter_raw(self, limit: int | None = None) -> Iterator[RawExample]:
        """COMPRESSED records with their frames still encoded, in record order."""
        if self.spec.format != "COMPRESSED":
            raise FormatError(
                f"{self.name}: iter_raw() needs COMPRESSED data, this split is {self.spec.format}.",
                "Use iter() or load().",
            )
        for pos, d, file, i in self._decoded(limit):
            rid, y = self._labels(d, pos, file, i)
            yield RawExample(rid, list(d.frames or []), y)

    def load(
        self, limit: int | None = None, decode: bool = True, max_side: int | None = None
    ) -> Arrays:
        """The first ``limit`` records (all when None) as `Arrays`, read in one pass.

        COMPRESSED frames are decoded in bulk on every core, a chunk of records at a
        time (about ``CHUNK_BYTES`` of encoded frames), so that only one chunk is held
        at full resolution. ``max_side``: images (frames, or the H x W planes of DENSE
        data) larger than that on a side are shrunk to fit, aspect kept, by area
        averaging (`images.shrink`); the size check against the metadata is then made
        on the shrunk sizes. With ``decode=False`` (COMPRESSED only) ``x`` is a list
        holding each record's list of encoded frames.
        """
        ids, ys, xs, pending = [], [], [], []
        compressed = self.spec.format == "COMPRESSED"
        if not decode and not compressed:
            raise FormatError(
                f"{self.name}: load(decode=False) needs COMPRESSED data.", "Call load() instead."
            )
        size = 0
        for pos, d, file, i in self._decoded(limit):
            rid, y = self._labels(d, pos, file, i)
            ids.append(rid)
            ys.append(y)
            if not compressed:
                xs.append(images.shrink_float(self._x(d, file, i), max_side))
            elif not decode:
                xs.append(list(d.frames or []))
            else:
                pending.append((d, file, i))
                size += sum(len(f) for f in d.frames or [])
                if size >= CHUNK_BYTES:
                    xs += self._decode_records(pending, max_side)
                    pending, size = [], 0
        if pending:
            xs += self._decode_records(pending, max_side)
        labels = np.stack(ys) if ys else np.zeros((0, self.spec.output_dim), np.float32)
        ids_arr = np.asarray(ids, np.int64)
        return Arrays(ids_arr, xs if not decode else stack_if_same_shape(xs), labels)

    def _decode_records(
        self, records: list[tuple[_records.Decoded, str, int]], max_side: int | None
    ) -> list[np.ndarray]:
        """x of each record, its frames decoded together (then dropped)."""
        flat = [f for d, _, _ in records for f in (d.frames or [])]
        pixels = images.decode_frames(flat, self.spec.shape[3], self.workers, max_side)
        t, h, w, c = self.spec.shape
        if h > 0 and w > 0:
            h, w = images.shrunk_size(h, w, max_side)
        xs, k = [], 0
        for d, file, i in records:
            n = len(d.frames or [])
            try:
                mine = [self._decode_frame(p, file, i) for p in pixels[k : k + n]]
                xs.append(frames_x(mine, (t, h, w, c)))
            except RecordError as e:
                if max_side is not None and e.expected:
                    e.expected += f", sizes after shrinking to at most {max_side} px per side"
                raise _format_error(file, i, d.id, e) from None
            d.frames = None  # the encoded bytes are no longer needed
            k += n
        return xs


# ---------------------------------------------------------------- dataset


@dataclass
class Dataset:
    """An opened AutoDL dataset. Close it (or use ``with``) when it came from a zip."""

    path: Path
    name: str
    spec: DatasetSpec
    train: TFRecordSplit
    test: TFRecordSplit
    unlabelled: TFRecordSplit | None
    solution: np.ndarray | None
    solution_path: str | None
    metadata: Metadata | None = None
    layout: Layout | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.layout is not None:
            self.layout.close()

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_solution(node: Node, file: str | None = None) -> np.ndarray:
    """A ``.solution`` file: one row per test record, numbers separated by spaces
    (integers or floats), as a float64 array (rows, columns)."""
    file = file or node.name
    try:
        text = node.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(
            f"{file}: cannot be read ({e}).", "Re-export the solution file.", file=file
        ) from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise FormatError(
                f"{file}: line {n} holds something that is not a number: {line.strip()[:60]!r}.",
                "A solution row is numbers separated by spaces.",
                file=file,
                record=n - 1,
            ) from None
        if len(rows[-1]) != len(rows[0]):
            raise FormatError(
                f"{file}: line {n} has {len(rows[-1])} columns but line 1 has {len(rows[0])}.",
                "Every row needs one column per class.",
                file=file,
                record=n - 1,
            )
    return np.array(rows, np.float64).reshape(len(rows), len(rows[0]) if rows else 0)


def read_split_metadata(folder: Node, split: str) -> Metadata:
    meta = folder / "metadata.textproto"
    file = f"{split}/metadata.textproto"
    if not meta.is_file():
        raise FormatError(
            f"{file} is missing.", "Every split folder needs its metadata.textproto.", file=file
        )
    return parse_metadata(meta.read_bytes(), file=file)


def learn_channels(folders: list[Node]) -> int | None:
    """Channels of the first decodable frame of the first record (1 or 3)."""
    for folder in folders:
        for f in split_files(folder):
            try:
                for data in read_records(f, limit=1):
                    frames = _records.decode_record(data, "COMPRESSED").frames
                    if frames:
                        return images.frame_channels(frames[0])
            except (FormatError, RecordError, OSError, ValueError):
                continue
    return None


def open_dataset(
    path: str | Path, *, workers: int | None = None, verify_crc: bool = True
) -> Dataset:
    """Open a dataset folder, its ``<name>.data`` folder, or a zip (see ``_layout``).

    Raises `FormatError` when a required part is missing or unreadable.
    """
    lay = locate(path)
    try:
        for split in ("train", "test"):
            if not (lay.data_dir / split).is_dir():
                raise FormatError(
                    f"{lay.name}.data/{split}/ is missing.",
                    "A dataset needs train/ and test/ folders.",
                    file=f"{split}/",
                )
        metas = {s: read_split_metadata(lay.data_dir / s, s) for s in ("train", "test")}
        unl_meta = None
        if lay.unlabelled is not None:
            has_meta = (lay.unlabelled / "metadata.textproto").is_file()
            unl_meta = (
                read_split_metadata(lay.unlabelled, "unlabelled") if has_meta else metas["train"]
            )
        label_lines = None
        if lay.label_file is not None:
            label_lines = lay.label_file.read_bytes().decode("utf-8", "replace").splitlines()
        learned = None
        tm = metas["train"]
        if tm.storage_format == "COMPRESSED" and (tm.num_channels is None or tm.num_channels <= 0):
            learned = learn_channels([lay.data_dir / "train", lay.data_dir / "test"])
        spec = spec_from_metadata(
            tm, lay.name, label_file_lines=label_lines, learned_channels=learned
        )

        def split_spec(meta: Metadata, split: str) -> DatasetSpec:
            s = spec_from_metadata(
                meta,
                lay.name,
                label_file_lines=label_lines,
                learned_channels=learned,
                file=f"{split}/metadata.textproto",
            )
            return dataclasses.replace(
                s,
                label_names=s.label_names or spec.label_names,
                vocabulary=s.vocabulary or spec.vocabulary,
            )

        def make(split: str, folder: Node, meta: Metadata) -> TFRecordSplit:
            s = TFRecordSplit(
                split, split_spec(meta, split), folder, workers=workers, verify=verify_crc
            )
            if not s.files:
                raise FormatError(
                    f"{split}/ holds no sample* record files.",
                    "Each split folder needs its sample-*.tfrecord files.",
                    file=f"{split}/",
                )
            return s

        train = make("train", lay.data_dir / "train", tm)
        test = make("test", lay.data_dir / "test", metas["test"])
        unlabelled = make("unlabelled", lay.unlabelled, unl_meta) if unl_meta is not None else None
        solution = read_solution(lay.solution) if lay.solution is not None else None
        sol_path = str(lay.solution) if lay.solution is not None else None
        return Dataset(
            Path(path), lay.name, spec, train, test, unlabelled, solution, sol_path, tm, lay
        )
    except BaseException:
        lay.close()
        raise


__all__ = ["Dataset", "TFRecordSplit", "open_dataset", "read_solution"]

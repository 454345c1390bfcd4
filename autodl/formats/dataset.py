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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _loader, _records, images, limits
from autodl.formats._arrays import (  # noqa: E402,F401 - the reader's public helpers
    check_decoded,
    check_frame_sizes,
    check_frames,
    dense_x,
    frames_x,
    labels_of,
    sparse_x,
)
from autodl.formats._layout import Layout, Node, locate
from autodl.formats.names import layout_name_problem
from autodl.formats.solution import parse_solution, read_solution  # noqa: E402,F401
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


# ---------------------------------------------------------------- split


_format_error = _records.format_error


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
        #: `load` decodes records in bulk (``_bulk``); False forces the general
        #: decoder on every record (the bulk path's baseline in tests and benches).
        self.bulk = True
        self._len: int | None = None
        #: the metadata's ``sample_count``: a hint for sizing `load`'s output, never
        #: trusted (records are counted as they are read)
        self.expected: int | None = None

    def display(self, f: Node) -> str:
        return f"{self.name}/{f.name}"

    def __len__(self) -> int:
        if self._len is None:
            n = sum(count_records(f) for f in self.files)
            if n > limits.current().max_records:
                raise self._too_many_records(self.files[-1])
            self._len = n
        return self._len

    def stored_bytes(self) -> int:
        """The size of the split's record files as stored (uncompressed, in a zip)."""
        return sum(limits.file_size(f) for f in self.files)

    def _too_many_records(self, f: Node) -> FormatError:
        return limits.exceeded(
            "max_records",
            f"the {self.name} split holds more than the {{limit}} records allowed",
            file=self.display(f),
        )

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
        most = limits.current().max_records
        for f in self.files:
            for i, data in enumerate(
                read_records(
                    f,
                    verify=self.verify,
                    limit=None if limit is None else limit - n,
                    name=self.display(f),
                )
            ):
                if n >= most:
                    raise self._too_many_records(f)
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
            check_frames(d.frames or [], self.spec.shape[3])
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
        if isinstance(frame, images.FrameTooLarge):
            raise RecordError(_records.COMPRESSED_KEY, frame.what, cap="max_frame_pixels")
        if isinstance(frame, ValueError):
            raise RecordError(
                _records.COMPRESSED_KEY, f"a frame does not decode: {frame}", "a PNG or JPEG image"
            )
        return frame

    def __iter__(self) -> Iterator[Example]:
        for pos, d, file, i in self._decoded():
            rid, y = self._labels(d, pos, file, i)
            yield Example(rid, self._x(d, file, i), y)

    def read_at(self, positions: Iterable[int]) -> dict[int, Example]:
        """The records at ``positions`` (0-based, record order across the shards), decoded;
        the others are only framed (their bytes pass, undecoded, one at a time) and
        nothing after the last wanted record is read. Memory: the wanted examples."""
        want = set(positions)
        if not want:
            return {}
        if min(want) < 0:
            raise ValueError(f"{self.name}: record positions start at 0, got {min(want)}")
        out: dict[int, Example] = {}
        for pos, (file, i, data) in enumerate(self.records(limit=max(want) + 1)):
            if pos not in want:
                continue
            try:
                d = _records.decode_record(data, self.spec.format)
            except RecordError as e:
                raise _format_error(file, i, None, e) from None
            rid, y = self._labels(d, pos, file, i)
            out[pos] = Example(rid, self._x(d, file, i), y)
        return out

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
        if self.bulk and not compressed:
            return _loader.load_arrays(self, limit, max_side)
        size = 0

        def take(pos, d, file, i, known) -> None:
            nonlocal pending, size
            rid, y = known or self._labels(d, pos, file, i)
            ids.append(rid)
            ys.append(y)
            if not compressed:
                xs.append(images.shrink_float(self._x(d, file, i), max_side))
            elif not decode:
                xs.append(list(d.frames or []))
            else:
                try:
                    check_frames(d.frames or [], self.spec.shape[3], max_side)
                except RecordError as e:
                    raise _format_error(file, i, d.id, e) from None
                pending.append((d, file, i))
                size += sum(len(f) for f in d.frames or [])
                if size >= CHUNK_BYTES:
                    xs.append(self._decode_records(pending, max_side))
                    pending, size = [], 0

        room = None
        if self.bulk and compressed and decode:
            room = _loader.Preallocated(self, limit)
            for file, chunk, n, bulk in _loader.compressed_chunks(self, limit):
                # A chunk of plain PNGs of one size: decoded as one block, in threads
                # (no error can come from it, so none is reported out of order).
                fast = None
                if not pending:
                    fast = _loader.frames_chunk(self, bulk, n, max_side, room)
                if fast is not None:
                    ids.extend(fast[0].tolist())
                    ys.extend(fast[1])
                    xs.append(fast[2])
                    continue
                for record in _loader.chunk_records(self, file, chunk, n, bulk):
                    take(*record)
        else:
            for record in self._decoded_for_load(limit):
                take(*record)
        if pending:
            xs.append(self._decode_records(pending, max_side))
        labels = np.stack(ys) if ys else np.zeros((0, self.spec.output_dim), np.float32)
        ids_arr = np.asarray(ids, np.int64)
        if compressed and decode:  # xs: the blocks of `_decode_records`
            whole = room.whole(xs) if room is not None else None
            return Arrays(ids_arr, whole if whole is not None else _loader.joined(xs), labels)
        return Arrays(ids_arr, xs if not decode else stack_if_same_shape(xs), labels)

    def _decoded_for_load(self, limit: int | None):
        if self.bulk:
            yield from _loader.decoded(self, limit)
        else:
            for pos, d, file, i in self._decoded(limit):
                yield pos, d, file, i, None

    def _decode_records(
        self, records: list[tuple[_records.Decoded, str, int]], max_side: int | None
    ) -> np.ndarray | list[np.ndarray]:
        """x of each record, its frames decoded together (then dropped): one array
        (records, T, H, W, C) when every record has as many frames of one size (the
        checks of `frames_x` then hold for all at once), else a list."""
        flat = [f for d, _, _ in records for f in (d.frames or [])]
        t, h, w, c = self.spec.shape
        if h > 0 and w > 0:
            h, w = images.shrunk_size(h, w, max_side)
        k = _loader.frame_count(records, t)
        block = _loader.png_block(k, flat, (t, h, w, c), max_side, self.workers)
        if block is not None:
            for d, _, _ in records:
                d.frames = None
            return block
        # Every header went through check_frames in load(): no second parse per frame.
        pixels = images.decode_frames(
            flat, self.spec.shape[3], self.workers, max_side, checked=True
        )
        block = _loader.frames_block(records, pixels, (t, h, w, c))
        if block is not None:
            for d, _, _ in records:
                d.frames = None
            return block
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


def read_split_metadata(folder: Node, split: str) -> Metadata:
    meta = folder / "metadata.textproto"
    file = f"{split}/metadata.textproto"
    if not meta.is_file():
        raise FormatError(
            f"{file} is missing.", "Every split folder needs its metadata.textproto.", file=file
        )
    return parse_metadata(limits.read_bounded(meta, "max_metadata_bytes", file), file=file)


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
        if bad_name := layout_name_problem(lay):  # it becomes file names: see formats.names
            raise FormatError(bad_name[1], file=bad_name[0], field="name")
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
            raw = limits.read_bounded(lay.label_file, "max_metadata_bytes", lay.label_file.name)
            label_lines = raw.decode("utf-8", "replace").splitlines()
        learned = None
        tm = metas["train"]
        if tm.storage_format == "COMPRESSED" and (tm.num_channels is None or tm.num_channels <= 0):
            learned = learn_channels([lay.data_dir / "train", lay.data_dir / "test"])
        spec = spec_from_metadata(
            tm, lay.name, label_file_lines=label_lines, learned_channels=learned
        )

        def split_spec(meta: Metadata, split: str) -> DatasetSpec:
            if meta is tm:
                return spec  # the same metadata gives the same spec
            same_vocab = (
                bool(meta.channel_to_index) and meta.channel_to_index == tm.channel_to_index
            )
            s = spec_from_metadata(
                dataclasses.replace(meta, channel_to_index=[]) if same_vocab else meta,
                lay.name,
                label_file_lines=label_lines,
                learned_channels=learned,
                file=f"{split}/metadata.textproto",
            )
            if same_vocab:  # train's vocabulary (30k words: its dict is built once)
                s = dataclasses.replace(
                    s,
                    vocabulary=spec.vocabulary,
                    domain=DatasetSpec.detect_domain(s.shape, spec.vocabulary is not None),
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
            s.expected = meta.sample_count
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

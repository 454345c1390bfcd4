"""Write AutoDL datasets in the official layout, byte-compatible with TensorFlow.

>>> import numpy as np, tempfile
>>> from autodl.formats.types import DatasetSpec
>>> spec = DatasetSpec("toy", (1, 1, 3, 1), 2)
>>> w = DatasetWriter(tempfile.mkdtemp(), spec)
>>> x = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3, 1)
>>> y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
>>> root = w.write(train=(x, y), test=(x[:2], y[:2]))
>>> sorted(p.name for p in root.iterdir())
['metadata', 'toy.data', 'toy.solution']

Layout written (as ``check_n_format.py`` / ``format_unseen.py`` write it)::

    <root>/<name>/metadata                              empty file
    <root>/<name>/<name>.data/{train,test}/metadata.textproto
    <root>/<name>/<name>.data/{train,test}/sample-<name>-{train,test}.tfrecord
    <root>/<name>/<name>.data/unlabelled/...            optional (sample-unlabelled.tfrecord)
    <root>/<name>/<name>.solution                       test labels, one row per test record
    <root>/<name>/<name>_label.name                     optional, one class name per line

Conventions of the official tools: test ids 0 … n_test-1, train ids n_test …,
unlabelled ids 0 … n-1; test and unlabelled records carry empty
``label_index``/``label_score`` lists; a label is stored as the indices of
the non-zero entries of its vector and their values.

Records are serialised as ``SerializeToString(deterministic=True)`` would:
context keys sorted (``id``, ``label_index``, ``label_score``). TensorFlow's
own writer emits map entries in hash order, which differs between runs, so
``context_order`` lets a caller reproduce a given file byte for byte.

Solution files: integers (``0 1``) when every value is 0 or 1, as the
image/text tools write; otherwise Python floats (``0.25``).
``solution_style="float"`` writes ``0.0 1.0`` as the tabular tool does.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.formats import _wire
from autodl.formats.archive import zip_folder
from autodl.formats.images import encode_frame
from autodl.formats.spec import Metadata, metadata_for, render_metadata
from autodl.formats.tfrecord import TFRecordWriter
from autodl.formats.types import DatasetSpec

DEFAULT_CONTEXT_ORDER = ("id", "label_index", "label_score")


def sparse_labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """A label vector -> (indices of its non-zero entries, their values).
    A sequence of ints is taken as the indices themselves (scores 1)."""
    arr = np.asarray(y)
    if arr.dtype.kind in "iu" and arr.ndim == 1 and not isinstance(y, np.ndarray):
        return arr.astype(np.int64), np.ones(len(arr), np.float32)
    arr = arr.astype(np.float32).ravel()
    idx = np.flatnonzero(arr)
    return idx.astype(np.int64), arr[idx]


def format_solution(labels: np.ndarray, style: str = "auto") -> str:
    """Solution text: one row per example, values separated by single spaces."""
    labels = np.asarray(labels, np.float64).reshape(len(labels), -1)
    if style == "auto":
        style = "int" if np.isin(labels, (0.0, 1.0)).all() else "float"
    if style == "int":
        return "".join(" ".join(f"{v:.0f}" for v in row) + "\n" for row in labels)
    if style == "float":
        return "".join(" ".join(repr(float(v)) for v in row) + "\n" for row in labels)
    raise ValueError(f"unknown solution style {style!r}")


class DatasetWriter:
    """Write one dataset under ``root/<spec.name>/``.

    ``x`` for a split, by storage format (``spec.format``):

    - DENSE: an array (N, T, H, W, C), or a list of (T_i, H, W, C) arrays;
    - COMPRESSED: per example either a list of encoded frames (bytes, written
      as they are) or an array (T, H, W, C) of uint8 / floats in [0, 1] that
      is encoded as ``image_format`` (PNG or JPEG) with Pillow;
    - SPARSE: arrays as for DENSE; the non-zero entries are stored, one
      ``Feature`` per step (the official reader takes the step from it).

    ``labels``: an array (N, output_dim) (one-hot, multi-label or scores), or
    per example a list of class indices.
    """

    def __init__(
        self,
        root: str | Path,
        spec: DatasetSpec,
        *,
        image_format: str = "PNG",
        jpeg_quality: int = 95,
        label_map: bool = True,
        label_file: bool = False,
        has_locality: bool | None = None,
        metadata_layout: str = "contrib",
        solution_style: str = "auto",
        context_order: Sequence[str] = DEFAULT_CONTEXT_ORDER,
    ):
        self.root = Path(root)
        self.spec = spec
        self.image_format = image_format
        self.jpeg_quality = jpeg_quality
        self.label_map = label_map
        self.label_file = label_file
        self.has_locality = has_locality
        self.metadata_layout = metadata_layout
        self.solution_style = solution_style
        self.context_order = tuple(context_order)

    @property
    def dataset_dir(self) -> Path:
        return self.root / self.spec.name

    @property
    def data_dir(self) -> Path:
        return self.dataset_dir / f"{self.spec.name}.data"

    # ------------------------------------------------------------ records

    def _context(self, rid: int, labels: Any | None) -> dict[str, bytes]:
        if labels is None:
            idx, scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        else:
            idx, scores = sparse_labels(labels)
        ctx = {
            "id": _wire.encode_feature("int64", [rid]),
            "label_index": _wire.encode_feature("int64", idx),
            "label_score": _wire.encode_feature("float", scores),
        }
        return {k: ctx[k] for k in self.context_order}

    def _frames(self, x: Any) -> list[bytes]:
        if isinstance(x, (list, tuple)) and all(isinstance(f, (bytes, bytearray)) for f in x):
            return [bytes(f) for f in x]
        arr = np.asarray(x)
        if arr.ndim == 3:  # one frame (H, W, C)
            arr = arr[None]
        return [encode_frame(f, self.image_format, self.jpeg_quality) for f in arr]

    def _feature_lists(self, x: Any) -> dict[str, bytes]:
        fmt = self.spec.format
        if fmt == "COMPRESSED":
            return {"0_compressed": _wire.encode_bytes_steps(self._frames(x))}
        arr = np.asarray(x, np.float32)
        _, h, w, c = self.spec.shape
        if fmt == "DENSE":
            return {"0_dense_input": _wire.encode_float_steps(arr)}
        arr = arr.reshape(len(arr), h, w, c)
        lists: dict[str, list[bytes]] = {k: [] for k in ("channel", "col", "row", "value")}
        for step in arr:
            r, col, ch = np.nonzero(step)
            lists["row"].append(_wire.encode_feature("int64", r))
            lists["col"].append(_wire.encode_feature("int64", col))
            lists["channel"].append(_wire.encode_feature("int64", ch))
            lists["value"].append(_wire.encode_feature("float", step[r, col, ch]))
        names = {
            "channel": "0_sparse_channel_index",
            "col": "0_sparse_col_index",
            "row": "0_sparse_row_index",
            "value": "0_sparse_value",
        }
        return {names[k]: _wire.encode_feature_list(v) for k, v in lists.items()}

    def encode_record(self, rid: int, x: Any, labels: Any | None = None) -> bytes:
        """One serialised SequenceExample."""
        return _wire.encode_sequence_example(self._context(rid, labels), self._feature_lists(x))

    # ------------------------------------------------------------ files

    def write_split(
        self,
        split: str,
        x: Any,
        labels: Any | None = None,
        *,
        first_id: int = 0,
        metadata: Metadata | None = None,
        folder: Path | None = None,
    ) -> Path:
        """Write ``<split>/metadata.textproto`` and its record file; returns the folder.

        ``labels`` are stored in the records (pass None for test and unlabelled).
        """
        folder = folder or (self.data_dir / split)
        folder.mkdir(parents=True, exist_ok=True)
        n = len(x)
        meta = metadata or metadata_for(
            self.spec, n, label_map=self.label_map, has_locality=self.has_locality
        )
        (folder / "metadata.textproto").write_text(
            render_metadata(meta, self.metadata_layout), encoding="utf-8"
        )
        fname = (
            "sample-unlabelled.tfrecord"
            if split == "unlabelled"
            else f"sample-{self.spec.name}-{split}.tfrecord"
        )
        with TFRecordWriter(folder / fname) as w:
            for i in range(n):
                w.write(
                    self.encode_record(first_id + i, x[i], None if labels is None else labels[i])
                )
        return folder

    def write_solution(self, labels: Any) -> Path:
        dense = np.array([self._dense(y) for y in labels], np.float64).reshape(
            len(labels), self.spec.output_dim
        )
        path = self.dataset_dir / f"{self.spec.name}.solution"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(format_solution(dense, self.solution_style), encoding="utf-8")
        return path

    def _dense(self, y: Any) -> np.ndarray:
        idx, scores = sparse_labels(y)
        out = np.zeros(self.spec.output_dim, np.float64)
        out[idx] = scores
        return out

    def write(
        self,
        train: tuple[Any, Any],
        test: tuple[Any, Any],
        unlabelled: Any | None = None,
    ) -> Path:
        """Write the whole dataset; returns ``root/<name>`` (the dataset root)."""
        x_test, y_test = test
        x_train, y_train = train
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        (self.dataset_dir / "metadata").write_bytes(b"")
        self.write_split("test", x_test, None)
        self.write_split("train", x_train, y_train, first_id=len(x_test))
        self.write_solution(y_test)
        if unlabelled is not None:
            self.write_split("unlabelled", unlabelled, None)
        if self.label_file and self.spec.label_names:
            path = self.dataset_dir / f"{self.spec.name}_label.name"
            path.write_text("".join(n + "\n" for n in self.spec.label_names), encoding="utf-8")
        return self.dataset_dir

    def zip(
        self, dest: str | Path | None = None, *, compression: int = zipfile.ZIP_DEFLATED
    ) -> Path:
        """Zip the written dataset in the public service layout: ``metadata``,
        ``<name>.data/`` and ``<name>.solution`` at the archive root.

        ``compression=zipfile.ZIP_STORED`` suits COMPRESSED datasets: their records
        are JPEG/PNG bytes that deflate cannot shrink, only spend time on."""
        dest = Path(dest) if dest is not None else self.root / f"{self.spec.name}.zip"
        return zip_folder(self.dataset_dir, dest, compression=compression)

    def zip_pair(self, folder: str | Path | None = None) -> tuple[Path, Path]:
        """The official pair ``<name>.data.zip`` + ``<name>.solution.zip``
        (as ``zip_dataset.sh``: the unlabelled part is not included)."""
        folder = Path(folder) if folder is not None else self.dataset_dir
        folder.mkdir(parents=True, exist_ok=True)
        name = self.spec.name
        data_zip, sol_zip = folder / f"{name}.data.zip", folder / f"{name}.solution.zip"
        zip_folder(
            self.data_dir,
            data_zip,
            prefix=f"{self.data_dir.name}/",
            include=lambda rel: "unlabelled" not in rel.split("/"),
        )
        with zipfile.ZipFile(sol_zip, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(self.dataset_dir / f"{name}.solution", f"{name}.solution")
        return data_zip, sol_zip

"""The data contract shared by the reader, the writer, the engine and the tests.

A dataset is a `DatasetSpec` plus splits. A split iterates `Example`s in record
order and can load itself into `Arrays` in bulk. `ArraySplit` is an in-memory
split (tests, converters); the TFRecord-backed split lives in `dataset.py`.

Values follow what TensorFlow's official AutoDL reader gives:
- every example is a float32 array (T, H, W, C);
- DENSE values as stored (tabular features, token ids, audio samples);
- COMPRESSED frames decoded and scaled to [0, 1] (uint8 * float32(1/255), as
  ``tf.image.convert_image_dtype`` does);
- SPARSE entries scattered into zeros of shape (T, H, W, 1);
- labels a dense float32 vector of length ``output_dim`` (all zeros for test
  and unlabelled records, whose label lists are empty).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np

Domain = Literal["tabular", "image", "text", "speech", "video"]
StorageFormat = Literal["DENSE", "SPARSE", "COMPRESSED"]
DOMAINS: tuple[str, ...] = ("tabular", "image", "text", "speech", "video")


@dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset, from ``metadata.textproto``.

    ``shape`` is (T, H, W, C) with -1 for a size that varies between examples.
    ``label_names`` lists one name per output column (index order) or is None.
    ``vocabulary`` maps token -> id for text, else None.
    """

    name: str
    shape: tuple[int, int, int, int]
    output_dim: int
    format: StorageFormat = "DENSE"
    label_names: list[str] | None = None
    vocabulary: dict[str, int] | None = None
    domain: Domain = field(default="tabular")

    @staticmethod
    def detect_domain(shape: tuple[int, int, int, int], has_vocabulary: bool) -> Domain:
        """Domain from the tensor shape, as in the AutoDL data browser.

        >>> DatasetSpec.detect_domain((1, 1, 24, 1), False)
        'tabular'
        >>> DatasetSpec.detect_domain((-1, 1, 1, 1), True)
        'text'
        """
        t, h, w, _ = shape
        if t == 1:
            return "tabular" if (h == 1 or w == 1) else "image"
        if h == 1 and w == 1:
            return "text" if has_vocabulary else "speech"
        return "video"


class Example(NamedTuple):
    """One record: its id, a float32 array (T, H, W, C) and a float32 label vector."""

    id: int
    x: np.ndarray
    labels: np.ndarray


class RawExample(NamedTuple):
    """One COMPRESSED record with its frames still encoded (PNG, JPEG ... bytes).

    For an engine that decodes (or resizes) images its own way; see
    ``TFRecordSplit.iter_raw``.
    """

    id: int
    frames: list[bytes]
    labels: np.ndarray


@dataclass
class Arrays:
    """A split loaded in bulk.

    ``x`` is one float32 array (N, T, H, W, C) when every example has the same
    shape, else a list of N float32 arrays (T, H, W, C).
    """

    ids: np.ndarray  # int64 (N,)
    x: np.ndarray | list[np.ndarray]
    labels: np.ndarray  # float32 (N, output_dim)

    def __len__(self) -> int:
        return len(self.ids)


def stack_if_same_shape(xs: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    """One array when all shapes agree (the common case), else the list."""
    if xs and all(x.shape == xs[0].shape for x in xs):
        return np.stack(xs).astype(np.float32, copy=False)
    return xs


class Split:
    """Base class of a dataset split (train, test or unlabelled)."""

    name: str
    spec: DatasetSpec

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Example]:
        raise NotImplementedError

    def load(self, limit: int | None = None, max_side: int | None = None) -> Arrays:
        """The first ``limit`` records (all when None) as `Arrays`; ``max_side``: the
        H x W planes shrunk to at most that per side (`images.shrink_float`)."""
        from autodl.formats.images import shrink_float

        ids, xs, ys = [], [], []
        for i, ex in enumerate(self):
            if limit is not None and i >= limit:
                break
            ids.append(ex.id)
            xs.append(shrink_float(ex.x, max_side))
            ys.append(ex.labels)
        labels = (
            np.stack(ys).astype(np.float32)
            if ys
            else np.zeros((0, self.spec.output_dim), np.float32)
        )
        return Arrays(np.asarray(ids, dtype=np.int64), stack_if_same_shape(xs), labels)


class ArraySplit(Split):
    """A split held in memory.

    >>> spec = DatasetSpec("toy", (1, 1, 3, 1), 2)
    >>> s = ArraySplit("train", spec, np.zeros((4, 1, 1, 3, 1), np.float32),
    ...                np.eye(2, dtype=np.float32)[[0, 1, 0, 1]])
    >>> len(s), s.load().x.shape
    (4, (4, 1, 1, 3, 1))
    """

    def __init__(
        self,
        name: str,
        spec: DatasetSpec,
        x: np.ndarray | list[np.ndarray],
        labels: np.ndarray | None = None,
        ids: np.ndarray | None = None,
    ):
        self.name = name
        self.spec = spec
        self._x = x
        n = len(x)
        self._labels = (
            np.zeros((n, spec.output_dim), np.float32)
            if labels is None
            else np.asarray(labels, np.float32)
        )
        self._ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)

    def __len__(self) -> int:
        return len(self._x)

    def __iter__(self) -> Iterator[Example]:
        for i in range(len(self._x)):
            yield Example(int(self._ids[i]), np.asarray(self._x[i], np.float32), self._labels[i])

    def load(self, limit: int | None = None, max_side: int | None = None) -> Arrays:
        n = len(self._x) if limit is None else min(limit, len(self._x))
        x = self._x[:n]
        fits = isinstance(x, np.ndarray) and x.ndim == 5 and max(x.shape[2:4]) <= (max_side or 0)
        if max_side is not None and not fits:
            from autodl.formats.images import shrink_float

            x = stack_if_same_shape([shrink_float(np.asarray(e, np.float32), max_side) for e in x])
        if isinstance(x, np.ndarray):
            x = x.astype(np.float32, copy=False)
        return Arrays(self._ids[:n], x, self._labels[:n])

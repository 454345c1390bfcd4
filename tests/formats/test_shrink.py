"""``load(max_side=...)``: large frames are shrunk while decoding, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autodl.errors import FormatError
from autodl.formats import dataset as dataset_mod
from autodl.formats import images
from autodl.formats.dataset import open_dataset
from autodl.formats.types import ArraySplit, DatasetSpec
from autodl.formats.writer import DatasetWriter


def _photos(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth random images (JPEG-friendly), uint8 (n, 1, h, w, c)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 1, h // 8, w // 8, c)).astype(np.uint8)
    out = np.empty((n, 1, h, w, c), np.uint8)
    for i in range(n):
        for j in range(c):
            plane = Image.fromarray(small[i, 0, :, :, j]).resize((w, h), Image.BILINEAR)
            out[i, 0, :, :, j] = np.asarray(plane)
    return out


def _dataset(tmp_path, fmt: str, h=120, w=80, c=3, n=12):
    spec = DatasetSpec("photos", (1, h, w, c), 2, format="COMPRESSED")
    x = _photos(n, h, w, c)
    y = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    root = DatasetWriter(tmp_path, spec, image_format=fmt).write((x, y), (x[:4], y[:4]))
    return open_dataset(root), x


def test_shrunk_size_keeps_the_aspect_and_never_grows():
    assert images.shrunk_size(120, 80, 32) == (32, 21)
    assert images.shrunk_size(20, 10, 32) == (20, 10)
    assert images.shrunk_size(4000, 3, 64) == (64, 1)
    assert images.shrunk_size(50, 50, None) == (50, 50)


def test_png_frames_are_shrunk_by_area_averaging(tmp_path):
    ds, x = _dataset(tmp_path, "PNG")
    full = ds.train.load().x
    small = ds.train.load(max_side=32).x
    assert full.shape == (12, 1, 120, 80, 3) and small.shape == (12, 1, 32, 21, 3)
    want = np.stack([images.to_float(images.shrink(x[i, 0], 32))[None] for i in range(12)])
    np.testing.assert_array_equal(small, want)
    # area averaging: the mean brightness is kept
    assert abs(float(small.mean()) - float(full.mean())) < 2 / 255


def test_jpeg_frames_are_decoded_at_a_reduced_scale_first(tmp_path):
    ds, _ = _dataset(tmp_path, "JPEG", h=256, w=192)
    full = ds.train.load().x
    small = ds.train.load(max_side=32).x
    assert small.shape == (12, 1, 32, 24, 3)
    assert images.JPEG_DECODER == "simplejpeg"  # a dependency: DCT-domain scaling
    shrunk_full = np.stack(
        [
            images.to_float(images.shrink((f[0] * 255).round().astype(np.uint8), 32))[None]
            for f in full
        ]
    )
    # a 1/4-scale DCT decode then area averaging differs from a full decode then
    # area averaging by little
    assert np.abs(small - shrunk_full).mean() < 0.02


def test_small_frames_are_untouched_and_chunks_change_nothing(tmp_path, monkeypatch):
    ds, _ = _dataset(tmp_path, "PNG", h=24, w=16)
    whole = ds.train.load().x
    np.testing.assert_array_equal(ds.train.load(max_side=32).x, whole)
    monkeypatch.setattr(dataset_mod, "CHUNK_BYTES", 1)  # one record per chunk
    np.testing.assert_array_equal(ds.train.load().x, whole)


def test_fixed_size_is_still_checked_against_the_metadata(tmp_path):
    ds, _ = _dataset(tmp_path, "PNG")
    ds.train.spec = DatasetSpec("photos", (1, 100, 80, 3), 2, format="COMPRESSED")
    with pytest.raises(
        FormatError, match="record 0 .*expected 32×26 .*after shrinking to at most 32 px"
    ):
        ds.train.load(max_side=32)


def test_dense_and_in_memory_planes_are_shrunk_the_same_way():
    spec = DatasetSpec("toy", (2, 64, 40, 1), 2)
    x = np.random.default_rng(0).random((3, 2, 64, 40, 1)).astype(np.float32)
    small = ArraySplit("train", spec, x).load(max_side=16).x
    assert small.shape == (3, 2, 16, 10, 1)
    np.testing.assert_allclose(small[0, 1, :, :, 0].mean(), x[0, 1, :, :, 0].mean(), atol=1e-3)
    np.testing.assert_array_equal(small[2], images.shrink_float(x[2], 16))
    assert ArraySplit("train", spec, x).load(max_side=64).x is not None

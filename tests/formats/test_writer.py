"""DatasetWriter: reference datasets rewritten byte for byte, round trips of every storage format."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.formats import _wire
from autodl.formats.dataset import open_dataset, read_split_metadata
from autodl.formats.tfrecord import read_records
from autodl.formats.types import DatasetSpec
from autodl.formats.writer import DatasetWriter, format_solution, sparse_labels
from tests.conftest import SAMPLE_NAMES, needs_shared_data
from tests.formats.conftest import dataset_path, loaded


@needs_shared_data
@pytest.mark.reference
@pytest.mark.parametrize("name", SAMPLE_NAMES + ["miniciao"])
def test_rewrite_reproduces_reference_files_byte_for_byte(tmp_path, name):
    """Reading a reference dataset and writing it back gives the same files.

    Proves TF-compatible framing, CRCs and message layout (DENSE tabular, text,
    series; COMPRESSED re-using the original encoded frames)."""
    src = dataset_path(name)
    ds, arrays = loaded(name)
    first = next(read_records(ds.train.files[0]))
    order = tuple(_wire.decode_sequence_example(first).context)  # TF's hash order of this file
    kit = name == "miniciao"
    writer = DatasetWriter(
        tmp_path,
        ds.spec,
        context_order=order,
        solution_style="float" if ds.spec.domain == "tabular" else "auto",
        metadata_layout="kit" if kit else "contrib",
    )
    compressed = ds.spec.format == "COMPRESSED"
    test_x = ds.test.load(decode=False).x if compressed else arrays["test"].x
    train_x = ds.train.load(decode=False).x if compressed else arrays["train"].x
    writer.write_split("test", test_x, None, metadata=read_split_metadata(ds.test.folder, "test"))
    writer.write_split(
        "train", train_x, arrays["train"].labels, first_id=len(test_x), metadata=ds.metadata
    )
    writer.write_solution(ds.solution)
    for split in ("train", "test"):
        assert (writer.data_dir / split / "metadata.textproto").read_bytes() == (
            src / f"{name}.data" / split / "metadata.textproto"
        ).read_bytes()
        if kit:  # the kit's TF wrote each record's context in its own hash order
            continue
        ours = writer.data_dir / split / f"sample-{name}-{split}.tfrecord"
        assert (
            ours.read_bytes()
            == (src / f"{name}.data" / split / f"sample-{name}-{split}.tfrecord").read_bytes()
        )
    assert (
        writer.dataset_dir.joinpath(f"{name}.solution").read_bytes()
        == (src / f"{name}.solution").read_bytes()
    )
    if ds.unlabelled is not None:
        unl = ds.unlabelled.load(decode=False).x if compressed else arrays["unlabelled"].x
        order = tuple(
            _wire.decode_sequence_example(next(read_records(ds.unlabelled.files[0]))).context
        )
        writer.context_order = order
        folder = writer.write_split(
            "unlabelled",
            unl,
            None,
            metadata=read_split_metadata(ds.unlabelled.folder, "unlabelled"),
        )
        assert (folder / "sample-unlabelled.tfrecord").read_bytes() == ds.unlabelled.files[
            0
        ].read_bytes()


def _roundtrip(tmp_path, spec, x_train, y_train, x_test, y_test, unl=None, **kw):
    w = DatasetWriter(tmp_path, spec, **kw)
    root = w.write((x_train, y_train), (x_test, y_test), unl)
    ds = open_dataset(root)
    assert ds.spec == spec
    return ds, w


def test_dense_roundtrip_with_unlabelled_and_label_file(tmp_path):
    rng = np.random.default_rng(0)
    spec = DatasetSpec("d", (1, 1, 5, 1), 3, "DENSE", ["a", "b", "c"])
    x = rng.normal(size=(12, 1, 1, 5, 1)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    ds, w = _roundtrip(
        tmp_path, spec, x[4:], y[4:], x[:4], y[:4], x[:3], label_map=False, label_file=True
    )
    tr, te = ds.train.load(), ds.test.load()
    np.testing.assert_array_equal(tr.x, x[4:])
    np.testing.assert_array_equal(tr.labels, y[4:])
    assert tr.ids.tolist() == list(range(4, 12)) and te.ids.tolist() == [0, 1, 2, 3]
    assert not te.labels.any() and (ds.solution == y[:4]).all()
    assert (w.data_dir / "unlabelled" / "sample-unlabelled.tfrecord").is_file()
    assert ds.unlabelled.load().ids.tolist() == [0, 1, 2]
    assert (w.dataset_dir / "d_label.name").read_text() == "a\nb\nc\n"
    assert "label_to_index_map" not in (w.data_dir / "train" / "metadata.textproto").read_text()


def test_variable_length_sequences(tmp_path):
    spec = DatasetSpec("s", (-1, 1, 1, 1), 2, "DENSE", None, {"x": 0, "y'": 1}, domain="text")
    xs = [np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1) for n in (3, 0, 7, 1)]
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    ds, _ = _roundtrip(tmp_path, spec, xs, y, xs[:2], y[:2])
    got = ds.train.load().x
    assert isinstance(got, list) and [len(g) for g in got] == [3, 0, 7, 1]
    assert all((a == b).all() for a, b in zip(got, xs, strict=True))


@pytest.mark.parametrize(
    "image_format,channels", [("PNG", 1), ("PNG", 3), ("JPEG", 1), ("JPEG", 3)]
)
def test_compressed_roundtrip(tmp_path, image_format, channels):
    rng = np.random.default_rng(1)
    spec = DatasetSpec("c", (2, 6, 5, channels), 2, "COMPRESSED", ["p", "q"], domain="video")
    ramp = np.add.outer(np.arange(6) * 30, np.arange(5) * 20)[None, None, :, :, None]
    px = np.clip(ramp + rng.integers(0, 40, (6, 2, 6, 5, channels)), 0, 255).astype(np.uint8)
    y = np.eye(2, dtype=np.float32)[[0, 1, 1, 0, 1, 0]]
    ds, _ = _roundtrip(
        tmp_path, spec, list(px[2:]), y[2:], list(px[:2]), y[:2], image_format=image_format
    )
    x = ds.train.load().x
    assert x.shape == (4, 2, 6, 5, channels)
    err = np.abs(np.rint(x * 255) - px[2:])
    assert err.max() == 0 if image_format == "PNG" else err.mean() < 12, err.mean()
    raw = ds.train.load(decode=False).x
    magic = b"\x89PNG" if image_format == "PNG" else b"\xff\xd8"
    assert raw[0][0][: len(magic)] == magic and len(raw[0]) == 2


def test_compressed_keeps_given_bytes(tmp_path):
    from autodl.formats.images import encode_frame

    frames = [[encode_frame(np.full((4, 4, 1), v, np.uint8))] for v in (0, 100, 200)]
    spec = DatasetSpec("b", (1, 4, 4, 1), 2, "COMPRESSED", domain="image")
    ds, _ = _roundtrip(tmp_path, spec, frames, [[0], [1], [0]], frames[:1], [[1]])
    assert ds.train.load(decode=False).x == frames
    assert ds.train.load().labels.tolist() == [[1, 0], [0, 1], [1, 0]]
    assert np.allclose(ds.train.load().x[:, 0, 0, 0, 0] * 255, [0, 100, 200])


@pytest.mark.parametrize("shape", [(1, 1, 30, 1), (3, 4, 5, 2)])
def test_sparse_roundtrip(tmp_path, shape):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, *shape)).astype(np.float32)
    x[rng.random(x.shape) < 0.7] = 0.0
    y = np.eye(2, dtype=np.float32)[np.arange(8) % 2]
    spec = DatasetSpec("sp", shape, 2, "SPARSE", domain=DatasetSpec.detect_domain(shape, False))
    ds, w = _roundtrip(tmp_path, spec, x[3:], y[3:], x[:3], y[:3])
    np.testing.assert_array_equal(ds.train.load().x, x[3:])
    np.testing.assert_array_equal(ds.test.load().x, x[:3])
    data = next(read_records(w.data_dir / "train" / "sample-sp-train.tfrecord"))
    lists = _wire.decode_sequence_example(data).feature_lists
    assert list(lists) == [
        "0_sparse_channel_index",
        "0_sparse_col_index",
        "0_sparse_row_index",
        "0_sparse_value",
    ]
    assert len(lists["0_sparse_value"]) == shape[0]  # one Feature per step


def test_multilabel_scores_and_solution_styles(tmp_path):
    y = np.array([[1, 0, 1], [0, 0.5, 0], [0, 0, 0]], np.float32)
    idx, scores = sparse_labels(y[1])
    assert idx.tolist() == [1] and scores.tolist() == [0.5]
    assert sparse_labels([2, 0])[0].tolist() == [2, 0]
    assert format_solution(y[[0, 2]]) == "1 0 1\n0 0 0\n"
    assert format_solution(y[[0, 2]], "float") == "1.0 0.0 1.0\n0.0 0.0 0.0\n"
    assert format_solution(y) == "1.0 0.0 1.0\n0.0 0.5 0.0\n0.0 0.0 0.0\n"
    spec = DatasetSpec("m", (1, 1, 2, 1), 3, "DENSE")
    x = np.zeros((3, 1, 1, 2, 1), np.float32)
    ds, _ = _roundtrip(tmp_path, spec, x, y, x, y)
    np.testing.assert_array_equal(ds.train.load().labels, y)
    np.testing.assert_array_equal(ds.solution, y)


def test_zips(tmp_path):
    spec = DatasetSpec("z", (1, 1, 3, 1), 2, "DENSE")
    x = np.arange(12, dtype=np.float32).reshape(4, 1, 1, 3, 1)
    y = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    w = DatasetWriter(tmp_path / "out", spec)
    w.write((x, y), (x[:2], y[:2]), x[:1])
    service = w.zip()
    import zipfile

    names = zipfile.ZipFile(service).namelist()
    assert {
        "metadata",
        "z.solution",
        "z.data/train/metadata.textproto",
        "z.data/unlabelled/sample-unlabelled.tfrecord",
    } <= set(names)
    with open_dataset(service) as ds:
        assert len(ds.train) == 4 and ds.solution.shape == (2, 2) and len(ds.unlabelled) == 1
    data_zip, sol_zip = w.zip_pair(tmp_path / "pair")
    assert not any("unlabelled" in n for n in zipfile.ZipFile(data_zip).namelist())
    with open_dataset(data_zip) as ds:
        assert ds.solution.shape == (2, 2) and ds.unlabelled is None


def test_colour_png_to_gray_as_tensorflow():
    """decode_png(channels=1) values from TensorFlow 2.21 (libpng's weights);
    Pillow's convert("L") gives 127 for the first pixel."""
    from autodl.formats.images import decode_frame, encode_frame

    rgb = np.array([[[95, 130, 194], [217, 207, 235], [208, 78, 28], [40, 40, 40]]], np.uint8)
    gray = decode_frame(encode_frame(rgb, "PNG"), 1)
    assert gray.shape == (1, 4, 1) and gray[0, :, 0].tolist() == [126, 213, 111, 40]
    rgba = np.concatenate([rgb, np.full((1, 4, 1), 7, np.uint8)], axis=2)
    assert decode_frame(encode_frame(rgba, "PNG"), 3).tolist() == rgb.tolist()  # alpha dropped

"""Every reference dataset reads as TensorFlow's official AutoDL reader reads it."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from autodl.formats import images
from autodl.formats.dataset import open_dataset
from autodl.formats.tfrecord import read_records
from tests.conftest import needs_shared_data
from tests.formats.conftest import ALL_NAMES, UNLABELLED_ANSWERS, dataset_path, loaded

pytestmark = [needs_shared_data, pytest.mark.reference]

# name: (train, test, unlabelled, shape, format, domain, output_dim)
EXPECTED = {
    "handdigits": (1039, 558, 200, (1, 8, 8, 1), "COMPRESSED", "image", 10),
    "cityweather": (2558, 1097, None, (1, 1, 24, 1), "DENSE", "tabular", 5),
    "emailspam": (2534, 1087, 300, (1, 1, 22, 1), "DENSE", "tabular", 2),
    "moviegenres": (2100, 900, None, (1, 1, 14, 1), "DENSE", "tabular", 7),
    "convention2012": (2078, 917, None, (-1, 1, 1, 1), "DENSE", "text", 2),
    "osuleaf": (200, 182, 60, (-1, 1, 1, 1), "DENSE", "speech", 6),
    "spokendigits": (160, 80, None, (-1, 1, 1, 1), "DENSE", "speech", 10),
    "movingdigits": (211, 109, None, (10, 32, 32, 1), "COMPRESSED", "video", 4),
    "miniciao": (82, 18, None, (1, 32, 32, 3), "COMPRESSED", "image", 10),
    "Monkeys": (26, 4, None, (1, -1, -1, 3), "COMPRESSED", "image", 10),
}
TEST_CLASS_COUNTS = {
    "cityweather": [219, 219, 219, 220, 220],
    "emailspam": [985, 102],
    "moviegenres": [129, 40, 358, 497, 35, 141, 65],
    "convention2012": [493, 424],
    "osuleaf": [24, 41, 32, 33, 35, 17],
    "spokendigits": [8] * 10,
    "movingdigits": [31, 27, 21, 30],
}


@pytest.mark.parametrize("name", ALL_NAMES)
def test_summary_counts_and_ids(name):
    ds, arrays = loaded(name)
    n_train, n_test, n_unl, shape, fmt, domain, output_dim = EXPECTED[name]
    assert (ds.name, ds.spec.shape, ds.spec.format, ds.spec.domain, ds.spec.output_dim) == (
        name,
        shape,
        fmt,
        domain,
        output_dim,
    )
    assert (len(ds.train), len(ds.test)) == (n_train, n_test)
    assert (len(ds.unlabelled) if ds.unlabelled else None) == n_unl
    # Official ids: test 0..n_test-1, train n_test..; files in id order.
    np.testing.assert_array_equal(arrays["test"].ids, np.arange(n_test))
    np.testing.assert_array_equal(arrays["train"].ids, np.arange(n_train) + n_test)
    if n_unl:
        np.testing.assert_array_equal(arrays["unlabelled"].ids, np.arange(n_unl))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_labels(name):
    ds, arrays = loaded(name)
    train, test = arrays["train"], arrays["test"]
    assert train.labels.dtype == np.float32 and train.labels.shape == (
        len(train),
        ds.spec.output_dim,
    )
    assert not test.labels.any()  # test labels are only in the solution
    assert ds.solution.dtype == np.float64 and ds.solution.shape == (len(test), ds.spec.output_dim)
    assert set(np.unique(ds.solution)) <= {0.0, 1.0} and set(np.unique(train.labels)) <= {0.0, 1.0}
    per_row = train.labels.sum(1)
    if name == "moviegenres":
        assert per_row.min() == 1 and per_row.max() <= 4 and per_row.mean() > 1.2
    else:
        assert (per_row == 1).all() and (ds.solution.sum(1) == 1).all()
    if name in TEST_CLASS_COUNTS:
        assert ds.solution.sum(0).tolist() == TEST_CLASS_COUNTS[name]
    if name == "handdigits":
        assert all(39 <= c <= 68 for c in ds.solution.sum(0))
    if len(test) >= 50:  # class frequencies alike in train and test (random or stratified splits)
        share = train.labels.sum(0) / train.labels.sum()
        assert np.abs(share - ds.solution.sum(0) / ds.solution.sum()).max() < 0.15


@pytest.mark.parametrize("name", ["handdigits", "emailspam", "osuleaf"])
def test_unlabelled_part(name):
    ds, arrays = loaded(name)
    answers = np.loadtxt(UNLABELLED_ANSWERS / f"{name}.unlabelled.solution", ndmin=2)
    unl = arrays["unlabelled"]
    assert len(unl) == len(answers) and answers.shape[1] == ds.spec.output_dim
    assert not unl.labels.any()
    assert ds.unlabelled.spec.label_names == ds.spec.label_names
    assert unl.x.shape[1:] == arrays["train"].x.shape[1:]


def test_label_names():
    assert loaded("handdigits")[0].spec.label_names == [str(i) for i in range(10)]
    assert loaded("spokendigits")[0].spec.label_names[:3] == ["zero", "one", "two"]
    assert loaded("movingdigits")[0].spec.label_names == ["left", "right", "up", "down"]
    assert loaded("miniciao")[0].spec.label_names[0] == "airplane"
    for name in ("cityweather", "convention2012", "Monkeys"):
        assert loaded(name)[0].spec.label_names is None


def _pillow(frame: bytes, mode: str) -> np.ndarray:
    img = Image.open(io.BytesIO(frame))
    arr = np.asarray(img.convert(mode) if img.mode != mode else img, np.uint8)
    return arr.reshape(arr.shape[0], arr.shape[1], -1).astype(np.float32) * np.float32(1 / 255)


@pytest.mark.parametrize(
    "name,mode",
    [("handdigits", "L"), ("movingdigits", "L"), ("miniciao", "RGB"), ("Monkeys", "RGB")],
)
def test_pixels_against_independent_pillow_decode(name, mode):
    """PNG: bit-identical to Pillow. JPEG: Pillow's accurate IDCT differs from
    TensorFlow's fast one by a few levels; simplejpeg (when installed) follows TF."""
    ds, arrays = loaded(name)
    raw = ds.train.load(decode=False)
    xs = arrays["train"].x
    jpeg = raw.x[0][0][:2] == b"\xff\xd8"
    for i in range(0, len(raw.x), max(1, len(raw.x) // 25)):
        expect = np.stack([_pillow(f, mode) for f in raw.x[i]])
        assert xs[i].dtype == np.float32 and xs[i].shape == expect.shape
        if jpeg and images.JPEG_DECODER == "simplejpeg":
            assert np.abs(xs[i] - expect).max() <= 24 / 255 + 1e-6
        else:
            np.testing.assert_array_equal(xs[i], expect)


# sha256 of tf.image.decode_image(frame, channels=C).numpy() bytes, TensorFlow 2.21
# (tensorflow-cpu in a separate venv): movingdigits test records 0-19 (200 frames),
# Monkeys test records 0-3 with 3 channels, and with 1 channel.
TF_JPEG_SHA256 = {
    ("movingdigits", 20, 1): "f2a345bde5b882bc5065610a67a92fc4d94d87ffc4e013f29e1a1870154115c2",
    ("Monkeys", 4, 3): "fe9f081640e351daf35c7dc3048a6c3a1615b281fd9d6a7326a7215b1a17d342",
    ("Monkeys", 4, 1): "021a0436a3306c7d8506f5610f566315748c28d837a2447b63fc52e70c8e1be9",
}


@pytest.mark.skipif(images.JPEG_DECODER != "simplejpeg", reason="simplejpeg is not installed")
@pytest.mark.parametrize("key", list(TF_JPEG_SHA256), ids=str)
def test_jpeg_pixels_bit_identical_to_tensorflow(key):
    name, n, channels = key
    ds = open_dataset(dataset_path(name))
    h = hashlib.sha256()
    for rec in ds.test.iter_raw(limit=n):
        for frame in rec.frames:
            h.update(np.ascontiguousarray(images.decode_frame(frame, channels)).tobytes())
    assert h.hexdigest() == TF_JPEG_SHA256[key]


def test_pillow_fallback_for_jpeg(monkeypatch):
    """Without simplejpeg, JPEG frames go through Pillow (gray via libjpeg's luma)."""
    monkeypatch.setattr(images, "simplejpeg", None)
    ds = open_dataset(dataset_path("Monkeys"))
    frame = next(ds.test.iter_raw()).frames[0]
    rgb, gray = images.decode_frame(frame, 3), images.decode_frame(frame, 1)
    assert rgb.shape[2] == 3 and gray.shape == rgb.shape[:2] + (1,)
    np.testing.assert_array_equal(rgb, np.asarray(Image.open(io.BytesIO(frame)).convert("RGB")))
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(gray[:, :, 0] - luma).max() <= 6


def test_handdigits_values_are_sixteenths():
    x = loaded("handdigits")[1]["train"].x
    levels = np.round(np.arange(17) * 255 / 16).astype(np.float32) * np.float32(1 / 255)
    assert set(np.unique(x)) <= set(levels) and x.min() == 0 and x.max() == np.float32(1.0)


def test_monkeys_variable_sizes_three_channels():
    ds, arrays = loaded("Monkeys")
    xs = arrays["train"].x
    assert isinstance(xs, list) and len({x.shape for x in xs}) > 5
    assert all(x.shape[0] == 1 and x.shape[3] == 3 and x.dtype == np.float32 for x in xs)
    assert all(0 <= x.min() and x.max() <= 1 for x in xs)


def test_movingdigits_clips():
    x = loaded("movingdigits")[1]["train"].x
    assert x.shape == (211, 10, 32, 32, 1) and x.dtype == np.float32
    # The digit moves: frames differ from each other in every clip.
    assert (np.abs(x[:, 0] - x[:, -1]).reshape(211, -1).max(1) > 0.2).all()


def test_spokendigits_pcm_values():
    _, arrays = loaded("spokendigits")
    xs = arrays["train"].x + arrays["test"].x
    lengths = [len(x) for x in xs]
    assert min(lengths) == 3321 and max(lengths) == 10163
    assert all(x.shape[1:] == (1, 1, 1) for x in xs)
    assert all((x == np.round(x)).all() and -32768 <= x.min() and x.max() <= 32767 for x in xs)
    assert max(np.abs(x).max() for x in xs) > 10000  # not scaled to [-1, 1]


def test_osuleaf_float32_series():
    x = loaded("osuleaf")[1]["train"].x
    assert x.shape == (200, 427, 1, 1, 1) and x.dtype == np.float32
    flat = x.reshape(200, -1).astype(np.float64)
    assert np.abs(flat.mean(1)).max() < 1e-5 and np.abs(flat.std(1) - 1).max() < 0.01


def test_osuleaf_values_bit_exact():
    ds, arrays = loaded("osuleaf")
    data = next(read_records(ds.train.files[0]))
    # The first value's four bytes, found in the record as stored (packed float).
    first = arrays["train"].x[0, 0, 0, 0, 0]
    assert first.tobytes() in data


def test_convention2012_token_ids():
    ds, arrays = loaded("convention2012")
    assert len(ds.spec.vocabulary) == 8903 and ds.spec.vocabulary["that's"] == 113
    ids = np.concatenate([x.ravel() for x in arrays["train"].x + arrays["test"].x])
    assert (ids == np.round(ids)).all() and ids.min() == 0 and ids.max() <= 8902
    assert min(len(x) for x in arrays["train"].x) >= 8  # paragraphs of at least 8 tokens


def test_tabular_values_as_stored():
    x = loaded("cityweather")[1]["train"].x
    assert x.shape == (2558, 1, 1, 24, 1)
    month = x[:, 0, 0, 0, 0]
    assert set(np.unique(month)) == set(range(1, 13))  # unscaled features, input order
    emails = loaded("emailspam")[1]["train"].x.reshape(2534, 22)
    assert set(np.unique(emails[:, -3:].sum(1))) == {1.0}  # one-hot "number"


def test_iteration_equals_bulk_load():
    for name in ("handdigits", "convention2012", "Monkeys"):
        ds, arrays = loaded(name)
        for i, ex in enumerate(ds.test):
            assert ex.id == arrays["test"].ids[i]
            np.testing.assert_array_equal(ex.x, arrays["test"].x[i])
            np.testing.assert_array_equal(ex.labels, arrays["test"].labels[i])


def test_load_limit_and_raw_frames():
    ds = open_dataset(dataset_path("movingdigits"))
    part = ds.train.load(limit=5)
    assert part.x.shape == (5, 10, 32, 32, 1) and part.ids.tolist() == list(range(109, 114))
    raw = list(ds.train.iter_raw(limit=2))
    assert len(raw) == 2 and len(raw[0].frames) == 10 and raw[0].frames[0][:2] == b"\xff\xd8"
    assert raw[0].labels.shape == (4,) and raw[0].id == 109


def test_load_limit_reads_only_what_it_needs(monkeypatch):
    """load(limit) stops reading the file after the records it returns (record by
    record on the general path; after a first chunk of about 1 MB on the bulk path)."""
    from autodl.formats import _chunks, _loader, tfrecord

    ds = open_dataset(dataset_path("spokendigits"))
    reads = []
    real = tfrecord.iter_framed

    def counting(stream, path, verify=True):
        for info, data in real(stream, path, verify=verify):
            reads.append(info.index)
            yield info, data

    monkeypatch.setattr(tfrecord, "iter_framed", counting)
    ds.train.bulk = False
    ds.train.load(limit=3)
    assert max(reads) <= 3

    sizes = []
    real_chunks = _loader.iter_chunks

    def chunks(*args, **kwargs):
        for chunk in real_chunks(*args, **kwargs):
            sizes.append(len(chunk.buf))
            yield chunk

    monkeypatch.setattr(_loader, "iter_chunks", chunks)
    ds.train.bulk = True
    assert len(ds.train.load(limit=3)) == 3
    assert sum(sizes) < _chunks.FIRST_BYTES + 100_000 < ds.train.files[0].stat().st_size

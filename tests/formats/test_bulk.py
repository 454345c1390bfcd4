"""The bulk reader (``_chunks``, ``_bulk``, ``_loader``) gives exactly what the general,
record-at-a-time decoder gives: the same ids, x arrays and labels on every sample and
on generated data in every storage format, and the same error for a bad record."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats import _bulk, _chunks, _loader, _wire, limits
from autodl.formats.dataset import open_dataset
from autodl.formats.tfrecord import TFRecordWriter, frame_record, read_records
from autodl.formats.types import DatasetSpec
from autodl.formats.writer import DatasetWriter
from tests.datasets_fixture import *  # noqa: F403
from tests.formats.conftest import ALL_NAMES, dataset_path


def _same(a, b) -> None:
    assert type(a.x) is type(b.x)
    assert np.array_equal(a.ids, b.ids) and a.ids.dtype == b.ids.dtype
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype
    xa = a.x if isinstance(a.x, list) else [a.x]
    xb = b.x if isinstance(b.x, list) else [b.x]
    assert len(xa) == len(xb)
    for u, v in zip(xa, xb, strict=True):
        assert u.shape == v.shape and u.dtype == v.dtype
        assert np.array_equal(u, v, equal_nan=True)


def _both(split, **kw):
    split.bulk = True
    fast = split.load(**kw)
    split.bulk = False
    slow = split.load(**kw)
    split.bulk = True
    return fast, slow


def _every_split(path, **kw) -> int:
    ds = open_dataset(path)
    n = 0
    for split in (ds.train, ds.test, ds.unlabelled):
        if split is not None:
            fast, slow = _both(split, **kw)
            _same(fast, slow)
            n += len(fast)
    return n


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_sample_reads_the_same(name):
    path = dataset_path(name)
    if not path.is_dir():
        pytest.skip(f"reference dataset {name} not found at {path}")
    assert _every_split(path) > 0
    ds = open_dataset(path)
    _same(*_both(ds.train, limit=7))


def test_the_bulk_path_takes_every_sample_record():
    """No sample record needs the general decoder (it is a fallback, not the path)."""
    path = dataset_path("emailspam")
    if not path.is_dir():
        pytest.skip("reference data not found")
    split = open_dataset(path).train
    for _, chunk, _ in _loader.chunks(split, None):
        assert _bulk.decode_chunk(chunk, "DENSE", split.spec).ok.all()


@pytest.mark.parametrize("domain", ["tabular", "image", "text", "speech", "video", "digits"])
def test_generated_datasets_read_the_same(tiny_datasets, domain):
    assert _every_split(tiny_datasets[domain]) > 0
    assert _every_split(tiny_datasets[domain], max_side=4) > 0


def _write(tmp_path, fmt, shape, x, labels, **kw):
    spec = DatasetSpec("gen", shape, 4, fmt, [f"c{i}" for i in range(4)])
    w = DatasetWriter(tmp_path, spec, **kw)
    return w.write((x, labels), (x[:5], labels[:5]))


def test_sparse_and_multilabel_read_the_same(tmp_path):
    rng = np.random.default_rng(0)
    x = np.zeros((300, 3, 2, 5, 2), np.float32)
    mask = rng.random(x.shape) < 0.2
    x[mask] = rng.random(int(mask.sum())) + 0.5
    labels = (rng.random((300, 4)) < 0.4).astype(np.float32)
    root = _write(tmp_path, "SPARSE", (3, 2, 5, 2), x, labels)
    assert _every_split(root) == 305
    assert np.array_equal(open_dataset(root).train.load().x, x)


def _sparse_records() -> tuple[list[bytes], list[bool]]:
    """SPARSE records for a (2, 2, 300, 1) matrix, and whether the bulk path takes each:
    indices of one, two and three bytes, steps of another list's layout, bad counts,
    indices out of range (negative ones are ten-byte varints), too many steps."""
    f = _wire.encode_feature
    ctx = {"id": f("int64", [3]), "label_index": f("int64", [1]), "label_score": f("float", [1])}

    def rec(rows, cols, vals, steps=None, ctx=ctx):
        steps = steps or [len(vals)]  # values per step
        at = np.cumsum([0, *steps])

        def parts(values):  # a list longer than the values: the rest in its last step
            return [values[a : (b if k < len(steps) - 1 else None)] for k, (a, b) in
                    enumerate(zip(at[:-1], at[1:], strict=True))]  # fmt: skip

        lists = {
            "0_sparse_col_index": parts(cols),
            "0_sparse_row_index": parts(rows),
            "0_sparse_value": parts(vals),
        }
        return _record(ctx, {
            k: _wire.encode_feature_list(f("float" if k.endswith("value") else "int64", part)
                                         for part in parts)
            for k, parts in sorted(lists.items())})  # fmt: skip

    cases = [
        (rec([0, 1, 0], [5, 200, 299], [1.5, -2, 3]), True),  # two-byte columns
        (rec([1, 1], [0, 127], [0.25, 8], steps=[1, 1]), True),  # two steps
        (rec([], [], []), True),  # no value at all
        (rec([0, 0, 0], [1, 2, 3], [1, 2, 3], steps=[0, 3]), True),  # an empty first step
        (rec([0, 1], [4, 7], [1.0]), False),  # more indices than values
        (rec([0], [300], [1.0]), False),  # column out of range
        (rec([2], [3], [1.0]), False),  # row out of range
        (rec([-1], [3], [1.0]), False),  # negative row: a ten-byte varint
        (rec([0], [70_000], [1.0]), False),  # a three-byte column, out of range
        (rec([0, 0, 0], [1, 2, 3], [1, 2, 3], steps=[1, 1, 1]), False),  # 3 steps of 2
        (rec([0, 1], [9, 9], [4.0, 5.0]), True),
    ]
    return [r for r, _ in cases], [ok for _, ok in cases]


def test_odd_sparse_records_read_as_the_general_decoder_reads_them(tmp_path):
    records, takes = _sparse_records()
    spec = DatasetSpec("gen", (2, 2, 300, 1), 4, "SPARSE", [f"c{i}" for i in range(4)])
    root = DatasetWriter(tmp_path, spec).write(
        (np.zeros((2, 2, 2, 300, 1), np.float32), np.eye(4)[[0, 1]]),
        (np.zeros((1, 2, 2, 300, 1), np.float32), np.eye(4)[[0]]),
    )
    with TFRecordWriter(next((root / "gen.data" / "train").glob("sample*"))) as w:
        w.write_all([r for r, ok in zip(records, takes, strict=True) if ok])
    split = open_dataset(root).train
    fast, slow = _both(split)
    _same(fast, slow)
    assert np.count_nonzero(fast.x) == 10 and fast.x[0, 0, 1, 200, 0] == -2
    assert _bulk.decode_chunk(next(_loader.chunks(split, None))[1], "SPARSE", split.spec).ok.all()
    for record, ok in zip(records, takes, strict=True):  # each bad one after a good one
        if ok:
            continue
        with TFRecordWriter(next((root / "gen.data" / "train").glob("sample*"))) as w:
            w.write_all([records[0], record, records[1]])
        split = open_dataset(root).train
        got = _bulk.decode_chunk(next(_loader.chunks(split, None))[1], "SPARSE", split.spec)
        assert got.ok.tolist() == [True, False, True], record
        assert _error(split, True) == _error(split, False)


def test_dense_with_many_ids_and_classes_reads_the_same(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20_000, 1, 1, 7, 1)).astype(np.float32)
    x[3, 0, 0, 2, 0] = np.nan
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 20_000)]
    root = _write(tmp_path, "DENSE", (1, 1, 7, 1), x, labels)
    assert _every_split(root) == 20_005


def test_compressed_jpeg_video_reads_the_same(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 255, (40, 3, 16, 16, 3), dtype=np.uint8)
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 40)]
    root = _write(tmp_path, "COMPRESSED", (3, 16, 16, 3), x, labels, image_format="JPEG")
    assert _every_split(root) == 45


def _record(context: dict, lists: dict) -> bytes:
    return _wire.encode_sequence_example(context, lists)


def _odd_records() -> list[bytes]:
    """Records the bulk path leaves to the general decoder, valid or not."""
    f = _wire.encode_feature
    row = _wire.encode_float_steps(np.arange(3, dtype=np.float32)[None])
    ctx = {"id": f("int64", [9]), "label_index": f("int64", [1]), "label_score": f("float", [1])}
    unpacked = b"\x1a\x04\x08\x01\x08\x02"  # Int64List {value: 1, value: 2} not packed
    return [
        _record(ctx, {"0_dense_input": row}),  # an ordinary record first
        _record({**ctx, "extra": f("bytes", [b"x"])}, {"0_dense_input": row}),
        _record({**ctx, "label_index": unpacked, "label_score": f("float", [1, 1])}, {
            "0_dense_input": row}),
        _record({"label_index": f("int64", [2]), "label_score": f("float", [0.5])}, {
            "0_dense_input": row, "other": b""}),
        _record(ctx, {"0_dense_input": _wire.encode_float_steps(np.ones((2, 3), np.float32))}),
        _record({**ctx, "label_index": f("int64", [1, 1]), "label_score": f("float", [1, 2])}, {
            "0_dense_input": row}),
        _record(ctx, {"0_dense_input": row}),
    ]  # fmt: skip


def _odd_dataset(tmp_path, records, shape=(-1, 1, 3, 1)):
    root = _write(tmp_path, "DENSE", (1, 1, 3, 1), np.zeros((6, 1, 1, 3, 1)), np.eye(4)[[0] * 6])
    train = root / "gen.data" / "train"
    meta = (train / "metadata.textproto").read_text()
    (train / "metadata.textproto").write_text(
        meta.replace("sequence_size: 1", f"sequence_size: {shape[0]}")
    )
    with TFRecordWriter(next(train.glob("sample*"))) as w:
        w.write_all(records)
    return root


def test_unusual_layouts_fall_back_to_the_general_decoder(tmp_path):
    root = _odd_dataset(tmp_path, _odd_records())
    split = open_dataset(root).train
    fast, slow = _both(split)
    _same(fast, slow)
    chunk = next(_loader.chunks(split, None))[1]
    ok = _bulk.decode_chunk(chunk, "DENSE", split.spec).ok
    assert ok.tolist() == [True, False, False, False, True, False, True]


def _error(split, bulk: bool) -> str:
    split.bulk = bulk
    with pytest.raises(FormatError) as e:
        split.load()
    return str(e.value)


@pytest.mark.parametrize(
    "bad",
    [
        "label_index",  # a label out of range
        "crc",  # a damaged data CRC after a record the bulk path leaves to the general one
        "header",  # a damaged length field
        "truncated",
    ],
)
def test_errors_are_the_general_decoders(tmp_path, bad):
    f = _wire.encode_feature
    row = _wire.encode_float_steps(np.arange(3, dtype=np.float32)[None])
    ctx = {"id": f("int64", [1]), "label_index": f("int64", [1]), "label_score": f("float", [1])}
    good = _record(ctx, {"0_dense_input": row})
    records = [good] * 5000
    if bad == "label_index":
        records[4000] = _record({**ctx, "label_index": f("int64", [7])}, {"0_dense_input": row})
    root = _odd_dataset(tmp_path, records)
    path = next((root / "gen.data" / "train").glob("sample*"))
    data = bytearray(path.read_bytes())
    size = len(frame_record(good))
    if bad == "crc":
        data[size * 4100 - 1] ^= 1
    elif bad == "header":
        data[size * 4200 + 9] ^= 1
    elif bad == "truncated":
        data = data[: size * 4300 - 3]
    path.write_bytes(bytes(data))
    split = open_dataset(root).train
    assert _error(split, True) == _error(split, False)


def test_caps_are_the_general_decoders(tmp_path):
    root = _odd_dataset(tmp_path, _odd_records())
    split = open_dataset(root).train
    with limits.using(max_records=3):
        assert _error(split, True) == _error(split, False)
    with limits.using(max_frames=1):
        assert _error(split, True) == _error(split, False)
    with limits.using(max_record_bytes=20):
        assert _error(split, True) == _error(split, False)


def test_chunks_frame_what_read_records_reads(tmp_path):
    """Records of varying lengths, several chunks, a limit."""
    rng = np.random.default_rng(3)
    records = [
        bytes(rng.integers(0, 255, int(rng.integers(0, 300)), dtype=np.uint8)) for _ in range(3000)
    ]
    records += [b"x" * 40] * 3000
    path = tmp_path / "sample-x.tfrecord"
    with TFRecordWriter(path) as w:
        w.write_all(records)
    for limit in (None, 1, 4321):
        with open(path, "rb") as f:
            got = [
                bytes(c.buf[a:b])
                for c in _chunks.iter_chunks(f, path, limit=limit, chunk_bytes=50_000)
                for a, b in zip(c.start.tolist(), c.end.tolist(), strict=True)
            ]
        assert got == list(read_records(path, limit=limit))


def test_the_chunk_wide_crc_check_sees_any_damaged_record(tmp_path, monkeypatch):
    """`_chunks._data_crcs_hold` (two CRC passes per chunk) agrees with the per-record
    check: true on clean records of many lengths, false after any one flipped bit in
    a record's data or its stored CRC, and false with two records damaged."""
    rng = np.random.default_rng(5)
    records = [bytes(rng.integers(0, 255, int(rng.integers(0, 400)), dtype=np.uint8))
               for _ in range(500)]  # fmt: skip
    data = b"".join(frame_record(r) for r in records)
    clean = np.frombuffer(data + bytes(16), np.uint8)
    h = np.cumsum([0] + [len(r) + 16 for r in records[:-1]])
    n = np.array([len(r) for r in records], np.int64)

    def holds(arr):
        return _chunks._data_crcs_hold(
            arr, h, n, arr[(h + 12 + n)[:, None] + np.arange(4)].view("<u4")[:, 0]
        )

    assert holds(clean)
    for _ in range(200):
        k = int(rng.integers(0, len(records)))
        at = int(h[k]) + 12 + int(rng.integers(0, n[k] + 4))  # data or stored CRC
        bad = clean.copy()
        bad[at] ^= 1 << int(rng.integers(0, 8))
        assert not holds(bad)
        other = int(h[(k + 7) % len(records)]) + 12
        bad[other] ^= 0x40
        assert not holds(bad)
    # a chunk over twice the chunk size is left to the per-record check (no copy of
    # a few large records), which still names a damaged one
    monkeypatch.setattr(_chunks, "CHUNK_BYTES", 1000)
    assert not holds(clean)
    path = tmp_path / "sample-x.tfrecord"
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with open(path, "rb") as f:
        last = list(_chunks.iter_chunks(f, path, chunk_bytes=200_000))[-1]
    assert "record 499" in str(last.error) and "data CRC" in str(last.error)
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert sum(map(len, _chunks.iter_chunks(f, path, chunk_bytes=200_000))) == 500


def test_a_chunk_the_bulk_path_cannot_take_at_all(tmp_path):
    """DENSE data whose metadata gives no matrix size: every record to the general path."""
    root = _odd_dataset(tmp_path, _odd_records()[:1])
    meta = root / "gen.data" / "train" / "metadata.textproto"
    meta.write_text(meta.read_text().replace("col_count: 3", "col_count: -1"))
    split = open_dataset(root).train
    assert _error(split, True) == _error(split, False)


def test_a_matrix_larger_than_the_chunk_is_the_general_decoders_error(tmp_path):
    """A step size from the metadata larger than the whole chunk: the bulk path raised
    numpy's "window shape cannot be larger than input array shape"."""
    root = _odd_dataset(tmp_path, _odd_records()[:1])
    meta = root / "gen.data" / "train" / "metadata.textproto"
    meta.write_text(meta.read_text().replace("col_count: 3", "col_count: 3000000"))
    split = open_dataset(root).train
    assert "expected 3000000 = row_count" in _error(split, True) == _error(split, False)


@pytest.mark.parametrize("fmt", ["DENSE", "SPARSE"])
@pytest.mark.parametrize(
    "lie",
    [
        {"col_count: 13": "col_count: 2000000000"},
        {"row_count: 1": "row_count: 2000000000", "col_count: 13": "col_count: 2000000000"},
        {"col_count: 13": "col_count: 12"},
    ],
)
def test_a_metadata_matrix_that_lies_gets_the_general_decoders_error(tmp_path, fmt, lie):
    """Found by a stranger's trial: a matrix of 4e18 values made the DENSE bulk path
    overflow (OverflowError), and a sample_count with 2e9 columns made the one array
    of the split past numpy's size (ValueError) instead of the records' clear error."""
    x = np.random.default_rng(0).random((178, 1, 1, 13, 1)).astype(np.float32)
    x[x < 0.5] = 0
    root = _write(tmp_path, fmt, (1, 1, 13, 1), x, np.eye(4)[np.arange(178) % 4])
    meta = root / "gen.data" / "train" / "metadata.textproto"
    text = meta.read_text()
    for a, b in lie.items():
        text = text.replace(a, b)
    meta.write_text(text)
    split = open_dataset(root).train
    if fmt == "SPARSE" and lie == {"col_count: 13": "col_count: 12"}:
        assert "out of range" in _error(split, True) == _error(split, False)
    else:
        assert _error(split, True) == _error(split, False)


def _int64_feature(payload: bytes) -> bytes:
    inner = b"\x0a" + _wire.encode_varint(len(payload)) + payload
    return b"\x1a" + _wire.encode_varint(len(inner)) + inner


@pytest.mark.parametrize("where", ["label_index", "id_in_a_long_record", "sparse_col"])
def test_a_ten_byte_varint_past_64_bits_keeps_64_as_protobuf_does(tmp_path, where):
    """Found by a stranger's trial: ``ff x 9, 7f`` (a tenth byte over 1) raised a raw
    OverflowError on one path and was read as -1 (64 bits kept) on the other."""
    big = b"\xff" * 9 + b"\x7f"
    f = _wire.encode_feature
    ctx = {"id": f("int64", [1]), "label_index": f("int64", [1]), "label_score": f("float", [1])}
    if where == "label_index":
        shape, fmt = (1, 1, 3, 1), "DENSE"
        rec = _record({**ctx, "label_index": _int64_feature(big)},
                      {"0_dense_input": _wire.encode_float_steps(np.ones((1, 3), np.float32))})  # fmt: skip
    elif where == "id_in_a_long_record":  # the general decoder's wire codec, not protobuf
        shape, fmt = (1, 1, 10_000, 1), "DENSE"
        rec = _record({**ctx, "id": _int64_feature(big)},
                      {"0_dense_input": _wire.encode_float_steps(np.ones((1, 10_000), np.float32))})  # fmt: skip
    else:
        shape, fmt = (1, 1, 5, 1), "SPARSE"
        rec = _record(ctx, {
            "0_sparse_col_index": _wire.encode_feature_list([_int64_feature(big)]),
            "0_sparse_row_index": _wire.encode_feature_list([f("int64", [0])]),
            "0_sparse_value": _wire.encode_feature_list([f("float", [1.0])])})  # fmt: skip
    x = np.zeros((2, *shape), np.float32)
    root = DatasetWriter(tmp_path, DatasetSpec("gen", shape, 4, fmt, list("abcd"))).write(
        (x, np.eye(4)[[0, 1]]), (x, np.eye(4)[[0, 1]])
    )
    with TFRecordWriter(next((root / "gen.data" / "train").glob("sample*"))) as w:
        w.write(rec)
    split = open_dataset(root).train
    if where == "id_in_a_long_record":
        fast, slow = _both(split)
        _same(fast, slow)
        assert fast.ids.tolist() == [-1]
    else:
        assert "index -1 is out of range" in _error(split, True) == _error(split, False)


def test_a_limited_read_neither_reads_nor_judges_the_record_after_the_limit(tmp_path):
    """Found by a stranger's trial: the general path read record L (and failed on its
    damage) when asked for L records; the bulk path stops before it. Both stop now."""
    x = np.random.default_rng(0).normal(size=(100, 1, 1, 5, 1)).astype(np.float32)
    root = _write(tmp_path, "DENSE", (1, 1, 5, 1), x, np.eye(4)[[0, 1] * 50])
    path = next((root / "gen.data" / "train").glob("sample*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 100 * 11 - 1] ^= 1  # the data CRC of record 10
    path.write_bytes(bytes(data))
    split = open_dataset(root).train
    fast, slow = _both(split, limit=10)
    _same(fast, slow)
    assert len(fast) == 10
    error = _error(split, True)
    assert error == _error(split, False) and "record 10" in error
    assert error.startswith("train/sample-")  # the file as users know it, not the server's path


def test_splits_share_the_vocabulary_parsed_once(tiny_datasets):
    ds = open_dataset(tiny_datasets["text"])
    assert ds.spec.vocabulary and ds.train.spec == ds.spec
    assert ds.test.spec.vocabulary is ds.spec.vocabulary
    assert ds.test.spec.domain == ds.spec.domain == "text"


@pytest.mark.parametrize("fmt", ["DENSE", "SPARSE"])
def test_loads_into_one_array_sized_by_sample_count_a_hint_never_trusted(
    tmp_path, fmt, monkeypatch
):
    """DENSE and SPARSE rows are decoded into one array sized by the metadata's
    sample_count (no concatenation of the chunks: a second copy of x at the peak); a
    wrong count, or an absurd one, changes nothing but that."""
    rng = np.random.default_rng(3)
    x = np.zeros((30_000, 1, 1, 40, 1), np.float32)
    mask = rng.random(x.shape) < 0.2
    x[mask] = rng.normal(size=int(mask.sum()))
    labels = np.eye(4, dtype=np.float32)[rng.integers(0, 4, len(x))]
    root = _write(tmp_path, fmt, (1, 1, 40, 1), x, labels)
    meta = root / "gen.data" / "train" / "metadata.textproto"
    text = meta.read_text()
    assert "sample_count: 30000" in text
    joins = []
    real = _loader.joined
    monkeypatch.setattr(_loader, "joined", lambda blocks: joins.append(len(blocks)) or real(blocks))
    split = open_dataset(root).train
    assert split.expected == 30_000
    assert _loader.Preallocated(split, None, count=False).total == 30_000
    got = split.load()
    assert not joins  # the chunks were decoded into the one array
    assert np.array_equal(got.x, x)
    assert np.array_equal(split.load(limit=12_345).x, x[:12_345])
    assert not joins
    for count, total in ((29_999, 29_999), (30_001, 30_001), (2_000_000_000, None), (0, 0)):
        meta.write_text(text.replace("sample_count: 30000", f"sample_count: {count}"))
        split = open_dataset(root).train
        assert _loader.Preallocated(split, None, count=False).total == total  # bounded
        joins.clear()
        got = split.load()
        assert joins and joins[0] > 1  # wrong count: the chunks' blocks are joined
        assert np.array_equal(got.x, x)
        _same(got, _both(split)[1])

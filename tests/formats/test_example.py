"""Protobuf messages (private pool) and the hand-written wire codec checked against them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from google.protobuf import descriptor_pool

from autodl.formats import _records, _wire
from autodl.formats import example as E
from autodl.formats.tfrecord import read_records
from tests.conftest import needs_shared_data
from tests.formats.conftest import ALL_NAMES, dataset_path


def test_messages_live_in_a_private_pool():
    default = descriptor_pool.Default()
    with pytest.raises(KeyError):
        default.FindMessageTypeByName("tensorflow.SequenceExample")
    with pytest.raises(KeyError):
        default.FindMessageTypeByName("autodl.DataSpecification")
    assert E.SequenceExample.DESCRIPTOR.full_name == "tensorflow.SequenceExample"


def test_tensorflow_is_never_imported():
    code = "import sys, autodl.formats.dataset, autodl.formats.check, autodl.formats.writer; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _reference_message(rid, labels, steps):
    m = E.SequenceExample()
    ctx = m.context.feature
    ctx["id"].int64_list.value.append(rid)
    ctx["label_index"].int64_list.value.extend(labels)
    ctx["label_score"].float_list.value.extend([1.0] * len(labels))
    fl = m.feature_lists.feature_list["0_dense_input"]
    for s in steps:
        fl.feature.add().float_list.value.extend(s)
    return m


@pytest.mark.parametrize(
    "rid,labels,steps",
    [
        (0, [], [[1.5, -2.0, 3.25]]),
        (1097, [4], [[0.1] * 24]),
        (2**40, [2, 5], [[float(i)] for i in range(300)]),
        (-1, [0], []),
        (7, [1], [[]]),
    ],
)
def test_encoder_equals_protobuf_deterministic(rid, labels, steps):
    ref = _reference_message(rid, labels, steps).SerializeToString(deterministic=True)
    ctx = {
        "id": _wire.encode_feature("int64", [rid]),
        "label_index": _wire.encode_feature("int64", labels),
        "label_score": _wire.encode_feature("float", [1.0] * len(labels)),
    }
    arr = np.array(steps, np.float32).reshape(len(steps), len(steps[0]) if steps else 0)
    ours = _wire.encode_sequence_example(ctx, {"0_dense_input": _wire.encode_float_steps(arr)})
    assert ours == ref
    general = _wire.encode_feature_list(_wire.encode_feature("float", s) for s in steps)
    assert ours == _wire.encode_sequence_example(ctx, {"0_dense_input": general})


def test_bytes_and_sparse_features_equal_protobuf():
    m = E.SequenceExample()
    m.context.feature["id"].int64_list.value.append(3)
    fl = m.feature_lists.feature_list
    for frame in (b"\x89PNG...", b"", b"x" * 300):
        fl["0_compressed"].feature.add().bytes_list.value.append(frame)
    fl["0_sparse_col_index"].feature.add().int64_list.value.extend([0, 5, 300, 2**35])
    fl["0_sparse_value"].feature.add().float_list.value.extend([1.0, -2.5, 3.0, 1e-8])
    ours = _wire.encode_sequence_example(
        {"id": _wire.encode_feature("int64", [3])},
        {
            "0_compressed": _wire.encode_bytes_steps([b"\x89PNG...", b"", b"x" * 300]),
            "0_sparse_col_index": _wire.encode_feature_list(
                [_wire.encode_feature("int64", [0, 5, 300, 2**35])]
            ),
            "0_sparse_value": _wire.encode_feature_list(
                [_wire.encode_feature("float", [1.0, -2.5, 3.0, 1e-8])]
            ),
        },
    )
    assert ours == m.SerializeToString(deterministic=True)
    rec = _wire.decode_sequence_example(ours)
    assert rec.feature_lists["0_compressed"].flat("bytes")[0] == [b"\x89PNG...", b"", b"x" * 300]
    cols, steps = rec.feature_lists["0_sparse_col_index"].flat("int64")
    assert cols.tolist() == [0, 5, 300, 2**35] and steps.tolist() == [0, 0, 0, 0]


def test_decoder_accepts_unpacked_and_unknown_fields():
    # FloatList values written one by one (wire type 5) and an unknown field 9.
    flist = b"".join(b"\x0d" + np.float32(v).tobytes() for v in (1.0, 2.0))
    feature = b"\x12" + bytes([len(flist)]) + flist + b"\x48\x01"
    assert _wire.decode_feature(feature, 0, len(feature))[1].tolist() == [1.0, 2.0]
    step = b"\x0a" + bytes([len(feature)]) + feature
    view = _wire.FeatureListView(step * 3, 0, 3 * len(step))
    assert view.floats().tolist() == [[1.0, 2.0]] * 3


def test_varints_vectorised():
    values = [0, 1, 127, 128, 300, 2**31, 2**62, -1, -(2**63)] * 3
    packed = b"".join(_wire.encode_varint(v) for v in values)
    assert _wire.decode_varints(np.frombuffer(packed, np.uint8)).tolist() == values


def test_malformed_bytes_raise_record_error():
    with pytest.raises(_records.RecordError):
        _records.decode_record(b"\x0a\x05abc", "DENSE", "wire")
    with pytest.raises(_records.RecordError):
        _records.decode_record(b"\x0a\x05abc", "DENSE", "pb")


def _same(a: _records.Decoded, b: _records.Decoded) -> None:
    assert a.id == b.id
    np.testing.assert_array_equal(a.label_index, b.label_index)
    np.testing.assert_array_equal(a.label_score, b.label_score)
    if a.dense is not None:
        assert a.dense.dtype == b.dense.dtype == np.float32
        np.testing.assert_array_equal(a.dense, b.dense)
    assert a.frames == b.frames


@needs_shared_data
@pytest.mark.parametrize("name", ALL_NAMES)
def test_fast_paths_agree_with_protobuf_messages(name):
    """Both decoders against plain protobuf message access, on reference records."""
    from autodl.formats.dataset import open_dataset

    ds = open_dataset(dataset_path(name))
    fmt = ds.spec.format
    for split in (ds.train, ds.test):
        for data in read_records(split.files[0], limit=40):
            wire = _records.decode_record(data, fmt, "wire")
            _same(wire, _records.decode_record(data, fmt, "pb"))
            m = E.SequenceExample.FromString(data)
            ctx = m.context.feature
            assert wire.id == ctx["id"].int64_list.value[0]
            assert wire.label_index == list(ctx["label_index"].int64_list.value)
            fl = m.feature_lists.feature_list
            if fmt == "DENSE":
                ref = [list(f.float_list.value) for f in fl["0_dense_input"].feature]
                assert wire.dense.tolist() == ref
            else:
                assert wire.frames == [
                    v for f in fl["0_compressed"].feature for v in f.bytes_list.value
                ]

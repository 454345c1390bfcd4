"""Protobuf messages of the format, built at run time in a private descriptor pool.

``tensorflow.SequenceExample`` and friends (``tensorflow/core/example/{feature,
example}.proto``) and the AutoDL ``DataSpecification`` / ``MatrixSpec``
(``data.proto`` of the official starting kit) are declared here with
``descriptor_pb2`` and turned into classes from a *private*
``descriptor_pool.DescriptorPool()``. Nothing is registered in the default pool:
a second module registering ``tensorflow.Example`` there (TensorFlow itself, or
another package) would crash the process. No generated ``_pb2`` code is used.

These classes are the *reference* path: tests compare the hand-written fast
codec (``_wire.py``) against them. Serialising a message with
``SerializeToString(deterministic=True)`` sorts map keys; that is the byte
layout our writer produces by default (see ``_wire.encode_sequence_example``).

Two deliberate choices in ``DataSpecification``:

- its maps (``label_to_index_map`` ...) are declared as repeated entry messages
  instead of ``map<string, int32>``. The wire and text forms are identical (the
  protobuf language guide defines a map as exactly that), but the file order of
  the entries is kept, and duplicated keys stay visible to the checker. The
  starting kit's ``miniciao`` lists its labels out of index order, and the
  metadata writer reproduces it.
- ``channel_to_index_map`` (used by the text tool of autodl-contrib for the
  vocabulary) has field number 8, which does not clash; the text format only
  uses names.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto

_pool = descriptor_pool.DescriptorPool()


def _field(
    msg: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    ftype: int,
    label: int = _F.LABEL_OPTIONAL,
    type_name: str | None = None,
    default: str | None = None,
    packed: bool | None = None,
    oneof: int | None = None,
) -> None:
    f = msg.field.add(name=name, number=number, type=ftype, label=label)
    if type_name:
        f.type_name = type_name
    if default is not None:
        f.default_value = default
    if packed is not None:
        f.options.packed = packed
    if oneof is not None:
        f.oneof_index = oneof


def _map_entry(
    parent: descriptor_pb2.DescriptorProto,
    entry_name: str,
    value_type: int,
    value_type_name: str | None = None,
    *,
    is_map: bool = True,
) -> None:
    entry = parent.nested_type.add(name=entry_name)
    if is_map:
        entry.options.map_entry = True
    _field(entry, "key", 1, _F.TYPE_STRING)
    _field(entry, "value", 2, value_type, type_name=value_type_name)


def _feature_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/core/example/feature.proto", package="tensorflow", syntax="proto3"
    )
    rep = _F.LABEL_REPEATED
    m = fd.message_type.add(name="BytesList")
    _field(m, "value", 1, _F.TYPE_BYTES, rep)
    m = fd.message_type.add(name="FloatList")
    _field(m, "value", 1, _F.TYPE_FLOAT, rep, packed=True)
    m = fd.message_type.add(name="Int64List")
    _field(m, "value", 1, _F.TYPE_INT64, rep, packed=True)
    m = fd.message_type.add(name="Feature")
    m.oneof_decl.add(name="kind")
    _field(m, "bytes_list", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.BytesList", oneof=0)
    _field(m, "float_list", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.FloatList", oneof=0)
    _field(m, "int64_list", 3, _F.TYPE_MESSAGE, type_name=".tensorflow.Int64List", oneof=0)
    m = fd.message_type.add(name="Features")
    _map_entry(m, "FeatureEntry", _F.TYPE_MESSAGE, ".tensorflow.Feature")
    _field(m, "feature", 1, _F.TYPE_MESSAGE, rep, ".tensorflow.Features.FeatureEntry")
    m = fd.message_type.add(name="FeatureList")
    _field(m, "feature", 1, _F.TYPE_MESSAGE, rep, ".tensorflow.Feature")
    m = fd.message_type.add(name="FeatureLists")
    _map_entry(m, "FeatureListEntry", _F.TYPE_MESSAGE, ".tensorflow.FeatureList")
    _field(m, "feature_list", 1, _F.TYPE_MESSAGE, rep, ".tensorflow.FeatureLists.FeatureListEntry")
    return fd


def _example_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="tensorflow/core/example/example.proto", package="tensorflow", syntax="proto3"
    )
    fd.dependency.append("tensorflow/core/example/feature.proto")
    m = fd.message_type.add(name="Example")
    _field(m, "features", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    m = fd.message_type.add(name="SequenceExample")
    _field(m, "context", 1, _F.TYPE_MESSAGE, type_name=".tensorflow.Features")
    _field(m, "feature_lists", 2, _F.TYPE_MESSAGE, type_name=".tensorflow.FeatureLists")
    return fd


def _data_file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="autodl/data.proto", package="autodl", syntax="proto2"
    )
    rep = _F.LABEL_REPEATED
    m = fd.message_type.add(name="MatrixSpec")
    fmt = m.enum_type.add(name="Format")
    for i, n in enumerate(("DENSE", "SPARSE", "COMPRESSED")):
        fmt.value.add(name=n, number=i)
    _field(m, "col_count", 1, _F.TYPE_INT32)
    _field(m, "row_count", 2, _F.TYPE_INT32)
    _field(m, "is_sequence_col", 3, _F.TYPE_BOOL)
    _field(m, "is_sequence_row", 4, _F.TYPE_BOOL)
    _field(m, "has_locality_col", 5, _F.TYPE_BOOL)
    _field(m, "has_locality_row", 6, _F.TYPE_BOOL)
    _field(m, "format", 8, _F.TYPE_ENUM, type_name=".autodl.MatrixSpec.Format", default="DENSE")
    _field(m, "is_sparse", 7, _F.TYPE_BOOL)
    m.field[-1].options.deprecated = True
    _field(m, "num_channels", 9, _F.TYPE_INT32, default="1")

    m = fd.message_type.add(name="DataSpecification")
    for entry in ("LabelToIndexMapEntry", "FeatureToIndexMapEntry", "ChannelToIndexMapEntry"):
        _map_entry(m, entry, _F.TYPE_INT32, is_map=False)
    _field(m, "matrix_spec", 1, _F.TYPE_MESSAGE, rep, ".autodl.MatrixSpec")
    _field(m, "is_sequence", 2, _F.TYPE_BOOL)
    _field(m, "output_dim", 3, _F.TYPE_INT32)
    t = ".autodl.DataSpecification."
    _field(m, "label_to_index_map", 4, _F.TYPE_MESSAGE, rep, t + "LabelToIndexMapEntry")
    _field(m, "feature_to_index_map", 5, _F.TYPE_MESSAGE, rep, t + "FeatureToIndexMapEntry")
    _field(m, "sequence_size", 6, _F.TYPE_INT32, default="1")
    _field(m, "sample_count", 7, _F.TYPE_INT32)
    _field(m, "channel_to_index_map", 8, _F.TYPE_MESSAGE, rep, t + "ChannelToIndexMapEntry")
    return fd


for _fd in (_feature_file(), _example_file(), _data_file()):
    _pool.Add(_fd)


def _cls(full_name: str) -> Any:
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(full_name))


# The two messages autodl reads and writes; the pool holds the rest of the .proto files.
SequenceExample = _cls("tensorflow.SequenceExample")
DataSpecification = _cls("autodl.DataSpecification")

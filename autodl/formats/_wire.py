"""A small hand-written protobuf wire codec for ``tensorflow.SequenceExample``.

Why: the reference path (protobuf messages, ``example.py``) costs a Python
attribute access per ``Feature``, and spokendigits stores one ``Feature`` per
audio sample (~7000 per record). Here the top level (a few map entries) is
walked in Python and a feature list whose steps all have the same layout
(every DENSE list TensorFlow writes) is decoded in one numpy operation.
Anything irregular falls back to a general per-step loop with the same result.

The encoder writes the bytes protobuf's serialiser writes for the same message
(fields in number order, packed numeric lists, map entries with key and value
always present). Map entries are written in the order given; the writer passes
keys sorted, which is what ``SerializeToString(deterministic=True)`` gives.
(upb, the Python protobuf backend, orders a key before its own prefixes,
e.g. "ab" before "a"; no key of the format is a prefix of another.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np

FeatureValue = tuple[str | None, Any]  # (kind, values): "bytes" | "float" | "int64" | None


class WireError(ValueError):
    """Malformed protobuf bytes; the caller adds the file and record."""


class TooManySteps(WireError):
    """A feature list holds more steps (or values) than the caller allows."""


_NO_CAP = 1 << 62
_U64 = (1 << 64) - 1


# ---------------------------------------------------------------- decoding


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise WireError("truncated varint") from None
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & _U64, pos  # a tenth byte over 1 overflows: protobuf keeps 64 bits
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _fields(buf: bytes, start: int, end: int):
    """(field number, wire type, value) for each field in buf[start:end].

    The value is an int for varints and fixed ints, and a (start, end) pair for
    length-delimited fields.
    """
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wtype = key >> 3, key & 7
        if wtype == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wtype, (pos, pos + n)
            pos += n
        elif wtype == 0:
            v, pos = _varint(buf, pos)
            yield number, wtype, v
        elif wtype == 5:
            if pos + 4 > end:
                raise WireError("truncated fixed32")
            yield number, wtype, (pos, pos + 4)
            pos += 4
        elif wtype == 1:
            if pos + 8 > end:
                raise WireError("truncated fixed64")
            yield number, wtype, (pos, pos + 8)
            pos += 8
        else:
            raise WireError(f"unsupported wire type {wtype} (field {number})")
    if pos != end:
        raise WireError("message ends inside a field")


def decode_varints(data: np.ndarray, ends: np.ndarray | None = None) -> np.ndarray:
    """Packed varints (uint8 array) -> int64 array, vectorised. ``ends``: the positions
    of the bytes under 0x80 (the last of each varint), when the caller has them."""
    if data.size == 0:
        return np.zeros(0, np.int64)
    if data.size <= 16:  # ids and label lists: a Python loop beats numpy's overhead
        vals, pos, raw = [], 0, data.tobytes()
        while pos < len(raw):
            v, pos = _varint(raw, pos)
            vals.append(v)
        return np.array(vals, np.uint64).view(np.int64)
    if ends is None:
        term = data < 0x80
        if term.all():
            return data.astype(np.int64)
        ends = np.flatnonzero(term)
    if ends.size == 0 or ends[-1] != data.size - 1:
        raise WireError("truncated packed varint")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if lengths.max() > 10:
        raise WireError("varint longer than 10 bytes")
    # byte j of every varint at once, masked by multiplying (boolean indexing copies
    # three times over: 3x slower); int64 shifts keep uint64's bits
    out = (data[starts] & 0x7F).astype(np.int64)
    for j in range(1, int(lengths.max())):
        b = data.take(starts + j, mode="clip").astype(np.int64)
        b &= 0x7F
        b <<= 7 * j
        b *= lengths > j
        out |= b
    return out


def decode_feature(buf: bytes, start: int, end: int, max_values: int = _NO_CAP) -> FeatureValue:
    """One ``tensorflow.Feature``: ("float", float32 array), ("int64", int64
    array), ("bytes", list of bytes) or (None, []) when no list is set.

    A bytes list of more than ``max_values`` values raises `TooManySteps` as soon as
    it is seen (each value would be a Python object; numbers stay in numpy arrays).
    """
    kind: str | None = None
    values: Any = []
    for number, wtype, span in _fields(buf, start, end):
        if number not in (1, 2, 3) or wtype != 2:
            continue  # unknown field: protobuf skips it too
        s, e = span
        if number == 1:
            kind = "bytes"
            values = []
            for n, w, span2 in _fields(buf, s, e):
                if n == 1 and w == 2:
                    if len(values) >= max_values:
                        raise TooManySteps(f"more than {max_values} values")
                    values.append(bytes(buf[span2[0] : span2[1]]))
        elif number == 2:
            kind = "float"
            parts = []
            for n, w, span2 in _fields(buf, s, e):
                if n == 1 and w in (2, 5):
                    a, b = span2
                    if (b - a) % 4:
                        raise WireError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(buf, "<f4", (b - a) // 4, a))
            values = parts[0] if len(parts) == 1 else np.concatenate(parts or [np.zeros(0, "<f4")])
        else:
            kind = "int64"
            parts = []
            for n, w, v in _fields(buf, s, e):
                if n != 1:
                    continue
                if w == 2:
                    parts.append(decode_varints(np.frombuffer(buf, np.uint8, v[1] - v[0], v[0])))
                elif w == 0:
                    parts.append(np.array([v], np.uint64).view(np.int64))
            values = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    return kind, values


def _float_step_header(k: int) -> bytes:
    """Bytes before the floats of one FeatureList step holding k floats."""
    inner = b"\x0a" + encode_varint(4 * k) if k else b""  # FloatList.value, packed
    flist = b"\x12" + encode_varint(len(inner) + 4 * k) + inner  # Feature.float_list
    return b"\x0a" + encode_varint(len(flist) + 4 * k) + flist  # FeatureList.feature


class FeatureListView:
    """A ``tensorflow.FeatureList`` left undecoded until a method asks for it."""

    __slots__ = ("buf", "start", "end")

    def __init__(self, buf: bytes, start: int, end: int):
        self.buf, self.start, self.end = buf, start, end

    def steps(self, max_steps: int = _NO_CAP) -> list[tuple[int, int]]:
        """(start, end) of each step; `TooManySteps` past ``max_steps`` steps."""
        out = []
        for n, w, span in _fields(self.buf, self.start, self.end):
            if n == 1 and w == 2:
                if len(out) >= max_steps:
                    raise TooManySteps(f"more than {max_steps} steps")
                out.append(span)
        return out

    def features(self, max_steps: int = _NO_CAP) -> list[FeatureValue]:
        """Every step as (kind, values) — the general, slow path."""
        return [decode_feature(self.buf, s, e, max_steps) for s, e in self.steps(max_steps)]

    def __len__(self) -> int:
        return len(self.steps())

    def floats(self, max_steps: int = _NO_CAP) -> np.ndarray:
        """The steps as a float32 array (n_steps, k); every step must hold k floats.

        More than ``max_steps`` steps raise `TooManySteps`.
        """
        buf, start, end = self.buf, self.start, self.end
        if start == end:
            return np.zeros((0, 0), np.float32)
        first = next(_fields(buf, start, end))
        if first[0] == 1 and first[1] == 2:
            kind, vals = decode_feature(buf, *first[2])
            if kind == "float":
                header = _float_step_header(len(vals))
                stride = len(header) + 4 * len(vals)
                size = end - start
                if size % stride == 0:
                    if size // stride > max_steps:
                        raise TooManySteps(f"{size // stride} steps")
                    rows = np.frombuffer(buf, np.uint8, size, start).reshape(-1, stride)
                    if (rows[:, : len(header)] == np.frombuffer(header, np.uint8)).all():
                        return rows[:, len(header) :].copy().view("<f4").astype(np.float32)
        return self._floats_slow(max_steps)

    def _floats_slow(self, max_steps: int = _NO_CAP) -> np.ndarray:
        feats = self.features(max_steps)
        lengths = set()
        for i, (kind, vals) in enumerate(feats):
            if kind != "float":
                raise WireError(f"step {i} holds a {kind or 'empty'} feature, not floats")
            lengths.add(len(vals))
        if len(lengths) > 1:
            raise WireError(f"steps hold different numbers of floats: {sorted(lengths)}")
        if not feats:
            return np.zeros((0, 0), np.float32)
        return np.stack([v for _, v in feats]).astype(np.float32)

    def flat(self, kind: str, max_steps: int = _NO_CAP) -> tuple[np.ndarray | list, np.ndarray]:
        """All values of all steps concatenated (as TF's VarLenFeature ``.values``),
        with the step index of each value. Steps of another kind raise; so do more
        than ``max_steps`` steps, or bytes values (each is a frame)."""
        values: list = []
        step_of: list[np.ndarray] = []
        n_bytes = 0
        for i, (k, v) in enumerate(self.features(max_steps)):
            if k == "bytes":
                n_bytes += len(v)
                if n_bytes > max_steps:
                    raise TooManySteps(f"more than {max_steps} values")
            if k is not None and k != kind:
                raise WireError(f"step {i} holds {k} values, not {kind}")
            values.append(v)
            step_of.append(np.full(len(v), i, np.int64))
        steps = np.concatenate(step_of) if step_of else np.zeros(0, np.int64)
        if kind == "bytes":
            return [b for v in values for b in v], steps
        dtype = np.float32 if kind == "float" else np.int64
        return (np.concatenate(values).astype(dtype) if values else np.zeros(0, dtype)), steps


class Record(NamedTuple):
    """A decoded SequenceExample: maps in file order."""

    context: dict[str, FeatureValue]
    feature_lists: dict[str, FeatureListView]


def decode_sequence_example(
    buf: bytes,
    context_keys: frozenset[str] | None = None,
    list_keys: frozenset[str] | None = None,
) -> Record:
    """Decode a serialised ``tensorflow.SequenceExample`` (see `Record`).

    Given ``context_keys`` / ``list_keys``, entries under other keys are skipped
    without being decoded (the reader needs a handful; a hostile record may hold
    millions of others).
    """
    context: dict[str, FeatureValue] = {}
    lists: dict[str, FeatureListView] = {}
    for number, wtype, span in _fields(buf, 0, len(buf)):
        if wtype != 2 or number not in (1, 2):
            continue
        for n, w, entry in _fields(buf, *span):
            if n != 1 or w != 2:
                continue
            es, ee = entry
            key = ""
            value = (ee, ee)
            for fn, fw, fspan in _fields(buf, es, ee):
                if fn == 1 and fw == 2:
                    try:
                        key = bytes(buf[fspan[0] : fspan[1]]).decode("utf-8")
                    except UnicodeDecodeError as e:
                        raise WireError("a map key is not valid UTF-8") from e
                elif fn == 2 and fw == 2:
                    value = fspan
            if number == 1:
                if context_keys is None or key in context_keys:
                    context[key] = decode_feature(buf, *value)
            elif list_keys is None or key in list_keys:
                lists[key] = FeatureListView(buf, *value)
    return Record(context, lists)


# ---------------------------------------------------------------- encoding


def encode_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64  # int64 negatives: ten-byte two's complement, as protobuf
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes((tag,)) + encode_varint(len(payload)) + payload


def encode_feature(kind: str | None, values: Any) -> bytes:
    """A serialised ``tensorflow.Feature`` (kind None: no list set)."""
    if kind is None:
        return b""
    if kind == "bytes":
        inner = b"".join(_len_field(0x0A, bytes(v)) for v in values)
        return _len_field(0x0A, inner)
    if kind == "float":
        arr = np.asarray(values, dtype="<f4")
        inner = _len_field(0x0A, arr.tobytes()) if arr.size else b""
        return _len_field(0x12, inner)
    if kind == "int64":
        ints = np.asarray(values, dtype=np.int64).ravel().tolist()
        packed = b"".join(encode_varint(v) for v in ints)
        inner = _len_field(0x0A, packed) if ints else b""
        return _len_field(0x1A, inner)
    raise ValueError(f"unknown feature kind {kind!r}")


def encode_feature_list(features: Iterable[bytes]) -> bytes:
    """A serialised ``tensorflow.FeatureList`` from serialised Features."""
    return b"".join(_len_field(0x0A, f) for f in features)


def encode_float_steps(steps: np.ndarray) -> bytes:
    """A FeatureList of float steps from an array (n_steps, k), vectorised."""
    steps = np.ascontiguousarray(steps, dtype="<f4")
    steps = steps.reshape(steps.shape[0], int(np.prod(steps.shape[1:])))
    n, k = steps.shape
    header = np.frombuffer(_float_step_header(k), np.uint8)
    out = np.empty((n, len(header) + 4 * k), np.uint8)
    out[:, : len(header)] = header
    out[:, len(header) :] = steps.view(np.uint8).reshape(n, 4 * k)
    return out.tobytes()


def encode_bytes_steps(frames: Iterable[bytes]) -> bytes:
    """A FeatureList with one bytes value per step (COMPRESSED frames)."""
    return encode_feature_list(encode_feature("bytes", [f]) for f in frames)


def _encode_map(entries: Mapping[str, bytes]) -> bytes:
    return b"".join(
        _len_field(0x0A, _len_field(0x0A, k.encode("utf-8")) + _len_field(0x12, v))
        for k, v in entries.items()
    )


def encode_sequence_example(
    context: Mapping[str, bytes], feature_lists: Mapping[str, bytes]
) -> bytes:
    """A serialised SequenceExample from serialised Features and FeatureLists.

    Entries are written in the mappings' order; pass them sorted to get what
    ``SerializeToString(deterministic=True)`` gives.
    """
    return _len_field(0x0A, _encode_map(context)) + _len_field(0x12, _encode_map(feature_lists))

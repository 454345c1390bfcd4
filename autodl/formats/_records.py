"""Turn one serialised SequenceExample into the fields the AutoDL reader uses.

Two decoders give the same `Decoded` value:

- small records (tabular rows, images, short texts) are parsed by protobuf's C
  parser (upb) and read through the message objects: per record that is a few
  microseconds, faster than any Python-level walk;
- large records (audio: one ``Feature`` per sample, ~70 kB) are walked by the
  hand-written codec in ``_wire.py``, which decodes the regular DENSE feature
  list in one numpy operation instead of thousands of message accesses.

``decode_record(buf, fmt, path="wire"|"pb")`` forces one path; tests check both
agree on every reference record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autodl.errors import FormatError
from autodl.formats import _wire, limits
from autodl.formats.example import SequenceExample

DENSE_KEY = "0_dense_input"
COMPRESSED_KEY = "0_compressed"
SPARSE_KEYS = ("0_sparse_row_index", "0_sparse_col_index", "0_sparse_value")
SPARSE_CHANNEL_KEY = "0_sparse_channel_index"
FEATURE_KEYS = {"DENSE": (DENSE_KEY,), "COMPRESSED": (COMPRESSED_KEY,), "SPARSE": SPARSE_KEYS}

# Above this size the wire codec beats upb (which builds one message object
# per Feature: 0.5 ms for a 7000-sample clip); below it upb's fixed cost wins
# (a tabular row: 8 us with upb, 50 us walked in Python).
_WIRE_THRESHOLD = 32 * 1024


class RecordError(ValueError):
    """A record that does not hold what the format needs; says which field.

    ``cap``: the `limits.Limits` field the record breaks (e.g. "max_frames"), if
    that is the problem; ``message`` then says what is too large ("a record of
    2,000,000 frames") and the caller words it with `limits.exceeded`.
    """

    def __init__(
        self, field: str, message: str, expected: str | None = None, *, cap: str | None = None
    ):
        super().__init__(message)
        self.field = field
        self.message = message
        self.expected = expected
        self.cap = cap

    def error(self, file: str, record: int) -> limits.LimitExceeded:
        """The `limits.LimitExceeded` of a ``cap`` error, naming file and record."""
        return limits.exceeded(
            self.cap or "", self.message, file=file, record=record, field=self.field
        )


def _too_many(field: str, n: int | None = None) -> RecordError:
    what = (
        "the record holds more than the {limit} frames allowed"
        if n is None
        else f"a record of {n:,} frames"
    )
    return RecordError(field, what, cap="max_frames")


@dataclass
class Decoded:
    """The fields of one record. Absent context features are None.

    Label lists stay Python lists: they hold a few values, and numpy's
    per-call cost would dominate the reading of a tabular row.
    """

    id: int | None
    label_index: list[int] | None
    label_score: list[float] | None
    dense: np.ndarray | None = None  # float32 (steps, values per step)
    frames: list[bytes] | None = None  # COMPRESSED: one encoded image per frame
    sparse: dict[str, np.ndarray] | None = None  # row, col, channel, value, step


def _context_value(name: str, kind: str | None, values, want: str) -> list:
    if kind != want and (kind is not None or len(values)):
        raise RecordError(name, f"context feature '{name}' holds {kind} values", f"an {want} list")
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


def _finish_context(ctx: dict) -> tuple[int | None, list | None, list | None]:
    rid = None
    if "id" in ctx:
        ids = _context_value("id", *ctx["id"], "int64")
        if len(ids) != 1:
            raise RecordError(
                "id", f"context feature 'id' holds {len(ids)} values", "exactly one int64"
            )
        rid = int(ids[0])
    li = ls = None
    if "label_index" in ctx:
        li = _context_value("label_index", *ctx["label_index"], "int64")
    if "label_score" in ctx:
        ls = _context_value("label_score", *ctx["label_score"], "float")
    return rid, li, ls


def _missing(key: str, fmt: str) -> RecordError:
    return RecordError(key, f"the record has no feature list '{key}'", f"'{key}' for {fmt} data")


# The feature lists the reader uses; any other is skipped undecoded (a record
# may hold millions of unknown keys: none of them costs an object).
_LIST_KEYS = frozenset((DENSE_KEY, COMPRESSED_KEY, *SPARSE_KEYS, SPARSE_CHANNEL_KEY))
_CONTEXT_KEYS = frozenset(("id", "label_index", "label_score"))


def _decode_wire(buf: bytes, fmt: str, max_frames: int) -> Decoded:
    rec = _wire.decode_sequence_example(buf, _CONTEXT_KEYS, _LIST_KEYS)
    out = Decoded(*_finish_context(rec.context))
    fl = rec.feature_lists
    key = next(iter(FEATURE_KEYS[fmt]))
    try:
        if fmt == "DENSE":
            if DENSE_KEY not in fl:
                raise _missing(DENSE_KEY, fmt)
            out.dense = fl[DENSE_KEY].floats(max_frames)
        elif fmt == "COMPRESSED":
            if COMPRESSED_KEY not in fl:
                raise _missing(COMPRESSED_KEY, fmt)
            out.frames = fl[COMPRESSED_KEY].flat("bytes", max_frames)[0]
        else:
            out.sparse = _sparse(
                {
                    k: fl[k].flat(_sparse_kind(k), max_frames)
                    for k in fl
                    if k.startswith("0_sparse_")
                }
            )
    except _wire.TooManySteps:
        raise _too_many(key) from None
    except _wire.WireError as e:
        raise RecordError(key, str(e)) from None
    return out


def _sparse_kind(key: str) -> str:
    return "float" if key == "0_sparse_value" else "int64"


def _sparse(lists: dict[str, tuple]) -> dict[str, np.ndarray]:
    for k in SPARSE_KEYS:
        if k not in lists:
            raise _missing(k, "SPARSE")
    values, steps = lists["0_sparse_value"]
    out = {"value": values, "step": steps}
    for name, key in (
        ("row", SPARSE_KEYS[0]),
        ("col", SPARSE_KEYS[1]),
        ("channel", SPARSE_CHANNEL_KEY),
    ):
        if key in lists:
            idx = lists[key][0]
            if len(idx) != len(values):
                raise RecordError(
                    key,
                    f"'{key}' holds {len(idx)} indices for {len(values)} values",
                    f"{len(values)}",
                )
            out[name] = idx
    if "channel" not in out:
        out["channel"] = np.zeros(len(values), np.int64)
    return out


def _pb_kind(f) -> tuple[str | None, list]:
    kind = f.WhichOneof("kind")
    if kind is None:
        return None, []
    return kind[:-5], getattr(f, kind).value


_PB_WANT = {"id": "int64_list", "label_index": "int64_list", "label_score": "float_list"}


def _pb_context(ctx, name: str) -> list | None:
    f = ctx.get(name)  # never ctx[name] on a missing key: it would insert it
    if f is None:
        return None
    want = _PB_WANT[name]
    values = getattr(f, want).value
    if values:
        return list(values)
    kind = f.WhichOneof("kind")  # an empty list of the right kind, or another kind?
    if kind is None or kind == want:
        return []
    raise RecordError(
        name, f"context feature '{name}' holds {kind[:-5]} values", f"an {want[:-5]} list"
    )


def _decode_pb(buf: bytes, fmt: str) -> Decoded:
    try:
        m = SequenceExample.FromString(buf)
    except Exception as e:  # upb raises DecodeError; keep the message
        raise RecordError("", f"the record is not a valid SequenceExample ({e})") from None
    ctx = m.context.feature
    ids = _pb_context(ctx, "id")
    if ids is not None and len(ids) != 1:
        raise RecordError(
            "id", f"context feature 'id' holds {len(ids)} values", "exactly one int64"
        )
    out = Decoded(
        ids[0] if ids else None, _pb_context(ctx, "label_index"), _pb_context(ctx, "label_score")
    )
    fl = m.feature_lists.feature_list
    if fmt == "DENSE":
        if DENSE_KEY not in fl:
            raise _missing(DENSE_KEY, fmt)
        flist = fl[DENSE_KEY]
        feats = flist.feature
        n = len(feats)
        if n == 1 and feats[0].WhichOneof("kind") == "float_list":  # a tabular row
            v = feats[0].float_list.value
            out.dense = np.fromiter(v, np.float32, len(v)).reshape(1, len(v))
            return out
        # Re-serialising the list in C and decoding it with numpy beats one
        # Python access per step (texts: ~100 steps of one float).
        raw = flist.SerializeToString()
        try:
            out.dense = _wire.FeatureListView(raw, 0, len(raw)).floats()
        except _wire.WireError as e:
            raise RecordError(DENSE_KEY, str(e)) from None
    elif fmt == "COMPRESSED":
        if COMPRESSED_KEY not in fl:
            raise _missing(COMPRESSED_KEY, fmt)
        frames = []
        for i, f in enumerate(fl[COMPRESSED_KEY].feature):
            kind, vals = _pb_kind(f)
            if kind not in (None, "bytes"):
                raise RecordError(
                    COMPRESSED_KEY, f"step {i} of '{COMPRESSED_KEY}' holds {kind} values", "bytes"
                )
            frames.extend(vals)
        out.frames = frames
    else:
        lists = {}
        for k in fl:
            if not k.startswith("0_sparse_"):
                continue
            want = _sparse_kind(k)
            vals, steps = [], []
            for i, f in enumerate(fl[k].feature):
                kind, v = _pb_kind(f)
                if kind not in (None, want):
                    raise RecordError(k, f"step {i} of '{k}' holds {kind} values", want)
                vals.extend(v)
                steps.extend([i] * len(v))
            dtype = np.float32 if want == "float" else np.int64
            lists[k] = (np.asarray(vals, dtype), np.asarray(steps, np.int64))
        out.sparse = _sparse(lists)
    return out


def decode_record(buf: bytes, fmt: str, path: str | None = None) -> Decoded:
    """Decode one record for storage format ``fmt`` ("DENSE", "COMPRESSED", "SPARSE").

    Raises `RecordError` naming the field when the record does not fit, with
    ``cap="max_frames"`` when it holds more frames (steps) than AUTODL_MAX_FRAMES;
    large records are walked by `_wire`, which stops counting there.
    """
    max_frames = limits.current().max_frames
    if path is None:
        path = "wire" if len(buf) > _WIRE_THRESHOLD else "pb"
    if path == "wire":
        try:
            out = _decode_wire(buf, fmt, max_frames)
        except _wire.WireError as e:
            raise RecordError("", f"the record is not a valid SequenceExample ({e})") from None
    else:
        out = _decode_pb(buf, fmt)
    # The pb path (records under 32 kB) counts afterwards: its objects are small.
    if out.frames is not None and len(out.frames) > max_frames:
        raise _too_many(COMPRESSED_KEY, len(out.frames))
    if out.dense is not None and out.dense.shape[0] > max_frames:
        raise _too_many(DENSE_KEY, out.dense.shape[0])
    if (
        out.sparse is not None
        and len(out.sparse["step"])
        and out.sparse["step"].max() >= max_frames
    ):
        raise _too_many(SPARSE_KEYS[2], int(out.sparse["step"].max()) + 1)
    return out


def format_error(file: str, record: int, rid: int | None, e: RecordError) -> FormatError:
    """The `FormatError` of a record that does not fit (file, record, id, field)."""
    if e.cap:
        return e.error(file, record)
    where = f"record {record}" + (f" (id {rid})" if rid is not None else "")
    field_part = f" field '{e.field}':" if e.field else ""
    expected = f"; expected {e.expected}" if e.expected else ""
    return FormatError(
        f"{file}: {where}:{field_part} {e.message}{expected}.",
        "Check this record (autodl check) and re-export the split.",
        file=file,
        record=record,
        field=e.field or None,
    )

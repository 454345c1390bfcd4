"""Decode a chunk of records together with numpy: the bulk path of the reader.

Why: decoding a tabular row record by record costs a protobuf parse and a
dozen Python operations (30 us); TensorFlow's batched parse does 3 us. Here
every record of a chunk (`_chunks.Chunk`) is walked *in lockstep*: one numpy
operation reads the next tag, length or key of all records at once, so the
Python cost is per chunk and per field, not per record, and numpy releases the
GIL while it works (a background reader leaves the trainer its core).

The walk accepts only the layout every known writer produces (the official
tools, TensorFlow, ours): a SequenceExample whose context holds ``id``,
``label_index`` and ``label_score`` (any order, each at most once) and whose
feature lists hold the keys of the storage format, every map entry written as
key then value, numeric lists packed. A record that is laid out any other way,
or that breaks a rule of the reader (a label out of range, a wrong step size,
more frames than the cap ...), is marked not ``ok`` and the caller decodes it
with the general decoder (``_records.decode_record``), which gives the same
values or raises the same error. So the bulk path changes speed, never results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autodl.formats import _records, _wire, limits

_CONTEXT = (b"id", b"label_index", b"label_score")
_DENSE = (_records.DENSE_KEY.encode(),)
_SPARSE = tuple(k.encode() for k in (*_records.SPARSE_KEYS, _records.SPARSE_CHANNEL_KEY))
_COMPRESSED = (_records.COMPRESSED_KEY.encode(),)
LONG_STEPS = 256  # mean steps per record above which DENSE records go one by one
MAX_LOCKSTEP = 64  # steps walked in lockstep; a record with more goes to the general path


def rows_at(arr: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bytes at each position, as a (len(pos), width) array: items of a
    view of the buffer as ``width``-byte blobs starting at every byte (one index per
    row, not one per byte; each row one copy: 2x faster than rows of a 2-D window)."""
    if width > len(arr):  # no row fits: none can match
        return np.zeros((len(pos), width), np.uint8)
    window = np.ndarray((len(arr) - width + 1,), f"V{width}", arr, 0, (1,))
    return window[np.clip(pos, 0, len(window) - 1)].view(np.uint8).reshape(-1, width)


def rows_equal(rows: np.ndarray, expected: bytes) -> np.ndarray:
    """Whether each row of a (n, >= len(expected)) uint8 array starts with ``expected``:
    compared 8, 4, 2 or 1 bytes at a time as integers (a row-wise ``all`` over single
    bytes is several times slower)."""
    ok = np.ones(len(rows), bool)
    at = 0
    for size, kind in ((8, "<u8"), (4, "<u4"), (2, "<u2"), (1, "u1")):
        while len(expected) - at >= size:
            want = np.frombuffer(expected[at : at + size], kind)[0]
            ok &= rows[:, at : at + size].view(kind)[:, 0] == want
            at += size
    return ok


class _Walk:
    """Positions in one chunk's buffer, one per record, and which records still fit."""

    def __init__(self, arr: np.ndarray, ok: np.ndarray):
        self.arr = arr
        self.top = len(arr) - 1
        self.ok = ok

    def byte(self, pos: np.ndarray) -> np.ndarray:
        return self.arr.take(pos, mode="clip")  # a damaged record may point anywhere

    def varint(self, pos: np.ndarray, most: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """Varints at ``pos``: (values as int64, positions after, too long): a varint
        longer than ``most`` bytes is too long (lengths never need more than 5)."""
        b = self.byte(pos)
        more = b >= 0x80
        if not more.any():  # the common case: one byte each
            return b.astype(np.int64), pos + 1, more
        value = (b & 0x7F).astype(np.uint64)
        size = np.ones(len(pos), np.int64)
        j = 1
        while more.any():
            if j >= most:
                return value.view(np.int64), pos + size, more
            b = self.byte(pos + j)
            value |= ((b & 0x7F).astype(np.uint64) << np.uint64(7 * j)) * more
            size += more
            more &= b >= 0x80
            j += 1
        return value.view(np.int64), pos + size, more

    def length(self, pos: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A length prefix at ``pos``: (start, end) of what it frames, and whether it
        fits before ``end``."""
        n, start, bad = self.varint(pos)
        stop = start + n
        return start, stop, ~bad & (n >= 0) & (stop <= end)

    def field(self, pos, end, tag: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A length-delimited field with ``tag`` at ``pos``: (start, end, fits)."""
        start, stop, good = self.length(pos + 1, end)
        return start, stop, good & (self.byte(pos) == tag)

    def entries(
        self, rows: np.ndarray, start: np.ndarray, end: np.ndarray, keys: tuple[bytes, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The map entries in [start, end) of records ``rows``: value (start, end) of each
        key, -1 when absent. Unknown or repeated keys, or entries laid out otherwise
        than (key, value), mark the record not ok.

        An entry is ``0x0A len 0x0A klen key 0x12 vlen value``: from its start, the
        bytes up to ``vlen`` are fixed for a given key. Each step compares every record
        with the key the first record holds there (writers sort the keys, so all the
        records of a chunk usually agree), and only the others with the other keys."""
        vs = np.full((len(keys), len(rows)), -1, np.int64)
        ve = np.full((len(keys), len(rows)), -1, np.int64)
        heads = [b"\x0a" + _wire.encode_varint(len(k)) + k + b"\x12" for k in keys]
        size = np.array([len(h) for h in heads])
        pos = start.copy()
        ok = self.ok[rows]
        for _ in range(len(keys) + 1):
            live = np.flatnonzero(ok & (pos < end))
            if not len(live):
                break
            p, e = pos[live], end[live]
            es, ee, good = self.field(p, e, 0x0A)
            slot = np.full(len(live), -1, np.int64)
            first = self.arr[int(es[0]) : int(es[0]) + int(size.max())].tobytes()
            order = sorted(range(len(keys)), key=lambda i: not first.startswith(heads[i]))
            for i in order:  # the first record's key first: it usually takes them all
                m = np.flatnonzero(good & (slot < 0))
                if not len(m):
                    break
                slot[m[rows_equal(rows_at(self.arr, es[m], len(heads[i])), heads[i])]] = i
            one = order[0] if (slot == order[0]).all() else None  # every record: one key
            if one is not None:
                s, v_end, g3 = self.length(es + len(heads[one]), ee)
                good &= g3 & (v_end == ee) & (vs[one, live] < 0)  # not a key seen twice
                vs[one, live] = np.where(good, s, -1)
                ve[one, live] = np.where(good, v_end, -1)
            else:
                good &= slot >= 0
                s, v_end, g3 = self.length(es + size[np.maximum(slot, 0)], ee)
                good &= g3 & (v_end == ee)
                hit = np.flatnonzero(good)
                good[hit[vs[slot[hit], live[hit]] >= 0]] = False  # a key seen twice
                hit = np.flatnonzero(good)
                vs[slot[hit], live[hit]] = s[hit]
                ve[slot[hit], live[hit]] = v_end[hit]
            ok[live[~good]] = False
            pos[live] = ee
        ok &= pos == end
        self.ok[rows] = ok
        return vs, ve

    def record(self, start: np.ndarray, end: np.ndarray, list_keys: tuple[bytes, ...]):
        """Context and feature-list entries of every record (see `entries`)."""
        rows = np.arange(len(start))
        cs, ce, g1 = self.field(start, end, 0x0A)
        fs, fe, g2 = self.field(ce, end, 0x12)
        self.ok &= g1 & g2 & (fe == end)
        ctx = self.entries(rows, cs, ce, tuple(k for k in _CONTEXT))
        lists = self.entries(rows, fs, fe, list_keys)
        return ctx, lists

    def packed(self, start: np.ndarray, end: np.ndarray, tag: int) -> tuple[np.ndarray, np.ndarray]:
        """A ``Feature`` in [start, end) holding a packed list under ``tag`` (0x12 float,
        0x1A int64), or nothing: the (start, end) of the packed payload; empty spans for
        an empty feature. Anything else marks the record not ok."""
        empty = start == end
        ls, le, good = self.field(start, end, tag)
        good &= le == end
        inner_empty = ls == le
        ps, pe, g2 = self.field(ls, le, 0x0A)
        good &= inner_empty | (g2 & (pe == le))
        ps = np.where(empty | inner_empty, end, ps)
        pe = np.where(empty | inner_empty, end, pe)
        self.ok &= empty | good
        return ps, pe

    def steps(self, start: np.ndarray, end: np.ndarray, most: int):
        """The steps (Features) of a FeatureList per record: (record, step number,
        start, end) of each, in record order. More than ``most`` steps: not ok."""
        pos = start.copy()
        rec, num, ss, se = [], [], [], []
        for j in range(most + 1):
            live = np.flatnonzero(self.ok & (pos < end))
            if not len(live):
                break
            if j == most:
                self.ok[live] = False
                break
            s, e, good = self.field(pos[live], end[live], 0x0A)
            self.ok[live[~good]] = False
            live, s, e = live[good], s[good], e[good]
            rec.append(live)
            num.append(np.full(len(live), j, np.int64))
            ss.append(s)
            se.append(e)
            pos[live] = e
        if not rec:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        if len(rec) == 1:  # one step each: already in record order
            keep = self.ok[rec[0]]
            return tuple(a[0][keep] for a in (rec, num, ss, se))
        r, n, s, e = (np.concatenate(a) for a in (rec, num, ss, se))
        order = np.lexsort((n, r))
        keep = self.ok[r[order]]
        return tuple(a[order][keep] for a in (r, n, s, e))


def _gather(
    arr: np.ndarray, start: np.ndarray, end: np.ndarray, item: str = "u1"
) -> tuple[np.ndarray, np.ndarray]:
    """The items of every span [start, end) concatenated, and each span's count:
    bytes (``item`` "u1"), or packed floats ("<f4", span lengths multiples of 4) read
    four bytes at a time through a view of the buffer with a one-byte stride (a quarter
    of the positions of reading their bytes: 1.5x faster)."""
    size = np.dtype(item).itemsize
    n = (end - start) // size
    total = int(n.sum())
    if not total:
        return np.zeros(0, item), n
    # positions as a running sum of steps: +size inside a span, a jump between spans
    # (two passes over the items; np.repeat of short spans is several times slower)
    s, e = start[n > 0], end[n > 0]
    kind = np.int32 if len(arr) < 2**31 else np.int64  # half the memory to touch
    step = np.full(total, size, kind)
    step[0] = s[0]
    step[np.cumsum(n[n > 0])[:-1]] = s[1:] - e[:-1] + size
    view = arr if size == 1 else np.ndarray((len(arr) - size + 1,), item, arr, 0, (1,))
    return view[np.cumsum(step, dtype=kind)], n


def _varints(w: _Walk, rows, start, end) -> tuple[np.ndarray, np.ndarray]:
    """The packed varints of each span [start, end) (spans of records ``rows``): their
    values in span order (uint8 when every one is a single byte, else int64) and each
    span's count. A span that does not end on a complete varint marks its record not
    ok (count 0); a varint over 10 bytes, every record of ``rows``."""
    n = end - start
    broken = (n > 0) & (w.arr[np.maximum(end - 1, 0)] >= 0x80)
    if broken.any():
        w.ok[rows[broken]] = False
        n = np.where(broken, 0, n)
        end = start + n
    raw, n = _gather(w.arr, start, end)
    term = raw < 0x80
    if term.all():  # the common case: values under 128
        return raw, n
    ends = np.flatnonzero(term)  # every span ends on one: no varint crosses two spans
    stop = np.cumsum(n)
    counts = np.searchsorted(ends, stop) - np.searchsorted(ends, stop - n)
    try:
        return _wire.decode_varints(raw, ends), counts
    except _wire.WireError:  # a varint over 10 bytes somewhere: all to the general path
        w.ok[rows] = False
        return np.zeros(0, np.int64), np.zeros(len(n), np.int64)


@dataclass
class Bulk:
    """What the bulk path made of a chunk: ``ok`` records are complete here; the
    others must go through the general decoder. ``x`` rows are valid for ok records.
    ``x`` is an array (n, T, H, W, C), or for DENSE records of varying length a list."""

    ok: np.ndarray
    ids: np.ndarray  # int64; -1 with has_id False: no id (the position is used)
    has_id: np.ndarray
    labels: np.ndarray
    x: np.ndarray | list | None = None
    frames: list[list[bytes]] | None = None  # COMPRESSED: each record's encoded frames


def _context(w: _Walk, vs: np.ndarray, ve: np.ndarray, output_dim: int):
    n = vs.shape[1]
    # id: exactly one varint, when present
    has_id = vs[0] >= 0
    s = np.where(has_id, vs[0], 0)
    e = np.where(has_id, ve[0], 0)
    ps, pe = w.packed(s, e, 0x1A)
    value, after, bad = w.varint(ps, most=10)
    w.ok &= ~has_id | (~bad & (after == pe) & (pe > ps))
    ids = np.where(has_id, value, -1)
    # label_index (packed varints) and label_score (packed floats), as many of each
    have_i = vs[1] >= 0
    have_s = vs[2] >= 0
    is_, ie = w.packed(np.where(have_i, vs[1], 0), np.where(have_i, ve[1], 0), 0x1A)
    ss, se = w.packed(np.where(have_s, vs[2], 0), np.where(have_s, ve[2], 0), 0x12)
    w.ok &= (se - ss) % 4 == 0
    labels = np.zeros((n, output_dim), np.float32)
    good = np.flatnonzero(w.ok)
    idx, counts = _varints(w, good, is_[good], ie[good])
    idx = idx.astype(np.int64, copy=False)
    match = (counts == (se[good] - ss[good]) // 4) & w.ok[good]
    w.ok[good[~match]] = False
    idx = idx[np.repeat(match, counts)]
    good, counts = good[match], counts[match]
    scores = _gather(w.arr, ss[good], se[good], "<f4")[0]
    owner = np.repeat(good, counts)
    bad = (idx < 0) | (idx >= output_dim)
    w.ok[owner[bad]] = False
    if (counts > 1).any():  # a label twice in a record: which score wins is left to the slow path
        flat = owner * output_dim + np.clip(idx, 0, output_dim - 1)
        uniq, first = np.unique(flat, return_index=True)
        if len(uniq) < len(flat):
            dup = np.ones(len(flat), bool)
            dup[first] = False
            w.ok[owner[dup]] = False
    keep = w.ok[owner]
    labels[owner[keep], idx[keep]] = scores[keep]
    return ids, has_id & w.ok, labels


def _dense(w: _Walk, rows, s, e, shape, max_frames: int, into=None) -> np.ndarray | list | None:
    """The float steps of DENSE records: each step ``H*W*C`` floats, laid out as
    TensorFlow writes them (a packed FloatList per step, see `_wire._float_step_header`).
    ``into``: zeros (n, T, H, W, C) to write them into, when T is known."""
    t, h, wd, c = shape
    per = h * wd * c
    head = np.frombuffer(_wire._float_step_header(per), np.uint8)
    stride = len(head) + 4 * per
    size = e - s
    steps = size // stride
    w.ok[rows[(size % stride != 0) | (steps < 1) | (steps > max_frames)]] = False
    if t > 0:
        w.ok[rows[steps != t]] = False
    live = w.ok[rows]
    if not live.any():  # every record to the general path: no array (the metadata's
        return None  # matrix may be far larger than the records)
    steps = np.where(live, steps, 0)
    total = int(steps.sum())
    if t <= 0 and total > LONG_STEPS * max(1, len(rows)):  # audio: few records, long
        return _dense_long(w, rows, s, e, steps, head, stride, (h, wd, c))
    first = np.repeat(s - stride * (np.cumsum(steps) - steps), steps) + stride * np.arange(total)
    whole = rows_at(w.arr, first, stride)  # each step's header and floats, one gather
    step_ok = rows_equal(whole, head.tobytes())
    if not step_ok.all():
        w.ok[np.repeat(rows, steps)[~step_ok]] = False
    body = whole[:, len(head) :].view("<f4")
    if t > 0:  # one copy, from the gathered bytes to the output
        out = into if into is not None else np.zeros((len(rows), t, h, wd, c), np.float32)
        values = body.reshape(-1, t, h, wd, c)
        if live.all():
            out[...] = values
        else:
            out[np.flatnonzero(live)] = values
        return out
    values = body.reshape(total, h, wd, c).astype(np.float32)
    ends = np.cumsum(steps).tolist()  # slices: np.split costs ~5 us a part, these 0.2
    return [values[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _dense_long(w: _Walk, rows, s, e, steps, head, stride, hwc) -> list:
    """Long DENSE records one at a time, each a strided view (few records, many steps)."""
    parts = []
    for k, (a, b, n) in enumerate(zip(s.tolist(), e.tolist(), steps.tolist(), strict=True)):
        if not n:
            parts.append(np.zeros((0, *hwc), np.float32))
            continue
        grid = w.arr[a:b].reshape(n, stride)
        if not (grid[:, : len(head)] == head).all():
            w.ok[rows[k]] = False
        parts.append(grid[:, len(head) :].copy().view("<f4").reshape(n, *hwc))
    return parts


def _sparse(w: _Walk, rows, vs, ve, shape, max_frames: int, into=None) -> np.ndarray | None:
    """SPARSE records scattered into zeros (n, T, H, W, C) (``into`` when given), as
    `_arrays.sparse_x`: the values' steps give each value its step; the index lists
    must hold as many values per record as the values list (their steps may differ).

    Counts are compared per step list, not per value, and a value's place in ``x`` is
    its step's base offset (one `np.repeat`) plus its indices: when every record is
    ok, the index lists line up with the values without an owner per value."""
    t, h, wd, c = shape
    n = len(rows)
    w.ok[(vs[0] < 0) | (vs[1] < 0) | (vs[2] < 0)] = False
    with_channel = vs[3] >= 0
    if with_channel.any() and not with_channel.all():
        w.ok[~with_channel] = False  # a chunk that mixes both: the general path
    most = min(t, MAX_LOCKSTEP)
    lists = {}  # key -> (record of each step, step number, values, count per step)
    for k in (2, 0, 1, 3) if with_channel.any() else (2, 0, 1):
        present = w.ok & (vs[k] >= 0)
        r, num, s, e = w.steps(np.where(present, vs[k], 0), np.where(present, ve[k], 0), most)
        sub = _Walk(w.arr, w.ok[r].copy())
        ps, pe = sub.packed(s, e, 0x12 if k == 2 else 0x1A)
        w.ok[r[~sub.ok]] = False
        if k == 2:
            w.ok[r[(pe - ps) % 4 != 0]] = False
        live = w.ok[r]  # the spans of a record that is not ok may be anything
        r, num, ps, pe = r[live], num[live], ps[live], pe[live]
        if k == 2:
            lists[k] = (r, num, *_gather(w.arr, ps, pe, "<f4"))
        else:
            lists[k] = (r, num, *_varints(w, r, ps, pe))
    r, num, vals, cnt = lists[2]
    per_rec = np.bincount(r, cnt, minlength=n)
    w.ok[r[(num >= min(t, max_frames)) & (cnt > 0)]] = False
    bounds = {0: h, 1: wd, 3: c}
    for k, lim in bounds.items():
        if k in lists:
            rk, _, v, ck = lists[k]
            w.ok[np.bincount(rk, ck, minlength=n) != per_rec] = False
            bad = v >= lim if v.dtype == np.uint8 else (v < 0) | (v >= lim)
            if bad.any():
                w.ok[np.repeat(rk, ck)[bad]] = False
    if not w.ok.any():  # every record to the general path: no array
        return None
    per_step = h * wd * c
    base = (r * t + num) * per_step
    if not w.ok.all():  # drop the values of records left to the general path
        lists = {k: (rk, _, v[np.repeat(w.ok[rk], ck)], ck) for k, (rk, _, v, ck) in lists.items()}
        vals = lists[2][2]
        live = w.ok[r]
        base, cnt = base[live], cnt[live]
    flat = np.repeat(base, cnt)
    for k, scale in ((0, wd * c), (1, c), (3, 1)):
        if k in lists and (k != 0 or h > 1):  # one row: every row index is 0 (checked)
            flat += np.multiply(lists[k][2], scale, dtype=np.int64)
    out = into if into is not None else np.zeros((n, t, h, wd, c), np.float32)
    out.reshape(-1)[flat] = vals
    return out


def decode_chunk(chunk, fmt: str, spec, into: np.ndarray | None = None) -> Bulk:
    """Decode the records of a `_chunks.Chunk` for ``spec`` (see `Bulk`). ``into``: zeros
    (n, T, H, W, C) that DENSE and SPARSE values are written into (then ``x``)."""
    arr, start, end = chunk.arr, chunk.start, chunk.end
    n = len(start)
    w = _Walk(arr, np.ones(n, bool))
    keys = {"DENSE": _DENSE, "SPARSE": _SPARSE, "COMPRESSED": _COMPRESSED}[fmt]
    (cvs, cve), (lvs, lve) = w.record(start, end, keys)
    ids, has_id, labels = _context(w, cvs, cve, spec.output_dim)
    max_frames = limits.current().max_frames
    out = Bulk(w.ok, ids, has_id, labels)
    t, h, wd, c = spec.shape
    rows = np.arange(n)
    if fmt == "DENSE":
        if h <= 0 or wd <= 0 or c <= 0 or 4 * h * wd * c > len(arr):
            w.ok[:] = False  # no step of that size fits in the chunk: the general path
            return out
        w.ok &= lvs[0] >= 0
        out.x = _dense(
            w, rows, np.where(w.ok, lvs[0], 0), np.where(w.ok, lve[0], 0), spec.shape,
            max_frames, into,
        )  # fmt: skip
    elif fmt == "SPARSE":
        if t <= 0 or h <= 0 or wd <= 0 or c <= 0:
            w.ok[:] = False
            return out
        if 4 * t * h * wd * c > limits.current().max_decoded_bytes:
            w.ok[:] = False
            return out
        out.x = _sparse(w, rows, lvs, lve, spec.shape, max_frames, into)
    else:
        w.ok &= lvs[0] >= 0
        most = min(max_frames, MAX_LOCKSTEP)
        r, _, s, e = w.steps(np.where(w.ok, lvs[0], 0), np.where(w.ok, lve[0], 0), most)
        # one encoded frame per step: BytesList { value: frame }
        fs, fe, good = w.field(s, e, 0x0A)
        vs, ve, g2 = w.field(fs, fe, 0x0A)
        good &= g2 & (ve == fe) & (fe == e)
        w.ok[r[~good]] = False
        buf = chunk.buf
        frames: list[list[bytes]] = [[] for _ in range(n)]
        for rec, a, b in zip(r.tolist(), vs.tolist(), ve.tolist(), strict=True):
            frames[rec].append(buf[a:b])
        out.frames = frames
    out.has_id &= w.ok
    return out

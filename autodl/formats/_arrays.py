"""One decoded record -> the arrays of the reader, as TensorFlow's official reader
gives them (see ``dataset.py``), with the caps that bound what a record may make
the reader allocate: pixels per frame and bytes once decoded, both checked from
the metadata and the frame headers before anything is decoded or allocated.
"""

from __future__ import annotations

import numpy as np

from autodl.formats import _records, images, limits

RecordError = _records.RecordError


def labels_of(d: _records.Decoded, output_dim: int) -> np.ndarray:
    """The dense label vector of a record (``tf.sparse_to_dense`` of its lists)."""
    y = np.zeros(output_dim, np.float32)
    li = d.label_index or []
    ls = d.label_score or []
    if len(li) != len(ls):
        raise RecordError(
            "label_score",
            f"label_score holds {len(ls)} values for {len(li)} label indices",
            f"{len(li)} scores",
        )
    for i, score in zip(li, ls, strict=True):
        if not 0 <= i < output_dim:
            raise RecordError(
                "label_index",
                f"label index {i} is out of range",
                f"0 … {output_dim - 1} (output_dim is {output_dim})",
            )
        y[i] = score
    return y


def dense_x(values: np.ndarray, shape: tuple[int, int, int, int]) -> np.ndarray:
    """(steps, k) floats -> (steps, H, W, C), checking k = H*W*C and the step count."""
    t, h, w, c = shape
    steps, k = values.shape
    per = h * w * c
    if h <= 0 or w <= 0:
        raise RecordError(
            _records.DENSE_KEY,
            f"DENSE data but the metadata gives the matrix size {h}×{w}",
            "row_count and col_count ≥ 1",
        )
    if steps and k != per:
        raise RecordError(
            _records.DENSE_KEY,
            f"a step holds {k} values",
            f"{per} = row_count × col_count × num_channels ({h}×{w}×{c})",
        )
    if t > 0 and steps != t:
        raise RecordError(
            _records.DENSE_KEY, f"the record has {steps} steps", f"sequence_size = {t}"
        )
    return values.reshape(steps, h, w, c)


def frames_x(pixels: list[np.ndarray], shape: tuple[int, int, int, int]) -> np.ndarray:
    """Decoded uint8 frames -> float32 (frames, h, w, C) scaled to [0, 1]."""
    t, h, w, c = shape
    if t > 0 and len(pixels) != t:
        raise RecordError(
            _records.COMPRESSED_KEY, f"the record has {len(pixels)} frames", f"sequence_size = {t}"
        )
    if not pixels:
        return np.zeros((0, max(h, 0), max(w, 0), c), np.float32)
    check_frame_sizes([p.shape[:2] for p in pixels], shape)
    return images.to_float(np.stack(pixels))


def check_frame_sizes(frame_sizes: list[tuple[int, int]], shape: tuple[int, int, int, int]) -> None:
    """One size per record, and the metadata's (row_count x col_count) where it gives one."""
    t, h, w, c = shape
    if not frame_sizes:
        return
    sizes = set(frame_sizes)
    if len(sizes) > 1:
        raise RecordError(
            _records.COMPRESSED_KEY,
            f"the frames have different sizes {sorted(sizes)}",
            "one size per record",
        )
    ph, pw = frame_sizes[0]
    if (h > 0 and ph != h) or (w > 0 and pw != w):
        raise RecordError(
            _records.COMPRESSED_KEY,
            f"a frame is {ph}×{pw} pixels",
            f"{h}×{w} (row_count × col_count)",
        )


def check_decoded(values: int, field: str) -> None:
    """Refuse a record whose x would hold more float32 bytes than AUTODL_MAX_DECODED_BYTES,
    before it is allocated (the size comes from the metadata or the frame headers)."""
    if 4 * values > limits.current().max_decoded_bytes:
        raise RecordError(
            field, f"a record of {4 * values:,} bytes once decoded", cap="max_decoded_bytes"
        )


def check_frames(
    frames: list[bytes], channels: int, max_side: int | None = None
) -> list[tuple[int, int] | None]:
    """The (height, width) of each encoded frame from its header alone; refuses a
    frame over AUTODL_MAX_FRAME_PIXELS and a record whose decoded x (after shrinking
    to ``max_side``) would pass AUTODL_MAX_DECODED_BYTES. None: an unreadable
    header (the decoder reports it)."""
    cap = limits.current().max_frame_pixels
    sizes = []
    total = 0
    for f in frames:
        size = images.frame_size(f)
        sizes.append(size)
        if size is None:
            continue
        h, w = size
        if h * w > cap:
            raise RecordError(
                _records.COMPRESSED_KEY, f"a frame of {w} x {h} pixels", cap="max_frame_pixels"
            )
        if max_side is not None:
            h, w = images.shrunk_size(h, w, max_side)
        total += h * w
    check_decoded(total * max(channels, 1), _records.COMPRESSED_KEY)
    return sizes


def sparse_x(s: dict[str, np.ndarray], shape: tuple[int, int, int, int]) -> np.ndarray:
    """Sparse entries scattered into zeros (T, H, W, C)."""
    t, h, w, c = shape
    if h <= 0 or w <= 0:
        raise RecordError(
            _records.SPARSE_KEYS[0],
            f"SPARSE data but the metadata gives the matrix size {h}×{w}",
            "row_count and col_count ≥ 1",
        )
    steps = s["step"]
    if t <= 0:
        t = int(steps.max()) + 1 if len(steps) else 0
    check_decoded(t * h * w * max(c, 1), _records.SPARSE_KEYS[2])
    for name, key, limit in (
        ("step", "0_sparse_value", t),
        ("row", "0_sparse_row_index", h),
        ("col", "0_sparse_col_index", w),
        ("channel", "0_sparse_channel_index", c),
    ):
        idx = s[name]
        bad = idx[(idx < 0) | (idx >= limit)]
        if len(bad):
            raise RecordError(
                key, f"{name} index {int(bad[0])} is out of range", f"0 … {limit - 1}"
            )
    x = np.zeros((t, h, w, c), np.float32)
    x[steps, s["row"], s["col"], s["channel"]] = s["value"]
    return x

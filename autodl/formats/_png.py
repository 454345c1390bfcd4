"""Many small PNG frames decoded at once, with numpy, bit-identical to libpng.

Pillow spends ~90 us of Python per frame whatever its size, which is nearly all
of the time for thumbnails such as 8x8 digits. Here every plain 8-bit frame
(gray, RGB or RGBA; not interlaced; no palette or transparency chunk) is
inflated with zlib, frames of one shape are stacked, and the PNG row filters
are undone for the whole stack at once: None, Sub and Up per row, Average and
Paeth per pixel column (vectorised over frames). Anything else (other bit
depths, palettes, interlacing, a bad CRC, a short stream) is left to Pillow,
which also gives the error message for broken frames.

Bounds: the header's width x height is checked against AUTODL_MAX_FRAME_PIXELS
before any inflating (a frame over it goes to Pillow's path, which refuses it by
its header), and zlib inflates no more than the rows the header announces (a few
kilobytes of zeros must not become gigabytes).
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from autodl.formats import limits

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAMPLES = {0: 1, 2: 3, 6: 4}  # colour type -> 8-bit samples per pixel
_PIXEL_LOOP_COST = 30e-6  # s per pixel column of a stack (numpy calls, measured)
_PILLOW_COST = 90e-6  # s per frame through Pillow (measured on 8x8 and 32x32 frames)


def header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR (the first chunk), without reading further."""
    if len(data) < 24 or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", data, 16)
    return h, w


def parse(data: bytes, max_pixels: int | None = None) -> tuple[tuple[int, int, int], bytes] | None:
    """((height, width, samples), filtered rows) of a plain 8-bit PNG, else None.

    None too for a frame over ``max_pixels`` (default: AUTODL_MAX_FRAME_PIXELS).
    """
    if max_pixels is None:
        max_pixels = limits.current().max_frame_pixels
    if data[:8] != SIGNATURE:
        return None
    pos, end, shape, idat = 8, len(data), None, []
    while pos + 12 <= end:
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            return None
        if zlib.crc32(body, zlib.crc32(kind)) != int.from_bytes(crc, "big"):
            return None
        pos += 12 + length
        if kind == b"IHDR":
            if length != 13:
                return None
            w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or ctype not in _SAMPLES or comp or filt or interlace or not w or not h:
                return None
            if w * h > max_pixels:
                return None
            shape = (h, w, _SAMPLES[ctype])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind == b"tRNS" or kind[0] < 97:  # transparency, palette, unknown critical chunk
            return None
    else:
        return None  # no IEND: truncated
    if shape is None or not idat:
        return None
    h, w, s = shape
    size = h * (1 + w * s)
    try:
        # Inflate the announced rows and no more; what follows them is never used.
        raw = zlib.decompressobj().decompress(b"".join(idat), size)
    except zlib.error:
        return None
    if len(raw) < size:
        return None
    return shape, raw


def _unfilter(rows: np.ndarray, samples: int) -> np.ndarray | None:
    """(N, H, 1 + W*S) filtered scanlines -> (N, H, W*S) pixels; None on a bad filter byte."""
    n, h, width = rows.shape
    types, lines = rows[:, :, 0], rows[:, :, 1:]
    if types.max(initial=0) > 4:
        return None
    out = np.zeros((n, h, width - 1), np.uint8)
    zero = np.zeros((n, width - 1), np.uint8)
    for r in range(h):
        prev = out[:, r - 1] if r else zero
        for t in np.unique(types[:, r]):
            idx = np.flatnonzero(types[:, r] == t)
            line, up = lines[idx, r], prev[idx]
            if t == 0:
                out[idx, r] = line
            elif t == 1:  # Sub: running sum of each sample channel, modulo 256
                out[idx, r] = np.cumsum(
                    line.reshape(len(idx), -1, samples), axis=1, dtype=np.uint8
                ).reshape(len(idx), -1)
            elif t == 2:  # Up
                out[idx, r] = line + up
            else:  # Average (3) and Paeth (4): left to right, a pixel at a time
                done = np.zeros_like(line)
                left = np.zeros((len(idx), samples), np.int16)
                upleft = np.zeros((len(idx), samples), np.int16)
                for x in range(0, width - 1, samples):
                    b = up[:, x : x + samples].astype(np.int16)
                    if t == 3:
                        pred = (left + b) >> 1
                    else:
                        p = left + b - upleft
                        pa, pb, pc = np.abs(p - left), np.abs(p - b), np.abs(p - upleft)
                        pred = np.where(
                            (pa <= pb) & (pa <= pc), left, np.where(pb <= pc, b, upleft)
                        )
                    cur = (line[:, x : x + samples].astype(np.int16) + pred) & 0xFF
                    done[:, x : x + samples] = cur
                    left, upleft = cur, b
                out[idx, r] = done
    return out


def decode_many(frames: Sequence[bytes]) -> list[np.ndarray | None]:
    """Each frame as uint8 (H, W, samples) where this module decodes it faster
    than Pillow would, else None (the caller decodes it with Pillow)."""
    out: list[np.ndarray | None] = [None] * len(frames)
    groups: dict[tuple[int, int, int], list[tuple[int, bytes]]] = defaultdict(list)
    for i, data in enumerate(frames):
        parsed = parse(data)
        if parsed is not None:
            groups[parsed[0]].append((i, parsed[1]))
    for (h, w, s), members in groups.items():
        if len(members) * _PILLOW_COST < h * w * _PIXEL_LOOP_COST:
            continue  # few large frames: Pillow's C loop is quicker than our column loop
        rows = np.frombuffer(b"".join(raw for _, raw in members), np.uint8)
        pixels = _unfilter(rows.reshape(len(members), h, 1 + w * s), s)
        if pixels is None:
            continue
        for (i, _), img in zip(members, pixels.reshape(len(members), h, w, s), strict=True):
            out[i] = img
    return out

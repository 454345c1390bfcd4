"""Many PNG frames decoded at once, bit-identical to libpng (and so to TensorFlow).

Pillow's ``Image.open(...).load()`` spends ~75 us of Python per frame whatever its
size (chunk parsing, plugin dispatch), which is nearly all of the time for
thumbnails such as 8x8 digits or 32x32 photos, and holds the GIL. Here every plain
8-bit frame (gray, RGB or RGBA; not interlaced; no palette or transparency chunk)
has its chunks walked and CRC-checked by `chunks` (~4 us), and its IDAT stream is
handed to Pillow's own PNG decoder (``zip``: zlib inflate and the row filters, in C,
with the GIL released) writing straight into its rows of one tall image per group
of frames of one shape; one ``numpy.asarray`` then gives them all. Groups are split
between threads (`decode_stack`, `decode_many`): the decoding runs on every core and
a reader in a background thread leaves the trainer's thread the GIL.

Where Pillow's decoder object is not available (a future Pillow without
``Image.core.zip_decoder`` as it is called here), the frames are inflated with zlib and the PNG row filters are
undone with numpy for the whole stack at once (`parse`, `_unfilter`): None, Sub and
Up per row, Average and Paeth per pixel column, vectorised over frames.

Anything else (other bit depths, palettes, interlacing, a bad CRC, a short or
broken stream) is left to ``Image.open`` (the caller's path), which also gives the
error message for broken frames.

Bounds: the header's width x height is checked against AUTODL_MAX_FRAME_PIXELS
before any inflating (a frame over it goes to the caller's path, which refuses it by
its header), and no more than the rows the header announces are inflated (a few
kilobytes of zeros must not become gigabytes): Pillow's decoder stops at the last
row of its tile, `parse` asks zlib for those rows only.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from autodl.formats import limits

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SAMPLES = {0: 1, 2: 3, 6: 4}  # colour type -> 8-bit samples per pixel
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # samples -> Pillow's mode (and raw mode)
_PIXEL_LOOP_COST = 30e-6  # s per pixel column of a stack (numpy calls, measured)
_PILLOW_COST = 90e-6  # s per frame through Image.open (measured on 8x8 and 32x32 frames)
THREAD_MIN_FRAMES = 256  # fewer frames: decoded in the caller's thread
PART_PIXELS = 1 << 24  # pixels per tall image (bounds the memory a part holds twice)


def _pillow_decoder() -> Callable | None:
    """Pillow's PNG decoder factory (``zip_decoder(mode, rawmode, interlace)``, what
    ``Image._getdecoder(mode, "zip", ...)`` returns), when this Pillow has it."""
    factory = getattr(Image.core, "zip_decoder", None)
    if factory is None:
        return None
    try:  # the signature this module relies on
        factory("L", "L", 0).cleanup()
    except (TypeError, ValueError, AttributeError, OSError):
        return None
    return factory


PILLOW = _pillow_decoder()


def header_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR (the first chunk), without reading further."""
    if len(data) < 24 or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", data, 16)
    return h, w


def chunks(
    data: bytes, max_pixels: int | None = None
) -> tuple[tuple[int, int, int], bytes | memoryview] | None:
    """((height, width, samples), IDAT stream) of a plain 8-bit PNG, every chunk's CRC
    checked, else None. None too for a frame over ``max_pixels`` (default:
    AUTODL_MAX_FRAME_PIXELS). The stream of a single IDAT is a view of ``data``."""
    if max_pixels is None:
        max_pixels = limits.current().max_frame_pixels
    if data[:8] != SIGNATURE:
        return None
    view = memoryview(data)
    unpack, crc32 = struct.unpack_from, zlib.crc32
    pos, end, shape, idat = 8, len(data), None, []
    while pos + 12 <= end:
        length, kind = unpack(">I4s", data, pos)
        stop = pos + 8 + length
        if stop + 4 > end:
            return None
        if crc32(view[pos + 4 : stop]) != unpack(">I", data, stop)[0]:
            return None
        if kind == b"IHDR":
            if length != 13 or shape is not None:
                return None
            w, h, depth, ctype, comp, filt, interlace = unpack(">IIBBBBB", data, pos + 8)
            if depth != 8 or ctype not in _SAMPLES or comp or filt or interlace or not w or not h:
                return None
            if w * h > max_pixels:
                return None
            shape = (h, w, _SAMPLES[ctype])
        elif kind == b"IDAT":
            if shape is None:
                return None
            idat.append(view[pos + 8 : stop])
        elif kind == b"IEND":
            break
        elif kind == b"tRNS" or kind[0] < 97:  # transparency, palette, unknown critical chunk
            return None
        pos = stop + 4
    else:
        return None  # no IEND: truncated
    if shape is None or not idat:
        return None
    return shape, idat[0] if len(idat) == 1 else b"".join(idat)  # no copy of one IDAT


_IHDR_HEAD = b"\x00\x00\x00\x0dIHDR"
_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the whole IEND chunk, its CRC included


def _quick_stream(data: bytes, head: bytes) -> memoryview | None:
    """The IDAT stream of a frame laid out as ``head`` (the signature and an IHDR chunk
    that `chunks` accepted on another frame), one IDAT (CRC checked) and IEND, nothing
    after: what PNG writers produce for small images; else None (then `chunks`, which
    accepts the same frames and more: a few Python operations here, not a walk)."""
    n = len(data)
    if n < 57 or data[:33] != head:
        return None
    length = int.from_bytes(data[33:37], "big")
    if n != 57 + length or data[37:41] != b"IDAT" or data[n - 12 :] != _IEND:
        return None
    view = memoryview(data)
    if zlib.crc32(view[37 : 41 + length]) != int.from_bytes(data[41 + length : 45 + length], "big"):
        return None
    return view[41 : 41 + length]


def parse(data: bytes, max_pixels: int | None = None) -> tuple[tuple[int, int, int], bytes] | None:
    """((height, width, samples), filtered rows) of a plain 8-bit PNG, else None
    (as `chunks`); zlib inflates the rows the header announces and no more."""
    found = chunks(data, max_pixels)
    if found is None:
        return None
    (h, w, s), stream = found
    size = h * (1 + w * s)
    try:
        # Inflate the announced rows and no more; what follows them is never used.
        raw = zlib.decompressobj().decompress(stream, size)
    except zlib.error:
        return None
    if len(raw) < size:
        return None
    return (h, w, s), raw


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


def unfilter_many(frames: Sequence[bytes]) -> list[np.ndarray | None]:
    """Each frame as uint8 (H, W, samples), inflated by zlib and unfiltered with numpy,
    where that is quicker than ``Image.open``, else None (the fallback of `decode_many`
    when Pillow's decoder object is not available)."""
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


def _pillow_part(streams: Sequence[bytes], shape: tuple[int, int, int]):
    """IDAT streams of frames of one shape decoded by Pillow's PNG decoder, each into
    its rows of one tall image: (uint8 (n, H, W, samples), whether each decoded
    completely). The decoder stops at the last row of its tile, whatever follows."""
    assert PILLOW is not None
    h, w, s = shape
    mode = _MODES[s]
    tall = Image.new(mode, (w, h * len(streams)))
    core = tall.im
    ok = []
    for k, stream in enumerate(streams):
        decoder = PILLOW(mode, mode, 0)
        try:
            decoder.setimage(core, (0, k * h, w, (k + 1) * h))
            status, err = decoder.decode(stream)  # runs without the GIL
        finally:
            decoder.cleanup()
        ok.append(status < 0 and err == 0)  # < 0: done; 0 <= status: wants more data
    return np.asarray(tall).reshape(len(streams), h, w, s), ok


def _ranges(n: int, pixels: int, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) parts of n frames of ``pixels`` each: one per worker (none below
    THREAD_MIN_FRAMES), more where a part would pass PART_PIXELS."""
    parts = max(1, min(workers, n // THREAD_MIN_FRAMES), -(-n * pixels // PART_PIXELS))
    parts = min(parts, n)
    bounds = [n * k // parts for k in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _run(fn: Callable, jobs: list, workers: int) -> list:
    """fn over jobs, in order: in threads when more than one job and worker."""
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in jobs]
    with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
        return list(pool.map(fn, jobs))


def decode_many(frames: Sequence[bytes], workers: int = 1) -> list[np.ndarray | None]:
    """Each frame as uint8 (H, W, samples) where this module decodes it (module doc),
    else None (the caller decodes it with ``Image.open``). ``workers``: threads."""
    if PILLOW is None:
        return unfilter_many(frames)
    out: list[np.ndarray | None] = [None] * len(frames)
    groups: dict[tuple[int, int, int], list[tuple[int, bytes | memoryview]]] = defaultdict(list)
    for i, data in enumerate(frames):
        found = chunks(data)
        if found is not None:
            groups[found[0]].append((i, found[1]))
    jobs = []
    for shape, members in groups.items():
        for lo, hi in _ranges(len(members), shape[0] * shape[1], workers):
            jobs.append((shape, members[lo:hi]))

    def part(job):
        shape, members = job
        return _pillow_part([stream for _, stream in members], shape)

    for (_, members), (pixels, ok) in zip(jobs, _run(part, jobs, workers), strict=True):
        for (i, _), img, good in zip(members, pixels, ok, strict=True):
            if good:
                out[i] = img
    return out


def decode_stack(
    frames: Sequence[bytes],
    workers: int = 1,
    put: Callable[[int, int, np.ndarray], None] | None = None,
) -> tuple[int, int, int] | None:
    """Frames that are all plain PNGs of one shape, decoded in ``workers`` threads:
    ``put(lo, hi, pixels)`` receives uint8 (hi - lo, H, W, samples) for frames lo..hi-1
    (in its thread: what it does with them runs in parallel too). Returns (H, W,
    samples), or None, having put nothing or only part, when any frame is not such a
    PNG or does not decode (the caller then decodes them all another way)."""
    if PILLOW is None or not frames:
        return None
    first = chunks(frames[0])
    if first is None:
        return None
    shape = first[0]
    head = frames[0][:33] if frames[0][8:16] == _IHDR_HEAD else b"-"  # sig + IHDR chunk

    def part(span: tuple[int, int]) -> bool:
        lo, hi = span
        streams = []
        for data in frames[lo:hi]:
            stream = _quick_stream(data, head)
            if stream is None:
                found = chunks(data)
                if found is None or found[0] != shape:
                    return False
                stream = found[1]
            streams.append(stream)
        pixels, ok = _pillow_part(streams, shape)
        if not all(ok):
            return False
        if put is not None:
            put(lo, hi, pixels)
        return True

    spans = _ranges(len(frames), shape[0] * shape[1], workers)
    return shape if all(_run(part, spans, workers)) else None

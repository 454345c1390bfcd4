"""Decode and encode COMPRESSED frames as TensorFlow's reader does.

The official reader calls ``tf.image.decode_image(frame, channels=C)`` and
``tf.image.convert_image_dtype(image, tf.float32)``: uint8 values cast to
float32 times ``float32(1/255)``. `to_float` does exactly that. Channel
conversion follows TensorFlow: gray is replicated to RGB, alpha is dropped, a
colour JPEG asked for one channel is decoded by libjpeg to its luma plane, a
colour PNG is turned gray with libpng's fixed-point weights (bit-identical,
checked with TensorFlow 2.21).

PNG (and other lossless formats) decode bit-identically with Pillow. JPEG
does not: TensorFlow decodes with libjpeg's fast integer IDCT
(``INTEGER_FAST``), Pillow with the accurate one, and pixels differ by a few
levels (17/255 at most on movingdigits and Monkeys, checked with TensorFlow
2.21). When the optional package ``simplejpeg`` (libjpeg-turbo) is installed, JPEG frames are
decoded with TensorFlow's settings and match it bit for bit (same check);
``JPEG_DECODER`` says which decoder is in use.

Decoding many frames uses every core: worker processes for many small frames,
threads for large ones (the codecs release the GIL); see ``decode_frames``.

``max_side`` (the engine's memory bound): a frame larger than that on a side is
shrunk to fit, aspect kept, by area averaging (`shrink`, Pillow's BOX filter). A
JPEG is then decoded by libjpeg at a reduced scale first (1/2, 1/4 or 1/8 in the DCT,
never below the final size), so a 12-megapixel photo costs a fraction of its full
decode. Shrunk pixels are no longer TensorFlow's, by design.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import struct
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from autodl.formats import _png, limits

try:  # optional: libjpeg-turbo with TensorFlow's JPEG settings, bit-exact
    import simplejpeg
except ImportError:  # pragma: no cover - depends on the installation
    simplejpeg = None

JPEG_DECODER = "simplejpeg" if simplejpeg is not None else "Pillow"
#: What TensorFlow's ``decode_image`` reads; Pillow is never asked to open anything
#: else (some of its other plugins run external programs or parse rarely used code).
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")

# Pillow warns of a "decompression bomb" above 89 M pixels, to stderr, whoever reads
# the frame: here AUTODL_MAX_FRAME_PIXELS bounds every frame before it is decoded
# (`check_pixels`), and a frame over it is refused in our words. One filter for the
# process (a `warnings.catch_warnings` block is not thread-safe, and frames are
# decoded in threads).
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class FrameTooLarge(ValueError):
    """A frame whose header gives more pixels than AUTODL_MAX_FRAME_PIXELS; not decoded.

    Its message names the frame's size, the cap and the setting ("a frame of 9000 x 9000
    pixels is over the limit of 25,000,000 pixels (AUTODL_MAX_FRAME_PIXELS)"): whoever
    shows it (``autodl predict``, the service's 422) says why, not "does not decode".
    ``what`` is its first part ("a frame of 9000 x 9000 pixels"), for `limits.exceeded`.
    """

    def __init__(self, height: int, width: int, limit: int):
        self.what = f"a frame of {width} x {height} pixels"
        super().__init__(
            f"{self.what} is over the limit of {limit:,} pixels (AUTODL_MAX_FRAME_PIXELS)"
        )
        self.height, self.width, self.limit = height, width, limit


def check_pixels(height: int, width: int, limit: int | None = None) -> None:
    """Raise `FrameTooLarge` when a height x width frame is over the pixel cap."""
    limit = limits.current().max_frame_pixels if limit is None else limit
    if height * width > limit:
        raise FrameTooLarge(height, width, limit)


_U16 = struct.Struct(">H")
_HW = struct.Struct(">HH")
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # start-of-frame markers


def _jpeg_sof_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's start-of-frame marker, walking the segments
    (~1 us: the frame markers come first in what cameras and libjpeg write)."""
    pos, end = 2, len(data) - 9
    while pos <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker in _SOF:
            return _HW.unpack_from(data, pos + 5)  # type: ignore[return-value]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            pos += 2
        else:
            length = _U16.unpack_from(data, pos + 2)[0]
            if length < 2:
                return None
            pos += 2 + length
    return None


def frame_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) of an encoded frame read from its header only, without
    decoding; None when the header cannot be read (the decoder then says why)."""
    if data[:8] == _png.SIGNATURE:
        return _png.header_size(data)
    if data[:2] == b"\xff\xd8":
        size = _jpeg_sof_size(data)
        if size is None and simplejpeg is not None:
            # libjpeg skips bytes our walk stops at: ask it, so that what it would
            # decode has always had its size read (`decode_frame(checked=True)`).
            try:
                size = simplejpeg.decode_jpeg_header(data)[:2]
            except (ValueError, RuntimeError):
                return None
        return size
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as img:
            w, h = img.size
            return h, w
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None


_SCALE = np.float32(1.0 / 255.0)
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_PROCESS_MIN_FRAMES = 1500  # below this a process pool's start-up costs more than it saves
_LARGE_FRAME = 32 * 1024  # bytes; above, decoding time is in the codec (GIL released)


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], bit-identical to ``convert_image_dtype``
    (a float32 cast times float32(1/255))."""
    out = pixels.astype(np.float32)
    out *= _SCALE
    return out


def frame_channels(data: bytes) -> int:
    """The channel count TensorFlow's ``decode_image(channels=0)`` would give,
    reduced to 1 (gray) or 3 (colour): reads only the image header."""
    with Image.open(io.BytesIO(data), formats=FORMATS) as img:
        return 1 if img.mode in _GRAY_MODES else 3


def _decode_jpeg_like_tf(data: bytes, channels: int, checked: bool = False) -> np.ndarray | None:
    """JPEG decoded as TensorFlow's ``decode_image`` does it: libjpeg-turbo with
    the fast integer IDCT (TF's default ``INTEGER_FAST``) and fancy upsampling.
    None when simplejpeg is missing or cannot take this image (Pillow then).
    The pixel cap is checked on the header first (`FrameTooLarge`), unless the
    caller ``checked`` it already (`dataset.check_frames`)."""
    if simplejpeg is None or channels not in (1, 3) or data[:2] != b"\xff\xd8":
        return None
    if not checked:
        size = _jpeg_sof_size(data)
        if size is None:
            try:
                size = simplejpeg.decode_jpeg_header(data)[:2]
            except (ValueError, RuntimeError):
                return None
        check_pixels(*size)
    try:
        return simplejpeg.decode_jpeg(
            data, colorspace="GRAY" if channels == 1 else "RGB", fastdct=True, fastupsample=False
        )
    except (ValueError, RuntimeError):
        return None


def _libpng_gray(rgb: np.ndarray) -> np.ndarray:
    """Colour -> gray as libpng's ``png_set_rgb_to_gray(1, 0.299, 0.587)`` (which
    TensorFlow's ``decode_png(channels=1)`` calls): 15-bit fixed-point weights,
    truncated, and gray pixels kept as they are. Pillow's ``convert("L")``
    rounds, and differs by one level on a few pixels."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    gray = ((9797 * r + 19234 * g + 3737 * b) >> 15).astype(np.uint8)
    same = (r == g) & (g == b)
    gray[same] = rgb[..., 0][same]
    return gray[..., None]


def shrunk_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) scaled, aspect kept, so that neither side exceeds ``max_side``."""
    if max_side is None or max(h, w) <= max_side:
        return h, w
    r = max_side / max(h, w)
    return max(1, round(h * r)), max(1, round(w * r))


def shrink(img: np.ndarray, max_side: int | None) -> np.ndarray:
    """uint8 (H, W, C) -> at most ``max_side`` per side, by area averaging (BOX)."""
    h, w = img.shape[:2]
    th, tw = shrunk_size(h, w, max_side)
    if (th, tw) == (h, w):
        return img
    planes = [img[:, :, c] for c in range(img.shape[2])]
    out = [
        np.asarray(Image.fromarray(np.ascontiguousarray(p)).resize((tw, th), Image.BOX))
        for p in planes
    ]
    return np.stack(out, axis=2)


def shrink_float(x: np.ndarray, max_side: int | None) -> np.ndarray:
    """float32 (T, H, W, C) -> at most ``max_side`` per side, each plane by area
    averaging (BOX), as `shrink` does for decoded frames."""
    t, h, w, c = x.shape
    th, tw = shrunk_size(h, w, max_side)
    if (th, tw) == (h, w):
        return x
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(x[i, :, :, j], np.float32)).resize(
                (tw, th), Image.BOX
            )
        )
        for i in range(t)
        for j in range(c)
    ]
    return np.stack(planes).reshape(t, c, th, tw).transpose(0, 2, 3, 1).astype(np.float32)


def _decode_jpeg_scaled(data: bytes, channels: int, max_side: int) -> np.ndarray | None:
    """A JPEG decoded by libjpeg at the smallest DCT scale still at least the shrunk
    size; None where `_decode_jpeg_like_tf` would give None."""
    if simplejpeg is None or channels not in (1, 3) or data[:2] != b"\xff\xd8":
        return None
    try:
        h, w = simplejpeg.decode_jpeg_header(data)[:2]
    except (ValueError, RuntimeError):
        return None
    check_pixels(h, w)
    try:
        th, tw = shrunk_size(h, w, max_side)
        return simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if channels == 1 else "RGB",
            fastdct=True,
            min_height=th,
            min_width=tw,
        )
    except (ValueError, RuntimeError):
        return None


def decode_frame(
    data: bytes, channels: int, max_side: int | None = None, checked: bool = False
) -> np.ndarray:
    """One encoded image (PNG, JPEG, GIF, BMP ...) -> uint8 array (H, W, channels),
    shrunk to at most ``max_side`` per side when given (module doc).

    Raises ``ValueError`` when the bytes are not an image that can be decoded, and
    `FrameTooLarge` (a ValueError) when its header gives more pixels than
    AUTODL_MAX_FRAME_PIXELS: that is checked before any pixel is decoded, whichever
    decoder (simplejpeg, Pillow) takes the frame. ``checked``: the caller has read
    the header through `frame_size` and applied the cap (saves a header parse).
    """
    if max_side is not None:
        arr = _decode_jpeg_scaled(data, channels, max_side)
        return shrink(arr if arr is not None else decode_frame(data, channels), max_side)
    arr = _decode_jpeg_like_tf(data, channels, checked)
    if arr is not None:
        return arr
    if not checked:
        # A PNG's or JPEG's size from its header, before Pillow sees it: its own bomb
        # check would warn (DecompressionBombWarning) or refuse in its words first.
        size = _png.header_size(data) if data[:8] == _png.SIGNATURE else None
        if size is None and data[:2] == b"\xff\xd8":
            size = _jpeg_sof_size(data)
        if size is not None:
            check_pixels(*size)
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
        check_pixels(img.size[1], img.size[0])
        if img.format == "JPEG" and channels == 1 and img.mode != "L":
            img.draft("L", img.size)  # libjpeg's own gray output, as TF
        if img.mode in ("I", "I;16", "I;16B", "I;16L") and channels == 1:
            arr = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
            return arr[:, :, None]
        mode = _MODES.get(channels)
        if mode is None:
            raise ValueError(f"cannot decode to {channels} channels (1, 3 or 4 supported)")
        if channels == 1 and img.mode not in _GRAY_MODES:
            return _libpng_gray(np.asarray(img.convert("RGB"), dtype=np.uint8))
        if img.mode != mode:
            img = img.convert(mode)
        arr = np.asarray(img, dtype=np.uint8)
    except UnidentifiedImageError:
        # Pillow's message names its in-memory buffer ("<_io.BytesIO object at 0x…>"),
        # which means nothing to the user; the caller names the record
        raise ValueError(f"not a decodable image (not {', '.join(FORMATS)}, or damaged)") from None
    except (OSError, SyntaxError, Image.DecompressionBombError, EOFError) as e:
        raise ValueError(f"not a decodable image ({e})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _with_channels(img: np.ndarray, channels: int) -> np.ndarray | None:
    """Samples (..., H, W, 1|3|4) -> the channel count asked for, as the Pillow path
    converts them (gray replicated, alpha 255 added or dropped, colour to gray
    with libpng's weights); None for a count only Pillow's path reports on."""
    s = img.shape[-1]
    if s == channels:
        return img
    if channels == 1:
        return _libpng_gray(img[..., :3])
    if channels not in (3, 4):
        return None
    rgb = np.repeat(img, 3, axis=-1) if s == 1 else img[..., :3]
    if channels == 3:
        return rgb
    return np.concatenate([rgb, np.full(rgb.shape[:-1] + (1,), 255, np.uint8)], axis=-1)


def _decode_png_stack(
    frames: Sequence[bytes], channels: int, workers: int = 1
) -> list[np.ndarray | None]:
    """Plain PNG frames decoded together (see `_png`); None where ``Image.open`` must."""
    return [
        None if img is None else _with_channels(img, channels)
        for img in _png.decode_many(frames, workers)
    ]


def decode_block(
    frames: Sequence[bytes],
    channels: int,
    workers: int | None = None,
    out: np.ndarray | None = None,
):
    """Frames that are all plain PNGs of one size as one float32 array (n, H, W,
    channels), the values `decode_frames` + `to_float` give, or None (then use those).

    Decoding, channel conversion and the float conversion run in ``workers`` threads,
    each on its share of the frames, writing into the one output array (no per-frame
    arrays, no stacking, no second copy); all of it runs without the GIL but the
    ~5 us per frame of chunk walking (`_png.decode_stack`). ``out``: a float32 array
    (n, H, W, channels) to write into (returned), when the frames have that size.
    """
    workers = default_workers() if workers is None else workers
    first = _png.chunks(frames[0]) if frames else None
    if first is None:
        return None
    h, w, s = first[0]
    if _with_channels(np.zeros((1, 1, s), np.uint8), channels) is None:
        return None
    shape = (len(frames), h, w, channels)
    if out is None:
        out = np.empty(shape, np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        return None
    target = out

    def put(lo: int, hi: int, pixels: np.ndarray) -> None:
        np.multiply(_with_channels(pixels, channels), _SCALE, out=target[lo:hi], dtype=np.float32)

    return target if _png.decode_stack(frames, workers, put) is not None else None


def _decode_chunk(
    args: tuple[Sequence[bytes], int, int | None, bool],
) -> list[np.ndarray | ValueError]:
    frames, channels, max_side, checked = args
    out: list[np.ndarray | ValueError] = []
    for f in frames:
        try:
            out.append(decode_frame(f, channels, max_side, checked))
        except ValueError as e:
            out.append(e)
    return out


def default_workers() -> int:
    """Decoding workers: every core, at least 1 (both cores on a 2-core box)."""
    return max(1, os.cpu_count() or 1)


def _process_pool(workers: int) -> ProcessPoolExecutor | None:
    """A fork-based pool, only where forking is safe and cheap: Linux-style
    fork available and no other thread alive that could hold a lock."""
    if "fork" not in mp.get_all_start_methods() or threading.active_count() > 1:
        return None
    try:
        return ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"))
    except (OSError, ValueError):
        return None


def decode_frames(
    frames: Sequence[bytes],
    channels: int,
    workers: int | None = None,
    max_side: int | None = None,
    checked: bool = False,
) -> list[np.ndarray | ValueError]:
    """Decode many frames, in order; a frame that fails gives its ValueError.
    ``max_side``: frames are shrunk to fit (module doc). ``checked``: as `decode_frame`.

    Where the time goes decides how (measured on the reference data):

    - many small frames through Pillow (digits, video frames: ~45 us each,
      mostly Python, which holds the GIL): worker *processes*, ~1.7x on 2 cores
      for 10k frames; small JPEGs through simplejpeg (~5 us): this thread;
    - large frames (photos: the codec runs with the GIL released): threads;
    - a few hundred frames or fewer: this thread (a pool costs more than it saves);
    - plain PNG frames: walked by `_png` and decoded by Pillow's PNG decoder without
      ``Image.open``'s Python (~15x less Python per frame), in threads (the decoder
      runs without the GIL), bit for bit the same.
    """
    workers = default_workers() if workers is None else workers
    n = len(frames)
    if n >= 8 and frames[0][:8] == _png.SIGNATURE:
        fast = _decode_png_stack(frames, channels, workers)
        rest = [i for i, img in enumerate(fast) if img is None]
        if len(rest) < n:
            slow = (
                decode_frames([frames[i] for i in rest], channels, workers, max_side, checked)
                if rest
                else []
            )
            for i, img in zip(rest, slow, strict=True):
                fast[i] = img
            if max_side is not None:
                fast = [p if isinstance(p, ValueError) else shrink(p, max_side) for p in fast]
            return fast
    if workers <= 1 or n < 8:
        return _decode_chunk((frames, channels, max_side, checked))
    mean_size = sum(len(f) for f in frames) / n
    # simplejpeg decodes a small JPEG in ~5 us: no pool can pay for itself.
    quick = simplejpeg is not None and frames[0][:2] == b"\xff\xd8"
    pool: ProcessPoolExecutor | ThreadPoolExecutor | None = None
    if n >= _PROCESS_MIN_FRAMES and mean_size < _LARGE_FRAME and not quick:
        pool = _process_pool(workers)
    if pool is None and mean_size >= _LARGE_FRAME:
        pool = ThreadPoolExecutor(workers)
    if pool is None:
        return _decode_chunk((frames, channels, max_side, checked))
    size = max(1, -(-n // (workers * 4)))
    chunks = [(frames[i : i + size], channels, max_side, checked) for i in range(0, n, size)]
    with pool:
        return [img for part in pool.map(_decode_chunk, chunks) for img in part]


def encode_frame(pixels: np.ndarray, image_format: str = "PNG", quality: int = 95) -> bytes:
    """Encode one frame (H, W, C) or (H, W): uint8, or floats in [0, 1] scaled by 255.

    C = 1 gives an 8-bit gray image, C = 3 RGB.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    img = Image.fromarray(arr)
    buf = io.BytesIO()
    fmt = image_format.upper()
    if fmt in ("JPEG", "JPG"):
        img.save(buf, format="JPEG", quality=quality)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()

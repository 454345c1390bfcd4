"""Images: one COMPRESSED frame per record, as the official image tool stores them.

A JPEG or PNG that needs no change is stored byte for byte (no loss, no
time). Everything else is re-encoded: GIF (its first frame: TensorFlow's
``decode_image`` would give a 4-D tensor for a GIF and break the reader), BMP,
WebP and TIFF as PNG; CMYK JPEGs and 16-bit PNGs (which TensorFlow decodes
differently from most tools) as 8-bit JPEG / PNG. ``--max-size N`` shrinks
images whose longer side is above N pixels (aspect ratio kept, Lanczos), JPEG
sources staying JPEG (quality 95).

Each file is decoded in full before it is accepted, so a truncated or corrupt
image is reported by name here and not found by the engine later.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from autodl.formats.convert._items import BadInput, Decoded

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
#: (format, mode) stored as they are: what TensorFlow's decode_image reads as 8-bit L/RGB(A).
_KEEP = {"JPEG": {"L", "RGB"}, "PNG": {"L", "LA", "RGB", "RGBA", "P"}}
_GRAY = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
JPEG_QUALITY = 95


def _to_8bit(img: Image.Image) -> Image.Image:
    """An image as 8-bit L or RGB (alpha dropped, as TensorFlow drops it)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit gray: keep the high byte, as TensorFlow's uint8 decode does
        arr = (np.asarray(img, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(arr, "L")
    return img.convert("L" if img.mode in _GRAY else "RGB")


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue()


def load(data: bytes, max_size: int | None) -> tuple[bytes, tuple[int, int, int], str | None]:
    """Encoded image -> (bytes to store, (H, W, C), note). Raises `BadInput`."""
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format
        w, h = img.size
        shrink = max_size is not None and max(w, h) > max_size
        if shrink and fmt == "JPEG":
            img.draft(img.mode, (max_size, max_size))  # fast DCT-domain downscale first
        img.load()  # a full decode: truncated and corrupt files fail here
    except UnidentifiedImageError:
        # Pillow's own message names its in-memory buffer ("<_io.BytesIO object at …>"),
        # which means nothing to the user; the caller names the file.
        raise BadInput(
            "not a readable image (not JPEG, PNG, BMP, GIF, WebP or TIFF, or damaged)"
        ) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadInput(f"not a readable image ({e})") from None
    channels = 1 if img.mode in _GRAY else 3
    note = "animated GIF: first frame kept" if getattr(img, "n_frames", 1) > 1 else None
    if not shrink and fmt in _KEEP and img.mode in _KEEP[fmt]:
        return data, (h, w, channels), note
    out = _to_8bit(img)
    if shrink:
        assert max_size is not None
        out.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    w, h = out.size
    return _encode(out, "JPEG" if fmt == "JPEG" else "PNG"), (h, w, channels), note


def decode(path: Path, max_size: int | None) -> Decoded:
    """One image file -> a record of one frame."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot be read ({e.strerror})") from None
    frame, (h, w, c), note = load(data, max_size)
    return Decoded([frame], (1, h, w, c), note)

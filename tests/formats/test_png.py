"""The batch PNG decoder (`autodl.formats._png`) gives Pillow's pixels, bit for bit."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from autodl.formats import _png, images
from tests.conftest import needs_shared_data
from tests.formats.conftest import loaded

CTYPE = {1: 0, 3: 2, 4: 6}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def encode_png(img: np.ndarray, filters: list[int], extra: bytes = b"") -> bytes:
    """A PNG written pixel by pixel with the given filter type on each row
    (an independent, deliberately plain encoder)."""
    h, w, s = img.shape
    flat = img.reshape(h, w * s).astype(int)
    out = bytearray()
    for r in range(h):
        t = filters[r]
        out.append(t)
        for x in range(w * s):
            a = flat[r, x - s] if x >= s else 0
            b = flat[r - 1, x] if r else 0
            c = flat[r - 1, x - s] if r and x >= s else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][t]
            out.append((flat[r, x] - pred) % 256)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, CTYPE[s], 0, 0, 0)
    return (
        _png.SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + extra
        + _chunk(b"IDAT", zlib.compress(bytes(out)))
        + _chunk(b"IEND", b"")
    )


def _frames(shape, n, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    imgs[: n // 2] //= 17  # low-contrast frames too: small differences between neighbours
    return imgs, [encode_png(im, list(rng.integers(0, 5, shape[0]))) for im in imgs]


@pytest.mark.parametrize("shape", [(8, 8, 1), (5, 7, 3), (6, 3, 4), (1, 1, 1)])
def test_every_filter_type_decodes_to_the_pixels(shape):
    imgs, frames = _frames(shape, 60)
    decoded = _png.decode_many(frames)
    assert all(d is not None for d in decoded)
    np.testing.assert_array_equal(np.stack(decoded), imgs)


@pytest.mark.parametrize("shape", [(8, 8, 1), (4, 9, 3), (6, 5, 4)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_batch_equals_pillow_for_every_channel_count(shape, channels):
    _, frames = _frames(shape, 40, seed=1)
    assert all(d is not None for d in _png.decode_many(frames))
    batch = images.decode_frames(frames, channels, workers=1)
    one_by_one = [images.decode_frame(f, channels) for f in frames]  # Pillow's path
    for got, want in zip(batch, one_by_one, strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def _pillow_png(img: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img, **kw).save(buf, format="PNG")
    return buf.getvalue()


def test_frames_it_does_not_take_go_to_pillow():
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
    plain = encode_png(gray, [4] * 8)
    pal_img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).quantize(16)
    buf = io.BytesIO()
    pal_img.save(buf, format="PNG")
    palette = buf.getvalue()
    sixteen = _pillow_png(rng.integers(0, 65535, (8, 8), dtype=np.uint16))
    transparent = encode_png(gray, [0] * 8, extra=_chunk(b"tRNS", b"\x00\x05"))
    bad_crc = plain[:-5] + bytes([plain[-5] ^ 1]) + plain[-4:]
    truncated = plain[:-12]
    for frame in (palette, sixteen, transparent, bad_crc, truncated):
        assert _png.parse(frame) is None
    frames = [plain] * 20 + [palette, sixteen, transparent, b"\x89PNG\r\n\x1a\n broken"]
    out = images.decode_frames(frames, 1, workers=1)
    for frame, got in zip(frames[:-1], out[:-1], strict=True):
        np.testing.assert_array_equal(got, images.decode_frame(frame, 1))
    assert isinstance(out[-1], ValueError)


def test_few_large_frames_are_left_to_pillow():
    _, frames = _frames((64, 64, 3), 3)
    assert _png.decode_many(frames) == [None, None, None]


@needs_shared_data
@pytest.mark.parametrize("name,channels", [("handdigits", 1), ("miniciao", 3)])
def test_every_reference_png_frame_as_pillow(name, channels):
    ds, _ = loaded(name)
    frames = [f for rec in ds.train.load(decode=False).x for f in rec]
    frames += [f for rec in ds.test.load(decode=False).x for f in rec]
    batch = images.decode_frames(frames, channels, workers=1)
    for frame, got in zip(frames, batch, strict=True):
        np.testing.assert_array_equal(got, images.decode_frame(frame, channels))
    if name == "handdigits":  # 1597 8x8 frames: taken by the batch decoder
        assert all(d is not None for d in _png.decode_many(frames))

"""The batch PNG decoder (`autodl.formats._png`) gives Pillow's pixels, bit for bit, on
both of its paths (Pillow's decoder object in threads; zlib and numpy where Pillow
lacks it), and `images.decode_block` the floats of `decode_frames` + `to_float`."""

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


@pytest.fixture(params=["pillow", "numpy"])
def path(request, monkeypatch):
    """Both ways `_png.decode_many` decodes: Pillow's decoder object, or (where Pillow
    lacks it) zlib and the numpy unfiltering."""
    if request.param == "numpy":
        monkeypatch.setattr(_png, "PILLOW", None)
    else:
        assert _png.PILLOW is not None
    return request.param


@pytest.mark.parametrize("shape", [(8, 8, 1), (5, 7, 3), (6, 3, 4), (1, 1, 1)])
def test_every_filter_type_decodes_to_the_pixels(shape, path):
    imgs, frames = _frames(shape, 60)
    decoded = _png.decode_many(frames)
    assert all(d is not None for d in decoded)
    np.testing.assert_array_equal(np.stack(decoded), imgs)


@pytest.mark.parametrize("shape", [(8, 8, 1), (4, 9, 3), (6, 5, 4)])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_batch_equals_pillow_for_every_channel_count(shape, channels, path):
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


def test_frames_it_does_not_take_go_to_pillow(path):
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


def test_few_large_frames_are_left_to_pillow_on_the_numpy_path():
    _, frames = _frames((64, 64, 3), 3)
    assert _png.unfilter_many(frames) == [None, None, None]


def test_large_frames_through_pillows_decoder_object():
    imgs, frames = _frames((64, 64, 3), 3)
    frames.append(_pillow_png(np.zeros((300, 200, 4), np.uint8) + 7))
    decoded = _png.decode_many(frames)
    np.testing.assert_array_equal(np.stack(decoded[:3]), imgs)
    np.testing.assert_array_equal(decoded[3], np.asarray(Image.open(io.BytesIO(frames[3]))))


def test_no_more_than_the_announced_rows_are_inflated(path):
    # The rows, then a megabyte of zeros in the same stream, cut before its end:
    # a decoder that inflated past the last row would find the stream short; both
    # paths stop at the last row (as Pillow's Image.open does).
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    rows = b"".join(b"\x00" + img[r].tobytes() for r in range(6))
    stream = zlib.compress(rows + bytes(1 << 20))[:-20]
    ihdr = struct.pack(">IIBBBBB", 5, 6, 8, 2, 0, 0, 0)
    frame = _png.SIGNATURE + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", stream)
    frame += _chunk(b"IEND", b"")
    if path == "numpy":
        assert _png.parse(frame) == ((6, 5, 3), rows)
    (got,) = _png.decode_many([frame] * 40)[:1]
    np.testing.assert_array_equal(got, img)
    np.testing.assert_array_equal(images.decode_frame(frame, 3), img)


def test_broken_streams_are_left_to_pillow():
    imgs, frames = _frames((8, 8, 3), 1)
    (h, w, s), stream = _png.chunks(frames[0])
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

    def png(idat: bytes) -> bytes:
        head = _png.SIGNATURE + _chunk(b"IHDR", ihdr)
        return head + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")

    rows = bytearray(zlib.decompress(stream))
    rows[(1 + w * s) * 3] = 9  # a filter type that does not exist
    broken = [png(stream[: len(stream) // 2]), png(zlib.compress(bytes(rows))), png(b"junk")]
    assert _png.decode_many(broken) == [None, None, None]
    assert _png.decode_many(frames + broken)[0] is not None
    for frame in broken:
        with pytest.raises(ValueError):
            images.decode_frame(frame, 3)
    with pytest.raises(ValueError) as e:  # not an image at all: no buffer's address
        images.decode_frame(b"junk" * 10, 3)
    assert "not PNG, JPEG, GIF, BMP, WEBP, or damaged" in str(e.value)
    assert "0x" not in str(e.value) and "BytesIO" not in str(e.value)
    assert images.decode_block(frames + broken[:1], 3, workers=1) is None


def _floats(frames, channels):
    return np.stack([images.to_float(images.decode_frame(f, channels)) for f in frames])


@pytest.mark.parametrize("samples", [1, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_block_equals_pillow_frame_by_frame_in_threads(monkeypatch, samples, channels):
    monkeypatch.setattr(_png, "THREAD_MIN_FRAMES", 4)
    monkeypatch.setattr(_png, "PART_PIXELS", 5 * 7 * 6)  # parts of 6 frames: 7 threads' work
    _, frames = _frames((5, 7, samples), 40, seed=samples)
    want = _floats(frames, channels)
    for workers in (1, 3):
        got = images.decode_block(frames, channels, workers)
        assert got.dtype == np.float32 and got.shape == (40, 5, 7, channels)
        np.testing.assert_array_equal(got, want)


def test_block_quick_layout_and_others_give_the_same(monkeypatch):
    # Pillow's PNGs (signature, IHDR, one IDAT, IEND: the quick check) mixed with the
    # same images carrying a text chunk or split into two IDATs (the chunk walk)
    monkeypatch.setattr(_png, "THREAD_MIN_FRAMES", 4)
    rng = np.random.default_rng(7)
    imgs = rng.integers(0, 256, (30, 6, 5, 3), dtype=np.uint8)
    frames = [_pillow_png(im) for im in imgs]
    for i in (3, 11, 29):
        (h, w, s), stream = _png.chunks(frames[i])
        ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
        cut = len(stream) // 2
        frames[i] = (
            _png.SIGNATURE
            + _chunk(b"IHDR", ihdr)
            + _chunk(b"tEXt", b"k\x00v")
            + _chunk(b"IDAT", bytes(stream[:cut]))
            + _chunk(b"IDAT", bytes(stream[cut:]))
            + _chunk(b"IEND", b"")
        )
    for workers in (1, 2):
        np.testing.assert_array_equal(
            images.decode_block(frames, 3, workers), images.to_float(imgs)
        )
    bad = bytearray(frames[5])
    bad[45] ^= 1  # a byte of the IDAT stream: its CRC no longer matches
    assert images.decode_block(frames[:5] + [bytes(bad)] + frames[6:], 3, 2) is None
    with pytest.raises(ValueError):  # and Pillow refuses it
        images.decode_frame(bytes(bad), 3)


def test_block_takes_only_plain_pngs_of_one_size():
    _, frames = _frames((5, 7, 3), 10)
    _, other = _frames((7, 5, 3), 1)
    palette = io.BytesIO()
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).quantize(4).save(palette, format="PNG")
    jpeg = images.encode_frame(np.zeros((5, 7, 3), np.uint8), "JPEG")
    for odd in (other[0], palette.getvalue(), jpeg):
        for at in (0, 5, 10):
            mixed = frames[:at] + [odd] + frames[at:]
            assert images.decode_block(mixed, 3, workers=2) is None
    assert images.decode_block([], 3) is None


def test_the_reader_gives_pillows_floats_frame_by_frame(tmp_path, monkeypatch):
    from autodl.formats.dataset import open_dataset
    from autodl.formats.types import DatasetSpec
    from autodl.formats.writer import DatasetWriter

    monkeypatch.setattr(_png, "THREAD_MIN_FRAMES", 8)
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (60, 2, 9, 11, 3), dtype=np.uint8)
    x[:30] //= 13
    labels = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 60)]
    spec = DatasetSpec("png", (2, 9, 11, 3), 3, "COMPRESSED", ["a", "b", "c"])
    root = DatasetWriter(tmp_path, spec).write((x, labels), (x[:4], labels[:4]))
    split = open_dataset(root).train
    with monkeypatch.context() as m:  # the block path, not the per-frame list
        m.setattr(images, "decode_frames", None)
        loaded_x = split.load().x
    one_by_one = np.stack([e.x for e in split])  # Image.open, a frame at a time
    assert isinstance(loaded_x, np.ndarray) and loaded_x.dtype == np.float32
    np.testing.assert_array_equal(loaded_x, one_by_one)
    np.testing.assert_array_equal(loaded_x, images.to_float(x))
    # several chunks, decoded into one preallocated array; and the first rows only
    from autodl.formats import _chunks

    monkeypatch.setattr(_chunks, "FIRST_BYTES", 2000)
    for limit in (None, 1, 7, 59, 60, 100):
        got = split.load(limit=limit)
        want = one_by_one[:limit]
        assert isinstance(got.x, np.ndarray) and got.x.base is None
        np.testing.assert_array_equal(got.x, want)
        assert got.ids.tolist() == list(range(4, 4 + len(want)))  # train ids follow test's
    split.bulk = False  # the record-at-a-time reader decodes its frames the same way
    np.testing.assert_array_equal(split.load().x, one_by_one)


@needs_shared_data
@pytest.mark.parametrize("name,channels", [("handdigits", 1), ("miniciao", 3)])
def test_every_reference_png_frame_as_pillow(name, channels, path):
    ds, arrays = loaded(name)
    frames = [f for rec in ds.train.load(decode=False).x for f in rec]
    frames += [f for rec in ds.test.load(decode=False).x for f in rec]
    batch = images.decode_frames(frames, channels, workers=2)
    for frame, got in zip(frames, batch, strict=True):
        np.testing.assert_array_equal(got, images.decode_frame(frame, channels))
    if name == "handdigits":  # 1597 8x8 frames: taken by the batch decoder
        assert all(d is not None for d in _png.decode_many(frames))
    n = len(arrays["train"].x)
    block = images.decode_block(frames, channels, workers=2)
    if block is not None:  # frames of one size: as the reader's arrays
        np.testing.assert_array_equal(block[:n], arrays["train"].x.reshape(block[:n].shape))

"""Every reader is bounded: hostile datasets of a few kilobytes are refused by a cap,
before the memory they claim is allocated, with an error naming file, record, limit
and the setting that raises it (issue 12)."""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats import _records, _wire, archive, images, limits, samples, solution
from autodl.formats.check import check_dataset
from autodl.formats.dataset import open_dataset, read_solution
from autodl.formats.limits import LimitExceeded
from autodl.formats.spec import parse_metadata
from autodl.formats.tfrecord import TFRecordWriter, read_records
from autodl.settings import Settings
from tests.formats import hostile

ROOT = Path(__file__).resolve().parents[2]


def _peak(fn) -> tuple[int, object]:
    """(peak bytes traced while fn ran, what it raised or returned)."""
    tracemalloc.start()
    try:
        out = fn()
    except Exception as e:
        out = e
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak, out


def _bounded(code: str, memory: int = 1 << 30, env: dict | None = None) -> dict:
    """Run ``code`` in a child whose address space is capped; its last stdout line, eval'd."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        preexec_fn=cap,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return eval(out.stdout.strip().splitlines()[-1])


_CHECK = """
import resource, sys, time
from autodl.formats.check import check_dataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
r = check_dataset({path!r})
grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
print(repr({{"seconds": time.perf_counter() - t, "grew_kb": grew,
      "problems": [(p.file, p.record, p.field, p.message, p.expected) for p in r.problems]}}))
"""


def _problem(problems, words: str):
    found = [p for p in problems if words in p[3]]
    assert found, problems
    return found[0]


# ---------------------------------------------------------------- settings


def test_limits_come_from_settings_and_using_narrows_them():
    s = Settings.from_env({"AUTODL_MAX_CLASSES": "7", "AUTODL_MAX_FRAMES": "9"})
    caps = limits.Limits.from_settings(s)
    assert (caps.max_classes, caps.max_frames) == (7, 9)
    assert limits.Limits().record_bytes == min(Settings.max_record_bytes, 1 << 31)
    assert limits.Limits(max_record_bytes=1 << 40).record_bytes == 1 << 31  # TFRecord's bound
    before = limits.current()
    with limits.using(caps, max_classes=3) as inner:
        assert limits.current() is inner and inner.max_classes == 3 and inner.max_frames == 9
    assert limits.current() == before


# ---------------------------------------------------------------- classes


@pytest.mark.parametrize("label_map", [True, False], ids=["label-map", "no-label-map"])
def test_two_billion_classes_are_refused_at_once_in_little_memory(tmp_path, label_map):
    # Before: spec.py built 2e9 label names (15 GB, 50 s), or _scan.py and check.py
    # sized the label sums by output_dim (a 15 GB array). Here in a child capped at 1 GB.
    path = hostile.many_classes(tmp_path, label_map=label_map)
    out = _bounded(_CHECK.format(path=str(path)))
    assert out["seconds"] < 5 and out["grew_kb"] < 100_000
    file, record, fld, message, expected = _problem(out["problems"], "AUTODL_MAX_CLASSES")
    assert (file, fld) == ("train/metadata.textproto", "output_dim")
    assert (
        message
        == "output_dim 2,000,000,000 is larger than the 10,000 allowed (AUTODL_MAX_CLASSES)."
    )
    assert expected == "at most 10,000 (AUTODL_MAX_CLASSES)"
    with pytest.raises(LimitExceeded) as e:
        open_dataset(path)
    assert e.value.setting == "AUTODL_MAX_CLASSES" and e.value.field == "output_dim"


def test_classes_cap_is_a_setting():
    text = "output_dim: 12\nmatrix_spec { col_count: 1 row_count: 1 }\n"
    assert parse_metadata(text).output_dim == 12
    with limits.using(max_classes=11), pytest.raises(LimitExceeded, match="MAX_CLASSES"):
        parse_metadata(text)


def test_metadata_size_cap(tmp_path):
    path = samples.make_tabular(tmp_path, n_train=4, n_test=2, unlabelled=False)
    with limits.using(max_metadata_bytes=50):
        report = check_dataset(path)
        with pytest.raises(LimitExceeded, match="AUTODL_MAX_METADATA_BYTES"):
            open_dataset(path)
    p = next(p for p in report.problems if "AUTODL_MAX_METADATA_BYTES" in p.message)
    assert p.file == "train/metadata.textproto" and "50 bytes allowed" in p.message


# ---------------------------------------------------------------- records


def test_records_per_split_cap(tmp_path):
    path = samples.make_tabular(tmp_path, n_train=8, n_test=2, unlabelled=False)
    with limits.using(max_records=5):
        report = check_dataset(path)
        ds = open_dataset(path)
        with pytest.raises(LimitExceeded, match="more than the 5 records allowed") as e:
            ds.train.load()
        with pytest.raises(LimitExceeded):
            len(ds.train)
        assert ds.test.load().x.shape[0] == 2
    assert e.value.setting == "AUTODL_MAX_RECORDS"
    assert any(
        "AUTODL_MAX_RECORDS" in p.message and p.file.startswith("train/") for p in report.errors
    )


@pytest.mark.parametrize("verify", [True, False], ids=["crc-verified", "crc-not-verified"])
def test_a_record_header_claiming_2_40_bytes_is_refused_before_reading(tmp_path, verify):
    # Before: with CRCs verified the 2 GiB guard was skipped, and a zip member whose
    # header claims 2**40 bytes was read whole into memory (64 MB of zeros here).
    data = hostile.lying_record_header(1 << 40, then=64 << 20)
    z = hostile.zip_with(tmp_path / "x.zip", {"sample-0": data})
    with zipfile.ZipFile(z) as zf:
        member = zipfile.Path(zf, "sample-0")
        peak, out = _peak(lambda: list(read_records(member, verify=verify)))
    assert isinstance(out, LimitExceeded), out
    assert "record 0: a record of 1,099,511,627,776 bytes (its length field)" in out.message
    assert "(AUTODL_MAX_RECORD_BYTES)" in out.message and out.record == 0
    assert peak < 4 << 20


def test_record_bytes_cap_is_a_setting(tmp_path):
    with TFRecordWriter(tmp_path / "sample-0") as w:
        w.write(b"a" * 100)
        w.write(b"b" * 3000)
    assert len(list(read_records(tmp_path / "sample-0"))) == 2
    with limits.using(max_record_bytes=1000), pytest.raises(LimitExceeded) as e:
        list(read_records(tmp_path / "sample-0"))
    assert e.value.record == 1 and "1,000 bytes allowed" in e.value.message


# ---------------------------------------------------------------- frames


def _frames_record(n: int, pad: int = 0) -> bytes:
    return hostile.image_record(0, [hostile.blank_png(4)] * n + [b"x" * pad] * bool(pad))


@pytest.mark.parametrize("decoder", ["pb", "wire"])
def test_frames_per_record_cap(decoder):
    rec = _frames_record(11)
    assert len(_records.decode_record(rec, "COMPRESSED", decoder).frames) == 11
    with limits.using(max_frames=10), pytest.raises(_records.RecordError) as e:
        _records.decode_record(rec, "COMPRESSED", decoder)
    assert e.value.cap == "max_frames"
    assert "AUTODL_MAX_FRAMES" in e.value.error("train/x", 3).message


def test_the_wire_decoder_stops_counting_steps_at_the_cap():
    # A 2 MB feature list of a million empty steps: refused while walking it, without
    # a Python object per step.
    steps = b"\x0a\x00" * 1_000_000
    rec = _wire.encode_sequence_example({}, {"0_dense_input": steps})
    with limits.using(max_frames=1000):
        peak, out = _peak(lambda: _records.decode_record(rec, "DENSE", "wire"))
    assert isinstance(out, _records.RecordError) and out.cap == "max_frames"
    assert peak < 1 << 20


def test_frames_cap_through_the_reader_and_the_check(tmp_path):
    path = samples.make_video(tmp_path, n_train=3, n_test=2, unlabelled=False)
    frames = open_dataset(path).spec.shape[0]
    with limits.using(max_frames=frames - 1):
        report = check_dataset(path)
        with pytest.raises(LimitExceeded, match=r"record 0: .*AUTODL_MAX_FRAMES"):
            open_dataset(path).train.load()
    assert any(p.record == 0 and "AUTODL_MAX_FRAMES" in p.message for p in report.errors)


# ---------------------------------------------------------------- pixels


def test_png_bomb_is_refused_from_its_header_before_inflating():
    # 9000 x 9000 zeros: 80 KB of PNG, 81 MB of pixels (and 324 MB as float32).
    data = hostile.blank_png(9000)
    assert images.frame_size(data) == (9000, 9000)
    t = time.perf_counter()
    peak, out = _peak(lambda: images.decode_frame(data, 1))
    assert isinstance(out, images.FrameTooLarge) and "9000 x 9000 pixels" in str(out)
    assert peak < 2 << 20 and time.perf_counter() - t < 1
    peak, out = _peak(lambda: images.decode_frames([data] * 8, 1, workers=1))
    assert all(isinstance(x, images.FrameTooLarge) for x in out) and peak < 4 << 20


@pytest.mark.parametrize("side", [9000, 12000, 14000])
def test_a_frame_over_the_cap_says_the_cap_and_pillow_never_warns(side):
    # Stranger 16, item 4: "a frame does not decode (a frame of 9000 x 9000 pixels)", and
    # from 89 M pixels Pillow's DecompressionBombWarning on stderr (from 179 M, its own
    # refusal in its words). The header says the size: refused before Pillow opens it.
    import warnings

    png = hostile.png_header_only(side, side)
    jpeg = images.encode_frame(np.zeros((8, 8), np.uint8), "JPEG")
    sof = jpeg.index(b"\xff\xc0")
    jpeg = jpeg[: sof + 5] + np.array([side, side], ">u2").tobytes() + jpeg[sof + 9 :]
    for data in (png, jpeg):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(images.FrameTooLarge) as e:
                images.decode_frame(data, 1)
        assert str(e.value) == (
            f"a frame of {side} x {side} pixels is over the limit of 25,000,000 pixels "
            "(AUTODL_MAX_FRAME_PIXELS)"
        )
        assert e.value.what == f"a frame of {side} x {side} pixels"
        assert [w for w in seen if issubclass(w.category, Warning)] == []


def test_png_inflate_is_bounded_by_the_header():
    # A 100 x 100 header over an IDAT that inflates to 64 MB: only the rows the header
    # announces are inflated (before: zlib.decompress of all 64 MB).
    data = hostile.inflate_bomb_png(100, 100, 64 << 20)
    from autodl.formats import _png

    peak, parsed = _peak(lambda: _png.parse(data))
    assert parsed is not None and parsed[0] == (100, 100, 1) and len(parsed[1]) == 100 * 101
    assert peak < 1 << 20


@pytest.mark.parametrize("decoder", ["simplejpeg", "Pillow"])
def test_jpeg_pixel_cap_on_both_decoders(monkeypatch, decoder):
    data = images.encode_frame(np.full((30, 40, 3), 128, np.uint8), "JPEG")
    if decoder == "Pillow":
        monkeypatch.setattr(images, "simplejpeg", None)
    elif images.simplejpeg is None:
        pytest.skip("simplejpeg is not installed")
    assert images.decode_frame(data, 3).shape == (30, 40, 3)
    with limits.using(max_frame_pixels=1000):
        for max_side in (None, 8):
            with pytest.raises(images.FrameTooLarge, match="40 x 30 pixels"):
                images.decode_frame(data, 3, max_side)
        assert images.frame_size(data) == (30, 40)


def test_pixel_cap_through_the_reader_names_file_record_and_setting(tmp_path):
    path = samples.make_image(tmp_path, n_train=3, n_test=2, unlabelled=False, size=12)
    with limits.using(max_frame_pixels=100):
        ds = open_dataset(path)
        for read in (ds.train.load, lambda: next(iter(ds.train))):
            with pytest.raises(LimitExceeded) as e:
                read()
            assert e.value.message == (
                "train/sample-tinyimage-train.tfrecord, record 0: a frame of 12 x 12 pixels is "
                "larger than the 100 allowed (AUTODL_MAX_FRAME_PIXELS)."
            )
    assert ds.train.load().x.shape == (3, 1, 12, 12, 1)  # the default cap lets it through


def test_decoded_record_cap_for_sparse_data_from_the_metadata(tmp_path):
    # SPARSE x is zeros of the metadata's (T, H, W, C): row_count 2**31-1 claims 8 GB.
    path = samples.make_tabular(tmp_path, n_train=4, n_test=2, storage="SPARSE", unlabelled=False)
    for meta in path.rglob("metadata.textproto"):
        meta.write_text(meta.read_text().replace("row_count: 1", "row_count: 2147483647"))
    with pytest.raises(LimitExceeded, match="once decoded is larger .*AUTODL_MAX_DECODED_BYTES"):
        open_dataset(path).train.load()
    assert any("AUTODL_MAX_DECODED_BYTES" in p.message for p in check_dataset(path).errors)


@pytest.mark.slow
def test_validating_forty_9000_pixel_frames_is_bounded(tmp_path):
    # Before: every frame decoded at once during validation, 3.4 GB and 92 s (the
    # child hit a 4 GB cap). Default caps: refused by the header. Cap raised past
    # 81 M pixels: a sample is decoded, one frame at a time.
    path = hostile.huge_frames(tmp_path)
    out = _bounded(_CHECK.format(path=str(path)))
    assert out["seconds"] < 5 and out["grew_kb"] < 50_000
    p = _problem(out["problems"], "AUTODL_MAX_FRAME_PIXELS")
    assert p[:3] == ("train/sample-bigframes-train.tfrecord", 0, "0_compressed")
    out = _bounded(
        _CHECK.format(path=str(path)),
        memory=2 << 30,
        env={"AUTODL_MAX_FRAME_PIXELS": "100000000"},
    )
    assert [p for p in out["problems"] if p[0].startswith("train/sample")] == []
    assert out["grew_kb"] < 700_000  # about two frames (81 MB each, then as float32)


# ---------------------------------------------------------------- solution


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["%d", "%.1f", "%.2f"])  # the byte grid; numpy's text reader
def test_read_solution_parses_with_numpy_in_bounded_memory(tmp_path, fmt):
    rng = np.random.default_rng(0)
    y = (rng.random((200_000, 10)) < 0.3).astype(np.int64)
    path = tmp_path / "x.solution"
    np.savetxt(path, y, fmt=fmt)
    size = path.stat().st_size  # 4-9 MB of text, 2M values (16 MB as float64)
    peak, sol = _peak(lambda: read_solution(path))
    assert isinstance(sol, np.ndarray) and (sol == y).all()
    assert peak < 2 * y.size * 8 + size  # before: Python float lists, ~16x the text
    with limits.using(max_solution_bytes=size - 1), pytest.raises(LimitExceeded) as e:
        read_solution(path)
    assert e.value.setting == "AUTODL_MAX_SOLUTION_BYTES"


def test_zeros_and_ones_read_as_numpy_reads_them():
    """The byte-grid reader of 0/1 tables gives numpy's text reader's array, or leaves
    the text to it (None) where the layout is anything else."""
    rng = np.random.default_rng(4)
    texts = [b"1\n", b"0 1\n1 0", b"0.0 1.0\n1.0 0.0\n", b"0 1\r\n1 0\r\n", b"0\t1\n1\t0\n"]
    for rows, cols, fmt in ((1, 1, "%d"), (300, 7, "%d"), (50, 3, "%.1f"), (9, 40, "%d")):
        buf = io.BytesIO()
        np.savetxt(buf, (rng.random((rows, cols)) < 0.5).astype(int), fmt=fmt)
        texts.append(buf.getvalue())
    odd = [b"0 1\n\n1 0\n", b"0  1\n1 0\n", b"0 1\n1 2\n", b"0.0 1.0\n1.0 0.5\n", b"1e0 0\n",
           b"0 1\r1 0", b"0 1\r1 0\r0 0\n", b"0\r1\n1\r0\n", b"0 1\n1 10\n", b" 0 1\n1 0 \n", b"00 1\n01 0\n", b"1.00 0\n"]  # fmt: skip
    for text in texts:
        fast = solution._zeros_and_ones(text)
        assert fast is not None and fast.dtype == np.float64
        assert np.array_equal(fast, np.loadtxt(io.BytesIO(text), ndmin=2))
        assert np.array_equal(solution.parse_solution(text), fast)
    assert all(solution._zeros_and_ones(text) is None for text in odd)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"1 0\n0 x\n", "line 2 holds something that is not a number: '0 x'"),
        (b"1 0\n\n0 1 1\n", "line 3 has 3 columns but line 1 has 2"),
        (b"\n1 0\n0 1 1\n", "line 3 has 3 columns but line 2 has 2"),
        # what numpy refuses for reasons of its own still names the line:
        (b"1 0\n0 1\r1 0\n", r"line 2 holds a carriage return inside it: '0 1\\r1 0'"),
        ("1 0\n\u0661 0\n".encode(), "line 2 holds something that is not a number"),
        (b"1 0\n0x1 0\n", "line 2 holds something that is not a number: '0x1 0'"),
        (b"1 0\n0 1\n\xa00 1\n", r"line 3 is not UTF-8 text \(byte 0xa0\)"),
        ("1\u00a00\n0 1 1\n".encode(), "line 2 has 3 columns but line 1 has 2"),  # nbsp: a space
    ],
)
def test_read_solution_errors_name_the_line(tmp_path, text, words):
    (tmp_path / "x.solution").write_bytes(text)
    with pytest.raises(FormatError, match=words):
        read_solution(tmp_path / "x.solution")
    (tmp_path / "y.solution").write_bytes(b"\n1 0\n  \n0 1\n")
    assert read_solution(tmp_path / "y.solution").tolist() == [[1, 0], [0, 1]]


# ---------------------------------------------------------------- archives


def _dataset_zip(tmp_path: Path, **kw) -> dict[str, bytes]:
    path = samples.make_tabular(tmp_path / "src", n_train=4, n_test=2, unlabelled=False)
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and ".data" in str(p)
    }


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"../evil": b"x"}, "'..' path"),
        ({"/etc/evil": b"x"}, "absolute path"),
        ({"zeros": bytes(20 << 20)}, "as zip bombs do"),
    ],
)
def test_a_nested_data_zip_goes_through_the_archive_checks(tmp_path, extra, words):
    # Before: an extracted upload holding only x.data.zip was read in place, unchecked.
    members = {**_dataset_zip(tmp_path), **extra}
    folder = hostile.nested_zip_folder(tmp_path / "upload", members)
    with pytest.raises(archive.ArchiveRefused, match=words) as e:
        open_dataset(folder)
    assert e.value.file.endswith("x.data.zip")
    report = check_dataset(folder)
    assert not report.ok and words in report.errors[0].message


def test_a_nested_data_zip_that_passes_the_checks_is_read(tmp_path):
    folder = hostile.nested_zip_folder(tmp_path / "upload", _dataset_zip(tmp_path))
    solution = next((tmp_path / "src").rglob("*.solution"))
    (folder / solution.name).write_bytes(solution.read_bytes())
    assert check_dataset(folder).ok
    with open_dataset(folder) as ds:
        assert len(ds.train.load().ids) == 4


def test_archive_caps_are_settings(tmp_path):
    members = _dataset_zip(tmp_path)
    folder = hostile.nested_zip_folder(tmp_path / "upload", members)
    with limits.using(max_archive_entries=len(members) - 1):
        with pytest.raises(archive.ArchiveRefused, match="entries") as e:
            open_dataset(folder)
    assert e.value.setting == "AUTODL_MAX_ARCHIVE_ENTRIES"
    with limits.using(max_extracted_bytes=100), pytest.raises(archive.ArchiveRefused) as e:
        open_dataset(folder)
    assert e.value.reason == "size"


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA], ids=["bzip2", "lzma"])
def test_bzip2_and_lzma_members_are_refused(tmp_path, method):
    # zipfile decompresses a whole bzip2/lzma chunk per read, with no bound: 2 KB of
    # bzip2 here are 64 MB of zeros (and a few KB more, gigabytes).
    members = {**_dataset_zip(tmp_path), "x/zeros": bytes(64 << 20)}
    folder = tmp_path / "upload"
    folder.mkdir()
    hostile.zip_with(folder / "x.data.zip", members, method)
    peak, out = _peak(lambda: open_dataset(folder))
    assert isinstance(out, archive.ArchiveRefused) and "only deflate" in out.message
    assert peak < 2 << 20


def test_a_damaged_zip_member_is_a_format_error_not_a_crash(tmp_path):
    members = _dataset_zip(tmp_path)
    path = hostile.zip_with(tmp_path / "d.zip", members)
    raw = bytearray(path.read_bytes())
    name = next(n for n in members if "train/sample" in n).encode()
    at = raw.index(name) + len(name) + 40  # inside that member's deflate stream
    raw[at : at + 8] = b"\xff" * 8
    path.write_bytes(bytes(raw))
    report = check_dataset(path)
    assert not report.ok
    assert not any("stopped early" in p.message for p in report.problems), report.problems
    with pytest.raises(FormatError), open_dataset(path) as ds:
        ds.train.load()


def test_upload_check_archive_uses_the_format_layer(tmp_path):
    from autodl.service.uploads import UploadRefused, check_archive

    path = hostile.zip_with(tmp_path / "u.zip", {"a/../../x": b"x"})
    with pytest.raises(UploadRefused) as e:
        check_archive(path, Settings())
    assert e.value.status == 400 and "'..' path" in e.value.message
    big = hostile.zip_with(tmp_path / "b.zip", {"x": b"y" * 5000})
    with pytest.raises(UploadRefused) as e:
        check_archive(big, Settings(max_extracted_bytes=1000))
    assert e.value.status == 413
    odd = io.BytesIO()
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("x", b"x")
    raw = bytearray(odd.getvalue())
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 10 : cd + 12] = (99).to_bytes(2, "little")  # compression method 99
    (tmp_path / "m.zip").write_bytes(bytes(raw))
    with pytest.raises(UploadRefused, match="method 99"):
        check_archive(tmp_path / "m.zip", Settings())

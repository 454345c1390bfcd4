"""TFRecord framing: masked CRC32C, reader, writer, errors that say where."""

from __future__ import annotations

import struct
import zipfile

import pytest

from autodl.errors import FormatError
from autodl.formats import tfrecord
from tests.conftest import DATASETS, needs_shared_data


def test_masked_crc_matches_tensorflow_definition():
    # crc32c("123456789") = 0xE3069283 (the standard check value); then TF's mask.
    crc = 0xE3069283
    expected = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(b"123456789") == expected


def test_write_then_read(tmp_path):
    records = [b"", b"a", b"\x00" * 1000, bytes(range(256))]
    path = tmp_path / "sample-x.tfrecord"
    with tfrecord.TFRecordWriter(path) as w:
        w.write_all(records)
    assert list(tfrecord.read_records(path)) == records
    assert tfrecord.count_records(path) == 4
    assert list(tfrecord.read_records(path, limit=2)) == records[:2]
    assert path.stat().st_size == sum(16 + len(r) for r in records)


def test_frame_layout(tmp_path):
    framed = tfrecord.frame_record(b"hello")
    length, length_crc = struct.unpack("<QI", framed[:12])
    assert length == 5 and length_crc == tfrecord.masked_crc32c(framed[:8])
    assert framed[12:17] == b"hello"
    assert struct.unpack("<I", framed[17:])[0] == tfrecord.masked_crc32c(b"hello")


def _three_records(tmp_path):
    path = tmp_path / "sample-x.tfrecord"
    with tfrecord.TFRecordWriter(path) as w:
        w.write_all([b"first", b"second", b"third"])
    return path


def test_bad_data_crc_names_file_record_offset(tmp_path):
    path = _three_records(tmp_path)
    data = bytearray(path.read_bytes())
    offset = 16 + 5  # record 1 starts after the 21 bytes of record 0
    data[offset + 12] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError) as e:
        list(tfrecord.read_records(path))
    assert e.value.record == 1 and str(path) in e.value.file
    assert f"record 1 at byte {offset}" in e.value.message and "CRC" in e.value.message
    assert list(tfrecord.read_records(path, verify=False))[1] != b"second"


def test_bad_length_crc(tmp_path):
    path = _three_records(tmp_path)
    data = bytearray(path.read_bytes())
    data[8] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="record 0 at byte 0: the CRC of the length"):
        list(tfrecord.read_records(path))


@pytest.mark.parametrize("cut", [3, 14, 19])  # record 2 is the last 21 bytes
def test_truncated_file(tmp_path, cut):
    path = _three_records(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    with pytest.raises(FormatError, match="record 2 at byte 43: the file ends") as e:
        list(tfrecord.read_records(path))
    assert e.value.record == 2


def test_split_files_sorted_sample_glob(tmp_path):
    for name in ["sample-b", "sample-a", "other", "samplez"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sample-dir").mkdir()
    assert [p.name for p in tfrecord.split_files(tmp_path)] == ["sample-a", "sample-b", "samplez"]


@needs_shared_data
def test_reads_reference_files_and_zip_members():
    path = (
        DATASETS / "handdigits" / "handdigits.data" / "train" / "sample-handdigits-train.tfrecord"
    )
    on_disk = list(tfrecord.read_records(path))
    assert len(on_disk) == 1039 == tfrecord.count_records(path)
    with zipfile.ZipFile(DATASETS / "handdigits" / "handdigits.data.zip") as z:
        member = zipfile.Path(z, "handdigits.data/train/sample-handdigits-train.tfrecord")
        assert list(tfrecord.read_records(member)) == on_disk
        assert tfrecord.count_records(member) == 1039

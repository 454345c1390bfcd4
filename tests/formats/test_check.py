"""check_dataset: every kind of problem is found and located; nothing raises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from autodl.formats import _wire, samples
from autodl.formats.check import MAX_REPEATS, check_dataset
from autodl.formats.tfrecord import TFRecordWriter, read_records
from tests.conftest import CHECK_JSON_KEYS, needs_shared_data
from tests.formats.conftest import ALL_NAMES, dataset_path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("check")
    return {
        "tabular": samples.make_tabular(root, n_train=15, n_test=6, n_unlabelled=0),
        "image": samples.make_image(root, n_train=12, n_test=6, n_unlabelled=3),
    }


@pytest.fixture
def broken(tmp_path, pristine):
    def copy(kind: str) -> Path:
        dest = tmp_path / pristine[kind].name
        shutil.copytree(pristine[kind], dest)
        return dest

    return copy


def _record(rid, idx, scores, lists) -> bytes:
    ctx = {
        "id": _wire.encode_feature("int64", [rid]) if rid is not None else None,
        "label_index": _wire.encode_feature("int64", idx),
        "label_score": _wire.encode_feature("float", scores),
    }
    return _wire.encode_sequence_example({k: v for k, v in ctx.items() if v is not None}, lists)


def _rewrite(path: Path, change) -> None:
    """Rewrite a record file; change(i, record bytes) returns new bytes or None (drop)."""
    records = list(read_records(path))
    with TFRecordWriter(path) as w:
        for i, r in enumerate(records):
            new = change(i, r)
            if new is not None:
                w.write(new)


def _train(root: Path) -> Path:
    return next((root / f"{root.name}.data" / "train").glob("sample*"))


def _test(root: Path) -> Path:
    return next((root / f"{root.name}.data" / "test").glob("sample*"))


def _check_replaced(root: Path, records: dict[int, bytes]):
    """Replace training records (index -> new bytes) and check: (report, the train file's name)."""
    _rewrite(_train(root), lambda i, r: records.get(i, r))
    return check_dataset(root), f"train/{_train(root).name}"


def _find(report, **want):
    hits = [p for p in report.problems if all(getattr(p, k) == v for k, v in want.items())]
    assert hits, (
        f"no problem with {want} in {[(p.file, p.record, p.field, p.message) for p in report.problems]}"
    )
    return hits[0]


def _dense(n_values=8):
    return {"0_dense_input": _wire.encode_float_steps(np.ones((1, n_values), np.float32))}


def test_generated_datasets_are_clean(pristine):
    for path in pristine.values():
        report = check_dataset(path)
        assert report.problems == [] and report.ok


@needs_shared_data
@pytest.mark.parametrize("name", ALL_NAMES)
def test_reference_datasets_are_clean(name):
    report = check_dataset(dataset_path(name))
    assert report.problems == []
    js = report.to_json()
    assert list(js) == CHECK_JSON_KEYS
    assert js["name"] == name and js["train"]["count"] > 0
    json.dumps(js)


def test_summary_json(pristine):
    js = check_dataset(pristine["image"]).to_json()
    assert (
        js["shape"] == [1, 12, 12, 1] and js["format"] == "COMPRESSED" and js["domain"] == "image"
    )
    assert (
        js["train"] == {"count": 12}
        and js["test"] == {"count": 6}
        and js["unlabelled"] == {"count": 3}
    )
    assert js["label_names"] == ["band0", "band1", "band2"] and js["output_dim"] == 3
    js = check_dataset(pristine["tabular"]).to_json()
    assert js["unlabelled"] is None and js["label_names"] == ["class0", "class1", "class2"]


def test_not_a_dataset(tmp_path):
    report = check_dataset(tmp_path / "nothing")
    assert not report.ok and report.name is None and "no such file" in report.problems[0].message
    (tmp_path / "x.zip").write_bytes(b"PK garbage")
    assert "not a readable zip" in check_dataset(tmp_path / "x.zip").problems[0].message


def test_missing_parts(broken):
    root = broken("tabular")
    (root / "tinytabular.data" / "train" / "metadata.textproto").unlink()
    _test(root).unlink()
    (root / "tinytabular.solution").unlink()
    report = check_dataset(root)
    _find(report, file="train/metadata.textproto")
    _find(report, file="test/", message="test/ holds no sample* record files.")
    assert "missing" in _find(report, file="tinytabular.solution").message
    assert report.test == 0 and report.output_dim == 3  # summary from test metadata


def test_missing_split_folder(broken):
    root = broken("tabular")
    shutil.rmtree(root / "tinytabular.data" / "test")
    report = check_dataset(root)
    assert "tinytabular.data/test/ is missing" in _find(report, file="test/").message
    assert report.train == 15 and report.test is None


def test_unparsable_metadata_names_line(broken):
    root = broken("tabular")
    meta = root / "tinytabular.data" / "test" / "metadata.textproto"
    meta.write_text(meta.read_text().replace("output_dim: 3", "output_dim: three"))
    p = _find(check_dataset(root), file="test/metadata.textproto")
    assert p.field == "line 4" and "line 4" in p.message


def test_sample_count_disagrees(broken):
    root = broken("tabular")
    _rewrite(_test(root), lambda i, r: None if i >= 4 else r)  # drop 2 test records
    report = check_dataset(root)
    p = _find(report, file="test/metadata.textproto", field="sample_count")
    # the file is the problem's own (a check line says it once)
    assert p.message == "sample_count is 6 but test/ holds 4 records. Re-export the test split."
    assert (
        "has 6 rows but test/ holds 4 records" in _find(report, file="tinytabular.solution").message
    )


def test_solution_columns(broken):
    root = broken("tabular")
    sol = root / "tinytabular.solution"
    sol.write_text("".join(line + " 0\n" for line in sol.read_text().splitlines()))
    assert (
        "4 columns but output_dim is 3"
        in _find(check_dataset(root), file="tinytabular.solution").message
    )
    sol.write_text("0 1 0\n1 x 0\n")
    assert _find(check_dataset(root), file="tinytabular.solution").record == 1


def test_label_problems(broken):
    root = broken("tabular")

    report, file = _check_replaced(
        root,
        {
            2: _record(8, [7], [1.0], _dense()),
            3: _record(9, [-1], [1.0], _dense()),
            4: _record(10, [0, 1], [1.0], _dense()),
        },
    )
    assert (
        "label index 7 is out of range"
        in _find(report, file=file, record=2, field="label_index").message
    )
    assert _find(report, file=file, record=3, field="label_index").expected.startswith("0 … 2")
    assert (
        "1 values for 2 label indices"
        in _find(report, file=file, record=4, field="label_score").message
    )


def test_corrupt_and_truncated_records(broken):
    root = broken("tabular")
    data = bytearray(_train(root).read_bytes())
    data[40] ^= 0xFF  # inside record 0's data
    _train(root).write_bytes(bytes(data))
    test_data = _test(root).read_bytes()
    _test(root).write_bytes(test_data[:-7])
    report = check_dataset(root)
    p = _find(report, file=f"train/{_train(root).name}", field="framing")
    assert p.record == 0 and "CRC" in p.message and "byte 0" in p.message
    # said once: the line names the file and record, the message does not again
    assert p.message.startswith("at byte 0: the data CRC is "), p.message
    p = _find(report, file=f"test/{_test(root).name}", field="framing")
    assert p.record == 5 and "the file ends" in p.message
    # the damage stopped the count: no second problem saying sample_count is wrong
    assert not [q for q in report.problems if q.field == "sample_count"], report.problems
    assert not [q for q in report.problems if "rows but test/" in q.message], report.problems


def test_missing_feature_list_and_wrong_value_count(broken):
    root = broken("tabular")

    report, file = _check_replaced(
        root,
        {
            0: _record(6, [0], [1.0], {"0_compressed": _wire.encode_bytes_steps([b"x"])}),
            1: _record(7, [1], [1.0], _dense(5)),
        },
    )
    assert (
        "no feature list '0_dense_input'"
        in _find(report, file=file, record=0, field="0_dense_input").message
    )
    p = _find(report, file=file, record=1, field="0_dense_input")
    assert "holds 5 values" in p.message and p.expected.startswith("8 =")


def test_frame_that_does_not_decode_and_wrong_size(broken):
    from autodl.formats.images import encode_frame

    root = broken("image")

    small = encode_frame(np.zeros((5, 5, 1), np.uint8))
    report, file = _check_replaced(
        root,
        {
            1: _record(
                7, [0], [1.0], {"0_compressed": _wire.encode_bytes_steps([b"\x89PNG broken"])}
            ),
            2: _record(8, [0], [1.0], {"0_compressed": _wire.encode_bytes_steps([small])}),
        },
    )
    assert "does not decode" in _find(report, file=file, record=1, field="0_compressed").message
    assert "5×5 pixels" in _find(report, file=file, record=2, field="0_compressed").message


def test_train_test_metadata_disagree(broken):
    root = broken("image")
    meta = root / "tinyimage.data" / "test" / "metadata.textproto"
    meta.write_text(
        meta.read_text()
        .replace("output_dim: 3", "output_dim: 4")
        .replace("col_count: 12", "col_count: 10")
    )
    report = check_dataset(root)
    assert (
        "output_dim is 4 but train/metadata.textproto says 3"
        in _find(report, file="test/metadata.textproto", field="output_dim").message
    )
    _find(report, file="test/metadata.textproto", field="col_count")


def test_duplicated_and_missing_ids(broken):
    root = broken("tabular")
    _rewrite(_train(root), lambda i, r: _record(100, [0], [1.0], _dense()) if i in (1, 2) else r)
    _rewrite(_test(root), lambda i, r: _record(None, [], [], _dense()) if i == 0 else r)
    report = check_dataset(root)
    p = _find(report, record=2, field="id")
    assert "id 100, already used by" in p.message and "record 1" in p.message
    assert (
        "has no 'id'"
        in _find(report, file=f"test/{_test(root).name}", record=0, field="id").message
    )


def test_warnings_class_without_example_and_unlabelled_train(broken):
    root = broken("tabular")
    _rewrite(
        _train(root),
        lambda i, r: _record(6 + i, [0] if i % 2 else [], [1.0] if i % 2 else [], _dense()),
    )
    report = check_dataset(root)
    for k, name in ((1, "class1"), (2, "class2")):
        p = _find(
            report,
            field="label_index",
            message=f"class '{name}' (column {k}) has no training example.",
        )
        assert p.severity == "warning"
    p = _find(report, record=0, field="label_index", severity="warning")
    assert "has no label" in p.message
    assert report.ok  # warnings only


def test_repeats_are_capped(broken):
    root = broken("tabular")
    _rewrite(_train(root), lambda i, r: _record(6 + i, [9], [1.0], _dense()))
    report = check_dataset(root)
    assert (
        len(
            [
                p
                for p in report.problems
                if p.record is not None and p.field == "label_index" and p.severity == "error"
            ]
        )
        == MAX_REPEATS
    )
    assert any(
        p.message.startswith("… and 5 more records with the same problem") for p in report.problems
    )


@needs_shared_data
def test_broken_reference_copy(tmp_copy):
    root = tmp_copy("handdigits")
    meta = root / "handdigits.data" / "train" / "metadata.textproto"
    meta.write_text(meta.read_text().replace("sample_count: 1039", "sample_count: 1040"))
    report = check_dataset(root)
    assert [p.message for p in report.problems] == [
        "sample_count is 1040 but train/ holds 1039 records. Re-export the train split."
    ]


def test_a_problem_line_says_each_place_once_and_only_the_places_it_has():
    from autodl.formats.check import problem_line

    full = {"severity": "error", "file": "train/a.tfrecord", "record": 0, "field": "framing",
            "message": "at byte 0: the data CRC is 1"}  # fmt: skip
    assert (
        problem_line(full)
        == "error: train/a.tfrecord, record 0, framing: at byte 0: the data CRC is 1"
    )
    assert (
        problem_line({"file": "x.solution", "record": None, "message": "m"})
        == "error: x.solution: m"
    )

"""Labels a user probably did not mean: a measurement taken for classes, single-record classes;
and a failed conversion leaves no output folder behind (issue 13)."""

from __future__ import annotations

import pytest

from autodl.errors import FormatError
from autodl.formats.convert import format_dataset
from tests.convert import inputs


def _measurements(tmp_path, n=120):
    rows = [[i, round(4.0 + (i * 37 % 41) / 10, 1), f"c{i % 3}"] for i in range(n)]
    return inputs.write_csv(tmp_path / "m.csv", ["id", "length", "kind"], rows)


def test_a_label_column_with_decimals_is_refused_without_force(tmp_path, convert):
    path = _measurements(tmp_path)
    with pytest.raises(FormatError) as e:
        convert(path, label="length")
    assert "'length' looks continuous" in e.value.message and "41 classes" in e.value.message
    assert "--force" in e.value.hint
    c = convert(path, label="length", force=True)
    assert len(c.classes) == 41
    assert any("looks continuous" in w and "--force" in w for w in c.result.warnings)


def test_many_distinct_integers_look_continuous_but_digits_do_not(tmp_path, convert):
    rows = [[i, 1000 + i % 60, i % 10] for i in range(300)]
    path = inputs.write_csv(tmp_path / "n.csv", ["id", "price", "digit"], rows)
    with pytest.raises(FormatError, match="60 distinct numbers among 300 records"):
        convert(path, label="price")
    c = convert(path, label="digit")
    assert c.classes == [str(d) for d in range(10)]
    assert not any("continuous" in w or "fewer than 2" in w for w in c.result.warnings)


def test_classes_with_one_record_are_warned_about(tmp_path, convert):
    rows = [[i, "common" if i < 40 else f"rare{i}"] for i in range(42)]
    path = inputs.write_csv(tmp_path / "r.csv", ["x", "label"], rows)
    c = convert(path, label="label")
    warning = next(w for w in c.result.warnings if "fewer than 2 records" in w)
    assert "2 class(es)" in warning and "'rare40', 'rare41'" in warning


def test_a_failed_conversion_leaves_no_new_output_folder(tmp_path):
    path = _measurements(tmp_path)
    out = tmp_path / "new" / "deeper"
    with pytest.raises(FormatError):
        format_dataset(path, out, label="length", workers=1)
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "kept"
    existing.mkdir()
    with pytest.raises(FormatError):
        format_dataset(path, existing, label="length", workers=1)
    assert existing.is_dir() and not any(existing.iterdir())


def test_a_bad_image_is_named_by_its_file_not_by_a_buffer(tmp_path):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=3)
    (src / "cat" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(FormatError) as e:
        format_dataset(src, tmp_path / "out", workers=1)
    assert "bad.png: not a readable image" in e.value.message
    assert "BytesIO" not in e.value.message and "0x" not in e.value.message


def test_format_names_follow_the_dataset_name_rule(tmp_path):
    from autodl.formats.convert.options import default_name
    from autodl.formats.names import valid_dataset_name

    assert valid_dataset_name(default_name(tmp_path / ("a" * 80 + ".csv")))
    assert default_name(tmp_path / ("x" * 63 + "-y.csv")) == "x" * 63
    path = _measurements(tmp_path)
    with pytest.raises(FormatError, match="--name 'bad name' is not valid"):
        format_dataset(path, tmp_path / "out", label="kind", name="bad name", workers=1)
    with pytest.raises(FormatError, match="--name"):
        format_dataset(path, tmp_path / "out", label="kind", name="n" * 65, workers=1)

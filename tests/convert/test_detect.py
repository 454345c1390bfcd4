"""Raw data where a dataset is expected: recognised, described, and the command given."""

from __future__ import annotations

import zipfile

from autodl.formats.archive import zip_folder
from autodl.formats.convert.detect import describe_raw
from autodl.formats.samples import make_tabular
from tests.convert import inputs


def test_a_table_is_described_with_its_columns_and_label(tmp_path):
    named = inputs.write_csv(tmp_path / "fish.csv", ["length", "label"], [[1.0, "a"], [2.0, "b"]])
    raw = describe_raw(named)
    assert raw.kind == "table" and raw.columns == ["length", "label"] and raw.label == "label"
    assert raw.command() == f"autodl format {named} --label label --output formatted"
    assert "formatted/fish" in raw.hint()
    unnamed = inputs.write_csv(tmp_path / "iris data.csv", ["a", "species"], [[1.0, "x"]])
    raw = describe_raw(unnamed)
    assert raw.label is None and "--label COLUMN" in raw.command()
    assert f"'{unnamed}'" in raw.command()  # quoted for the shell: the name has a space
    assert "a CSV table with 2 columns (a, species)" in raw.message()


def test_class_folders_of_images_and_their_zip(tmp_path):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=3)
    raw = describe_raw(src)
    assert raw.kind == "image" and raw.command() == f"autodl format {src} --output formatted"
    assert raw.summary == "a folder of 9 image files in 3 folders (cat, dog, owl)"
    archive = tmp_path / "pets.zip"
    zip_folder(src, archive, prefix="pets/", compression=zipfile.ZIP_STORED)
    assert describe_raw(archive).summary.startswith("a zip archive of 9 image files in 3 folders")


def test_datasets_and_other_things_are_not_raw_data(tmp_path):
    dataset = make_tabular(tmp_path / "d", n_train=10, n_test=5)
    assert describe_raw(dataset) is None
    assert describe_raw(dataset / "tinytabular.data") is None
    assert describe_raw(tmp_path / "missing") is None
    (tmp_path / "notes.bin").write_bytes(b"\0\1")
    assert describe_raw(tmp_path / "notes.bin") is None
    (tmp_path / "empty").mkdir()
    assert describe_raw(tmp_path / "empty") is None

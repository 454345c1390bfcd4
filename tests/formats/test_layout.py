"""Where a dataset may live: folders, zips, the official zip pair, unlabelled parts."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats import samples
from autodl.formats.archive import zip_folder
from autodl.formats.dataset import open_dataset
from tests.conftest import needs_shared_data
from tests.formats.conftest import dataset_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return samples.make_tabular(
        tmp_path_factory.mktemp("layout"), n_train=12, n_test=6, n_unlabelled=4
    )


def _zip(folder: Path, dest: Path, prefix: str = "") -> Path:
    return zip_folder(folder, dest, prefix=prefix, compression=zipfile.ZIP_STORED)


def _summary(path) -> tuple:
    with open_dataset(path) as ds:
        unl = len(ds.unlabelled) if ds.unlabelled is not None else None
        sol = None if ds.solution is None else ds.solution.shape
        return ds.name, len(ds.train), len(ds.test), unl, sol, ds.train.load().x.sum()


def test_folder_data_folder_and_zips_read_the_same(tiny, tmp_path):
    expected = _summary(tiny)
    assert expected[:5] == ("tinytabular", 12, 6, 4, (6, 3))
    assert (
        _summary(tiny / "tinytabular.data") == expected
    )  # solution and unlabelled found beside it
    assert (
        _summary(_zip(tiny, tmp_path / "root.zip")) == expected
    )  # service layout: files at the root
    assert (
        _summary(_zip(tiny, tmp_path / "top.zip", "tinytabular/")) == expected
    )  # one top-level folder
    assert _summary(_zip(tiny, tmp_path / "othername.zip", "whatever/")) == expected


def test_unlabelled_inside_data_folder(tiny, tmp_path):
    moved = tmp_path / "tinytabular"
    shutil.copytree(tiny, moved)
    shutil.move(moved / "tinytabular.data" / "unlabelled", moved / "unlabelled")
    assert (moved / "unlabelled").is_dir() and not (
        moved / "tinytabular.data" / "unlabelled"
    ).exists()
    assert _summary(moved)[3] == 4
    assert _summary(_zip(moved, tmp_path / "u.zip"))[3] == 4


def test_label_names_from_label_file_in_zip(tiny, tmp_path):
    with open_dataset(_zip(tiny, tmp_path / "l.zip", "x/")) as ds:
        assert ds.spec.label_names == ["class0", "class1", "class2"]


def test_missing_solution_is_none(tiny, tmp_path):
    copy = tmp_path / "tinytabular"
    shutil.copytree(tiny, copy)
    (copy / "tinytabular.solution").unlink()
    with open_dataset(copy) as ds:
        assert ds.solution is None and ds.solution_path is None


@pytest.mark.parametrize("make", ["empty", "nodata", "notzip", "missing"])
def test_not_a_dataset(tmp_path, make):
    path = tmp_path / "thing"
    if make == "empty":
        path.mkdir()
    elif make == "nodata":
        path.mkdir()
        (path / "readme.txt").write_text("hello")
    elif make == "notzip":
        path.write_bytes(b"not a zip")
    with pytest.raises(FormatError) as e:
        open_dataset(path)
    assert str(path) in e.value.message


@needs_shared_data
def test_official_zip_pair_and_unlabelled_beside_it(tmp_path):
    src = dataset_path("handdigits")
    with open_dataset(src / "handdigits.data.zip") as ds:
        assert ds.name == "handdigits" and len(ds.train) == 1039
        assert ds.solution.shape == (558, 10)  # handdigits.solution beside the zip
        assert len(ds.unlabelled) == 200  # handdigits/unlabelled beside the zip
        x_zip = ds.train.load(limit=50).x
    # Only the pair: the solution is read from handdigits.solution.zip.
    pair = tmp_path / "pair"
    pair.mkdir()
    for n in ("handdigits.data.zip", "handdigits.solution.zip"):
        shutil.copy(src / n, pair / n)
    with open_dataset(pair) as ds:
        assert ds.solution.shape == (558, 10) and ds.unlabelled is None
        np.testing.assert_array_equal(ds.train.load(limit=50).x, x_zip)
        np.testing.assert_array_equal(ds.solution, open_dataset(src).solution)
    with open_dataset(pair / "handdigits.data.zip") as ds:
        assert ds.solution.shape == (558, 10)


@needs_shared_data
def test_reference_dataset_zipped_in_service_layout(tmp_path):
    src = dataset_path("movingdigits")
    z = _zip(src, tmp_path / "movingdigits.zip")
    with open_dataset(z) as ds:
        arr = ds.test.load()
        assert arr.x.shape == (109, 10, 32, 32, 1) and ds.solution.shape == (109, 4)
    np.testing.assert_array_equal(arr.x, open_dataset(src).test.load().x)


def test_sharded_split_reads_sample_files_in_name_order(tiny, tmp_path):
    from autodl.formats.tfrecord import TFRecordWriter, read_records

    copy = tmp_path / "tinytabular"
    shutil.copytree(tiny, copy)
    train = copy / "tinytabular.data" / "train"
    (single,) = train.glob("sample*")
    records = list(read_records(single))
    single.unlink()
    for name, part in (("sample-b", records[5:]), ("sample-a", records[:5]), ("other", records)):
        with TFRecordWriter(train / name) as w:
            w.write_all(part)
    with open_dataset(copy) as ds:
        assert [f.name for f in ds.train.files] == ["sample-a", "sample-b"]
        assert len(ds.train) == 12
        assert ds.train.load().ids.tolist() == list(range(6, 18))
        assert ds.train.load(limit=7).ids.tolist() == list(range(6, 13))
        assert [e.id for e in ds.train][:6] == list(range(6, 12))

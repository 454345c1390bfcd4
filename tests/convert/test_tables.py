"""Tables: numeric, categorical and missing values, multi-label, Parquet, series, unlabelled."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from autodl.errors import FormatError
from tests.convert import inputs


def test_numbers_categories_and_missing_values(tmp_path, convert):
    header, rows = inputs.tabular_rows(60)
    path = inputs.write_csv(tmp_path / "fish.csv", header, rows)
    c = convert(path, label="species", id_column="id")
    assert c.result.domain == "tabular" and c.classes == ["alpha", "beta", "gamma"]
    manifest = json.loads(c.result.manifest.read_text())
    names = [f["name"] for f in manifest["details"]["features"]]
    assert names == ["length", "colour=blue", "colour=green", "colour=red", "weight"]
    assert c.ds.spec.shape == (1, 1, 5, 1)
    for row in rows:
        split, x, labels = c.get(row[0])
        f = x.reshape(-1)
        assert labels == [row[4]]
        assert f[0] == np.float32(row[1])
        assert f[1:4].tolist() == [float(row[2] == v) for v in ("blue", "green", "red")]
        assert math.isnan(f[4]) if row[3] == "" else f[4] == np.float32(row[3])
    meta = (c.result.dataset / "fish.data" / "test" / "metadata.textproto").read_text()
    assert "has_locality_col: false" in meta and "label_to_index_map" in meta


def test_many_categories_become_codes_and_identifiers_are_left_out(tmp_path, convert):
    rows = [[f"user{i}", f"city{i % 12}", i % 2] for i in range(48)]
    path = inputs.write_csv(tmp_path / "u.csv", ["name", "city", "label"], rows)
    c = convert(path)
    features = json.loads(c.result.manifest.read_text())["details"]["features"]
    assert [(f["name"], f["kind"]) for f in features] == [("city", "code")]
    assert features[0]["categories"][:3] == ["city0", "city1", "city2"]
    assert any("'name' left out" in w for w in c.result.warnings)
    assert c.get("u.csv", 11)[1].reshape(-1).tolist() == [
        11.0
    ]  # 'city11' is code 11 (natural order)
    assert c.classes == ["0", "1"]  # a 0/1 column is two classes, as emailspam


def test_multilabel_from_class_columns_and_from_a_separator(tmp_path, convert):
    rng = np.random.default_rng(1)
    flags = (rng.random((40, 3)) < 0.5).astype(int)
    flags[flags.sum(1) == 0, 0] = 1
    rows = [[float(i), *f] for i, f in enumerate(flags)]
    path = inputs.write_csv(tmp_path / "m.csv", ["x", "drama", "comedy", "short"], rows)
    c = convert(path, label=["drama", "comedy", "short"])
    assert c.classes == ["drama", "comedy", "short"]  # in the order of the columns given
    for i, f in enumerate(flags):
        assert c.get("m.csv", i)[2] == [n for n, on in zip(c.classes, f, strict=True) if on]
    joined = [
        [r[0], "|".join(n for n, on in zip(c.classes, f, strict=True) if on)]
        for r, f in zip(rows, flags, strict=True)
    ]
    path2 = inputs.write_csv(tmp_path / "m2.csv", ["x", "genres"], joined)
    c2 = convert(path2, label="genres", label_separator="|")
    assert c2.classes == ["comedy", "drama", "short"]
    assert sorted(c2.get("m2.csv", 5)[2]) == sorted(c.get("m.csv", 5)[2])


def test_split_column_unlabelled_table_and_semicolon_decimal_commas(tmp_path, convert):
    rows = [[f"{i},5", "train" if i < 30 else "test", "ab"[i % 2]] for i in range(40)]
    path = inputs.write_csv(tmp_path / "eu.csv", ["wert", "split", "klasse"], rows, delimiter=";")
    new = inputs.write_csv(tmp_path / "new.csv", ["wert"], [["7,5"], ["1,25"], [""]], delimiter=";")
    c = convert(path, label="klasse", split_column="split", unlabelled=new)
    assert c.result.counts == {"train": 30, "test": 10, "unlabelled": 3}
    assert c.get("eu.csv", 31)[0] == "test" and c.get("eu.csv", 31)[1].reshape(-1).tolist() == [
        31.5
    ]
    unl = c.ds.unlabelled.load()
    assert unl.ids.tolist() == [0, 1, 2] and unl.x[:2].reshape(-1).tolist() == [7.5, 1.25]
    assert math.isnan(unl.x[2].reshape(-1)[0])
    assert [r["row"] for r in c.manifest_rows if r["split"] == "unlabelled"] == ["0", "1", "2"]


def test_parquet(tmp_path, convert):
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (the 'parquet' extra)")
    import pyarrow.parquet as pq

    header, rows = inputs.tabular_rows(30)
    cols = list(zip(*rows, strict=True))
    table = pa.table(
        {
            "length": pa.array(cols[1], pa.float64()),
            "colour": pa.array(cols[2]),
            "weight": pa.array([None if w == "" else w for w in cols[3]], pa.float64()),
            "species": pa.array(cols[4]),
        }
    )
    pq.write_table(table, tmp_path / "fish.parquet")
    c = convert(tmp_path / "fish.parquet", label="species")
    assert (
        c.ds.spec.shape == (1, 1, 5, 1) and c.result.counts["train"] + c.result.counts["test"] == 30
    )
    assert math.isnan(c.get("fish.parquet", 3)[1].reshape(-1)[4])


def test_series_one_per_row_and_long_format(tmp_path, convert):
    rng = np.random.default_rng(0)
    wide = [
        [*np.round(np.sin(np.arange(20) * (0.2 + 0.3 * k)) + rng.normal(0, 0.1, 20), 3), k]
        for k in (0, 1)
        for _ in range(8)
    ]
    wide[0][-3:-1] = ["", ""]  # a shorter series
    c = convert(
        inputs.write_csv(tmp_path / "w.csv", [f"t{i}" for i in range(20)] + ["label"], wide),
        domain="series",
    )
    assert c.result.domain == "speech" and c.ds.spec.shape == (-1, 1, 1, 1)
    assert c.get("w.csv", 0)[1].shape == (18, 1, 1, 1)
    assert c.get("w.csv", 3)[1].reshape(-1).tolist() == [np.float32(v) for v in wide[3][:20]]

    long = [
        [f"s{s}", t, 10 * s + t, -t, "up" if s % 2 else "down"]
        for s in range(12)
        for t in (2, 0, 1)
    ]
    c = convert(inputs.write_csv(tmp_path / "l.csv", ["id", "time", "a", "b", "label"], long))
    assert c.ds.spec.shape == (-1, 1, 1, 2)
    split, x, names = c.get("s5", 15)  # source = series id, row = its first row
    assert names == ["up"] and x.reshape(3, 2).tolist() == [[50, 0], [51, -1], [52, -2]]


def test_bad_rows_are_named_and_classes_must_be_two(tmp_path, convert):
    path = inputs.write_csv(
        tmp_path / "b.csv", ["x", "label"], [[1, "a"], [2, ""], [3, "b"], [4, "a"], [5, "b"]]
    )
    with open(path, "a") as f:
        f.write("6,a,extra\n")
    with pytest.raises(FormatError) as e:
        convert(path)
    assert (
        "b.csv data row 1: no label" in e.value.message
        and "b.csv data row 5: has 3 fields" in e.value.message
    )
    # counted as in records.csv (from 0), and the message says so: row 5 is line 7
    assert "data rows count from 0: data row 0 is the first line after the header" in (
        e.value.message
    )
    assert convert(path, skip_bad=True, test_size=1).result.counts["train"] == 3
    one = inputs.write_csv(tmp_path / "one.csv", ["x", "label"], [[1, "a"], [2, "a"]])
    with pytest.raises(FormatError, match="two or more"):
        convert(one)
    with pytest.raises(FormatError, match="--label"):
        convert(inputs.write_csv(tmp_path / "nolabel.csv", ["x", "y2"], [[1, 2]]))


def test_a_name_column_does_not_make_a_table_text(tmp_path, convert):
    rows = [
        [f"Mr. John Ronald Reuel Tolkien the {i}th", i % 3, 1.5 * i, i % 2, "x", i, "ab"[i % 2]]
        for i in range(30)
    ]
    path = inputs.write_csv(
        tmp_path / "people.csv", ["name", "a", "b", "c", "d", "e", "label"], rows
    )
    c = convert(path)
    assert c.result.domain == "tabular"
    assert any("'name' left out" in w for w in c.result.warnings)

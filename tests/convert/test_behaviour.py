"""What users rely on: the split, the output folder, --force, the CLI, the zip."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

import autodl
from autodl.errors import FormatError
from autodl.formats.check import check_dataset
from autodl.formats.convert import format_dataset
from tests.conftest import run_autodl
from tests.convert import inputs


def _table(tmp_path: Path, n_per_class=(40, 20, 10)) -> Path:
    rows = [[float(i), cls] for cls, n in zip("abc", n_per_class, strict=True) for i in range(n)]
    return inputs.write_csv(tmp_path / "t.csv", ["x", "label"], rows)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_split_is_stratified_and_seeded(tmp_path, convert):
    path = _table(tmp_path)
    c = convert(path, name="s0", test_size=0.3, seed=4)
    sol = c.ds.solution
    assert sol.sum(0).tolist() == [12, 6, 3]  # 30 % of each class
    again = convert(path, name="s1", test_size=0.3, seed=4)
    other = convert(path, name="s2", test_size=0.3, seed=5)
    test_rows = lambda cv: sorted(int(r["row"]) for r in cv.manifest_rows if r["split"] == "test")  # noqa: E731
    assert test_rows(c) == test_rows(again) != test_rows(other)
    assert convert(path, name="n", test_size=14).result.counts["test"] == 14


def test_split_file_names_the_test_records(tmp_path, convert):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=4)
    listing = tmp_path / "split.txt"
    listing.write_text(
        "file,split\ncat/img0.png,test\ndog/img1.jpg\nowl/img2.bmp,test\nnot/there.png\n"
    )
    c = convert(src, split_file=listing)
    assert c.result.counts == {"train": 9, "test": 3, "unlabelled": 0}
    assert {s for (s, _), (p, _) in c.records.items() if p == "test"} == {
        "cat/img0.png",
        "dog/img1.jpg",
        "owl/img2.bmp",
    }
    assert any("match no input" in w for w in c.result.warnings)


def test_output_layout_zip_and_nothing_written_elsewhere(tmp_path):
    path = _table(tmp_path)
    before = _tree(tmp_path)
    r = format_dataset(path, tmp_path / "out", name="demo")
    after = _tree(tmp_path)
    new = sorted(set(after) - set(before))
    assert all(p.startswith("out/") for p in new)
    assert {p.split("/")[1] for p in new} == {
        "demo",
        "demo.zip",
        "demo.manifest.json",
        "demo.records.csv",
    }
    assert {"out/demo/metadata", "out/demo/demo.solution", "out/demo/demo_label.name"} <= set(new)
    with zipfile.ZipFile(r.zip) as z:
        names = z.namelist()
    assert (
        "metadata" in names
        and "demo.solution" in names
        and "demo.data/train/metadata.textproto" in names
    )
    assert check_dataset(r.zip).ok and r.report.ok
    assert (tmp_path / "out" / "demo" / "demo_label.name").read_text() == "a\nb\nc\n"


def test_existing_output_needs_force_and_force_replaces_only_a_dataset(tmp_path):
    path = _table(tmp_path)
    format_dataset(path, tmp_path / "out", name="demo")
    stamp = (tmp_path / "out" / "demo.records.csv").read_bytes()
    with pytest.raises(FormatError, match="--force"):
        format_dataset(path, tmp_path / "out", name="demo")
    format_dataset(path, tmp_path / "out", name="demo", force=True, seed=3)
    assert (tmp_path / "out" / "demo.records.csv").read_bytes() != stamp
    (tmp_path / "out" / "mine").mkdir()
    (tmp_path / "out" / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(FormatError, match="not an AutoDL dataset"):
        format_dataset(path, tmp_path / "out", name="mine", force=True)
    assert (tmp_path / "out" / "mine" / "thesis.tex").read_text() == "precious"
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")) == []


def test_a_failed_conversion_leaves_the_output_folder_as_it_was(tmp_path):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=3)
    (src / "cat" / "bad.png").write_bytes(b"not an image")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(FormatError):
        format_dataset(src, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_options_are_checked_with_one_message(tmp_path):
    path = _table(tmp_path)
    with pytest.raises(FormatError) as e:
        format_dataset(path, tmp_path / "out", test_size=1.5, fps=0, name="bad name")
    assert (
        "--test-size 1.5" in e.value.message
        and "--fps 0" in e.value.message
        and "--name" in e.value.message
    )
    with pytest.raises(FormatError, match="format_dataset"):
        format_dataset(path, tmp_path / "out", colour="red")


def test_public_api_export():
    assert autodl.format_dataset is format_dataset and "format_dataset" in autodl.__all__


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return run_autodl("format", *args, cwd=cwd, env=env, timeout=120)


def test_cli_prints_the_check_summary_and_refuses_to_overwrite(tmp_path):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=4)
    proc = _cli(src, "--output", tmp_path / "out", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "valid AutoDL dataset" in proc.stdout and "classes: 3 (cat, dog, owl)" in proc.stdout
    assert "out/pets.zip" in proc.stdout and "image files: 12" in proc.stderr
    again = _cli(src, "--output", tmp_path / "out")
    assert again.returncode == 1 and "already exists" in again.stderr and "--force" in again.stderr
    js = _cli(src, "--output", tmp_path / "out", "--force", "--json", "--name", "pets")
    data = json.loads(js.stdout)
    assert (
        data["counts"] == {"train": 8, "test": 4, "unlabelled": 0}
        and data["check"]["problems"] == []
    )


def test_cli_errors_are_one_message_with_a_hint(tmp_path):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=3)
    (src / "dog" / "x.jpg").write_bytes(b"\xff\xd8broken")
    proc = _cli(src, "--output", tmp_path / "out")
    assert (
        proc.returncode == 1
        and "dog/x.jpg: not a readable image" in proc.stderr
        and "Hint:" in proc.stderr
    )
    ok = _cli(src, "--output", tmp_path / "out", "--skip-bad")
    assert ok.returncode == 0 and "dog/x.jpg" in ok.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _cli(empty, "--output", tmp_path / "out")
    assert proc.returncode == 1 and "no image, audio, video or .txt files" in proc.stderr


def test_records_manifest_matches_unlabelled_predictions_back(tmp_path, convert):
    header, rows = inputs.tabular_rows(30)
    path = inputs.write_csv(tmp_path / "fish.csv", header, rows)
    new_rows = [r[:4] for r in rows[:7]][::-1]
    new = inputs.write_csv(tmp_path / "new.csv", header[:4], new_rows)
    c = convert(path, label="species", id_column="id", unlabelled=new)
    unl = [r for r in c.manifest_rows if r["split"] == "unlabelled"]
    assert [r["source"] for r in unl] == [r[0] for r in new_rows]
    x = c.ds.unlabelled.load().x.reshape(7, -1)
    assert np.allclose(x[:, 0], [r[1] for r in new_rows])


def test_output_inside_the_input_folder_is_not_read_back(tmp_path, convert):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=4)
    first = format_dataset(src, src, workers=1)  # DIR = INPUT: the dataset lands in pets/pets/
    again = format_dataset(src, src, workers=1, force=True)
    assert first.counts == again.counts == {"train": 8, "test": 4, "unlabelled": 0}

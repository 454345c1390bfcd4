"""`autodl predict` on awkward inputs (stranger trial 16): where the output may go, texts
the model knows no word of, files that do not decode (``--skip-bad``), files of another
kind, integer image arrays, the messages for wrong uploads, and 1-based row numbers.

Models are fitted here in a second on tiny generated datasets (the cheapest learner of
each plan) and saved with `autodl.engine.export.write`, as the engine's process does.
"""

from __future__ import annotations

import csv
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from autodl.cli import main
from autodl.engine import image, tabular, text
from autodl.errors import AutoDLError, FormatError
from autodl.formats.dataset import open_dataset
from autodl.formats.samples import make_image, make_tabular, make_text
from autodl.model import check_input, load_model, predict_to_csv
from tests.model.test_model import write_model


def _saved(tmp_path_factory, make, plan, index: int) -> tuple:
    """A sample dataset made by ``make`` and the model of ``plan``'s learner ``index``."""
    root = tmp_path_factory.mktemp(make.__name__)
    dataset = make(root / "data")
    learner, cal, _ = write_model(root / "model", dataset, index=index, plan=plan)
    return root / "model", dataset, learner, cal


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    return _saved(tmp_path_factory, make_tabular, tabular.plan, 1)[:2]


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    """A linear model on 12 x 12 grey PNG images (COMPRESSED: the reader gives 0..1)."""
    return _saved(tmp_path_factory, make_image, image.plan, 0)


@pytest.fixture(scope="module")
def txt(tmp_path_factory):
    return _saved(tmp_path_factory, make_text, text.plan, 0)


def _png(path: Path, band: int = 0) -> Path:
    """A 12 x 12 grey image with a bright bar in ``band`` (the sample's classes)."""
    x = np.full((12, 12), 30, np.uint8)
    x[band * 4 : band * 4 + 2] = 230
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(x).save(path)
    return path


def _read(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text().splitlines()))


def _cli(*args: str):
    return CliRunner().invoke(main, ["predict", *map(str, args)])


# ---- 1. the output never replaces the model or the input ----------------------------


def test_the_output_may_not_be_the_input_or_inside_the_model(tab, tmp_path):
    folder, dataset = tab
    model = tmp_path / "model"
    shutil.copytree(folder, model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    rows = tmp_path / "rows.csv"
    x = open_dataset(dataset).test.load().x
    with rows.open("w", newline="") as f:
        csv.writer(f).writerows([[f"f{i}" for i in range(x.shape[3])], *x.reshape(len(x), -1)])
    original = rows.read_bytes()
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as zf:
        for f in model.iterdir():
            zf.write(f, f"model/{f.name}")
    zipped = (tmp_path / "model.zip").read_bytes()
    cases = [
        (model, rows, model / "model.json", "inside the model"),
        (model, rows, model / "new" / "p.csv", "inside the model"),
        (model, rows, rows, "is the input"),
        (model, dataset, dataset / "p.csv", "inside the input"),
        (tmp_path / "model.zip", rows, tmp_path / "model.zip", "is the model"),
    ]
    for model_path, input_path, output, why in cases:
        result = _cli(model_path, input_path, "--output", output)
        assert result.exit_code == 1, (output, result.output)
        named = str(model_path if "model" in why else input_path)
        assert why in result.output and str(output) in result.output, result.output
        assert f"({named})" in result.output, result.output  # both paths
        with pytest.raises(AutoDLError, match=why):
            predict_to_csv(model_path, input_path, output)
    with pytest.raises(AutoDLError, match="inside the model"):  # a loaded model too
        predict_to_csv(load_model(model), rows, model / "p.csv")
    with pytest.raises(AutoDLError, match="is the model"):
        predict_to_csv(load_model(tmp_path / "model.zip"), rows, tmp_path / "model.zip")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
    assert rows.read_bytes() == original and (tmp_path / "model.zip").read_bytes() == zipped
    assert not (model / "new").exists() and not (dataset / "p.csv").exists()
    # another name of the same file is the same file
    (tmp_path / "link.csv").symlink_to(rows)
    with pytest.raises(AutoDLError, match="is the input"):
        predict_to_csv(model, rows, tmp_path / "link.csv")
    # missing parent folders of the output are created, as `autodl run --output` does
    out = tmp_path / "a" / "b" / "p.csv"
    assert predict_to_csv(model, rows, out) == len(x) and out.is_file()


# ---- 2. texts the model knows no word of; files that do not decode --------------------


def test_an_empty_or_unknown_text_is_predicted(txt, tmp_path):
    """No known word is a valid input: the model predicts from an empty document, as the
    engine would for an empty record."""
    folder, dataset, learner, cal = txt
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.txt").write_text("w1 w2 w3 w30")
    (new / "b.txt").write_text("")
    (new / "c.txt").write_text("zzz qqq unseen")
    n = predict_to_csv(folder, new, tmp_path / "p.csv")
    assert n == 3
    rows = _read(tmp_path / "p.csv")
    assert [r[0] for r in rows[1:]] == ["a.txt", "b.txt", "c.txt"]
    empty = np.zeros((0, 1, 1, 1), np.float32)
    want = cal.probabilities(learner.predict_proba([empty]))[0]
    for r in rows[2:]:
        assert np.abs(np.array([float(v) for v in r[1:-1]]) - want).max() < 1e-6
    table = tmp_path / "t.csv"
    table.write_text('text\n"w1 w2"\n"zzz qqq"\n""\n')
    predict_to_csv(folder, table, tmp_path / "t_o.csv")
    rows = _read(tmp_path / "t_o.csv")
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    for r in rows[2:]:
        assert np.abs(np.array([float(v) for v in r[1:-1]]) - want).max() < 1e-6
    check_input(folder, new)  # the service's check lets them through too


def test_files_that_do_not_decode_are_an_error_or_skipped(img, tmp_path):
    folder = img[0]
    new = tmp_path / "new"
    _png(new / "a.png", 0)
    _png(new / "b.png", 1)
    (new / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (new / "fake.jpg").write_text("not an image at all")
    with pytest.raises(FormatError, match="corrupt.png"):
        predict_to_csv(folder, new, tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()
    said: list[str] = []
    n = predict_to_csv(folder, new, tmp_path / "p.csv", skip_bad=True, say=said.append)
    assert n == 2
    rows = _read(tmp_path / "p.csv")
    assert [r[0] for r in rows[1:]] == ["a.png", "b.png"]
    assert any(line.startswith("skipped corrupt.png: ") for line in said), said
    assert any(line.startswith("skipped fake.jpg: ") for line in said), said
    result = _cli(folder, new, "--output", tmp_path / "c.csv")
    assert result.exit_code == 1 and "corrupt.png" in result.output
    assert "--skip-bad" in result.output  # the hint names the option
    result = _cli(folder, new, "--output", tmp_path / "c.csv", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "skipped corrupt.png: " in result.output
    assert "Wrote 2 predictions" in result.output and "2 files skipped" in result.output
    # nothing readable at all: an error, even with --skip-bad
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"junk")
    with pytest.raises(FormatError, match="none of its 1 file"):
        predict_to_csv(folder, bad, tmp_path / "n.csv", skip_bad=True)


def test_files_of_another_kind_are_reported(img, tmp_path):
    folder = img[0]
    new = tmp_path / "new"
    _png(new / "a.png")
    (new / "notes.txt").write_text("my notes")
    said: list[str] = []
    assert predict_to_csv(folder, new, tmp_path / "p.csv", say=said.append) == 1
    assert "skipped 1 file that is not an image: notes.txt" in said, said
    (new / "b.csv").write_text("a,b\n")
    said.clear()
    predict_to_csv(folder, new, tmp_path / "p.csv", say=said.append)
    assert "skipped 2 files that are not images: b.csv, notes.txt" in said, said
    result = _cli(folder, new, "--output", tmp_path / "c.csv")
    assert result.exit_code == 0 and "skipped 2 files that are not images" in result.output


# ---- 3. arrays: integer pixels, huge values ------------------------------------------


def test_integer_pixels_are_scaled_as_decoding_a_png_does(img, tmp_path):
    folder, dataset, learner, cal = img
    model = load_model(folder)
    x = open_dataset(dataset).test.load().x  # floats 0..1, as the reader decodes
    pixels = np.rint(x * 255).astype(np.uint8)
    want = model.predict_proba(x)
    assert np.abs(model.predict_proba(pixels) - want).max() < 1e-6
    assert np.abs(model.predict_proba(list(pixels[:3])) - want[:3]).max() < 1e-6
    # a PNG file and its pixels give the same prediction
    png = _png(tmp_path / "one.png", 2)
    from_file = model.predict_proba(str(png))
    arr = np.asarray(Image.open(png))[None, None, :, :, None]
    assert np.abs(model.predict_proba(arr) - from_file).max() < 1e-6


def test_other_models_take_integers_as_they_are(tab):
    model = load_model(tab[0])
    x = open_dataset(tab[1]).test.load().x
    ints = np.rint(x * 10).astype(np.int64)
    assert (
        np.abs(model.predict_proba(ints) - model.predict_proba(ints.astype(np.float32))).max() == 0
    )


def test_huge_values_give_no_numpy_warning(tab, tmp_path):
    folder, dataset = tab
    model = load_model(folder)
    width = model.spec.shape[2]
    table = tmp_path / "big.csv"
    with table.open("w", newline="") as f:
        csv.writer(f).writerows([[f"f{i}" for i in range(width)], ["1e300"] * width])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        p = model.predict_proba(np.full((1, 1, 1, width, 1), 1e300))
        assert np.allclose(p.sum(axis=1), 1)
        predict_to_csv(folder, table, tmp_path / "p.csv")


# ---- 4. messages for wrong uploads ---------------------------------------------------


def test_two_tables_are_named(tab, tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "a.csv").write_text("x,y\n1,2\n")
    (new / "b.csv").write_text("x,y\n1,2\n")
    with pytest.raises(FormatError, match=r"holds 2 tables \(a.csv, b.csv\); the model needs one"):
        check_input(tab[0], new)


def test_a_text_file_for_an_image_model_is_not_called_a_table(img, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(FormatError) as e:
        check_input(img[0], notes)
    assert "a table" not in e.value.message
    assert "notes.txt: a text file" in e.value.message and "image" in e.value.message
    assert "expects images" in (e.value.hint or "") or ".png" in (e.value.hint or "")


def test_a_dataset_of_another_domain_is_named_by_the_input(img, tmp_path):
    table = make_tabular(tmp_path / "wine")
    zipped = Path(shutil.make_archive(str(tmp_path / "wine"), "zip", table))
    with pytest.raises(FormatError) as e:
        check_input(img[0], zipped)
    assert e.value.message.startswith(f"{zipped}: ") and "metadata.textproto" not in e.value.message
    with pytest.raises(FormatError, match=r"^wine.zip: an AutoDL dataset of tabular data"):
        check_input(img[0], zipped, name="wine.zip")


def test_the_hint_for_a_bad_image_is_grammatical(img, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"junk")
    with pytest.raises(FormatError) as e:
        check_input(img[0], bad)
    assert e.value.hint == "The model expects images like its training data.", e.value.hint


# ---- 5. rows are counted from 1, errors give the line too ------------------------------


def test_rows_are_counted_from_one_and_errors_give_the_line(tab, tmp_path):
    folder, dataset = tab
    x = open_dataset(dataset).test.load().x[:3]
    table = tmp_path / "rows.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(x.shape[3])])
        w.writerows(x.reshape(len(x), -1).tolist())
    predict_to_csv(folder, table, tmp_path / "p.csv")
    rows = _read(tmp_path / "p.csv")
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    lines = table.read_text().splitlines()
    lines[2] = "oops," + lines[2].split(",", 1)[1]
    lines.insert(1, "")  # a blank line: not a row, but a line
    table.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=r"rows.csv: row 2 \(line 4\), column 'f0': 'oops'"):
        check_input(folder, table)

"""Saved models (issue 16): `autodl.load_model`, `predict_to_csv`, `check_input`, their errors.

The fast tests build a model folder in this process from a learner fitted on a tiny
generated dataset (`autodl.engine.export.write`, as the engine's process does); the
runs of every domain, the deadline and the command line are in test_runs.py (slow).
"""

from __future__ import annotations

import csv
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

import autodl
from autodl.engine import calibrate, export, tabular
from autodl.errors import FormatError, ModelError
from autodl.formats.dataset import open_dataset
from autodl.formats.samples import make_image, make_tabular
from autodl.model import check_input, load_model, predict_to_csv


def write_model(
    folder: Path, dataset: Path, manifest: dict | None = None, index: int = 1, plan=None
) -> tuple:
    """A model folder from the plan's learner ``index`` (1: linear, 4: LightGBM; ``plan``:
    another domain's plan function, default tabular's) fitted on ``dataset``; returns the
    learner, its calibration (the reference) and the opened dataset."""
    ds = open_dataset(dataset)
    learner = (plan or tabular.plan)(ds.spec, 0)[index]
    data = ds.train.load()
    learner.fit(data, 2.0)
    cal = calibrate.fit(learner.predict_proba(data.x), data.labels, multiclass=True)
    recipe = export.Recipe.of([learner], [learner.name])
    info = {
        "learner": learner.name,
        "note": "",
        "prediction_index": 0,
        "hold_out_score": None,
        "spec": export.spec_json(ds.spec),
        "max_side": None,
        "manifest": manifest,
    }
    export.write(folder, recipe.snapshot(), recipe.names, cal, info)
    return learner, cal, ds


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    dataset = make_tabular(root / "tab", unlabelled=True)
    learner, cal, ds = write_model(root / "model", dataset)
    return root / "model", dataset, learner, cal, ds


def test_arrays_give_the_calibrated_probabilities(tab):
    folder, _dataset, learner, cal, ds = tab
    model = autodl.load_model(folder)
    x = ds.test.load().x
    want = cal.probabilities(learner.predict_proba(x))
    got = model.predict_proba(x)
    assert np.abs(got - want).max() < 1e-12
    assert np.allclose(got.sum(axis=1), 1)
    assert np.abs(model.predict_scores(x) - cal.scores(learner.predict_proba(x))).max() < 1e-12
    assert list(model.classes_) == ds.spec.label_names
    assert list(model.predict(x)) == [ds.spec.label_names[i] for i in want.argmax(axis=1)]
    assert model.spec == ds.spec
    # a list of (T, H, W, C) examples and one example work too
    assert np.abs(model.predict_proba(list(x[:3])) - want[:3]).max() < 1e-12
    assert np.abs(model.predict_proba(x[0]) - want[:1]).max() < 1e-12
    # rows of a table (n, features) and one row, as scikit-learn takes them
    flat = x.reshape(len(x), -1)
    assert np.abs(model.predict_proba(flat) - want).max() < 1e-12
    assert np.abs(model.predict_proba(flat[0]) - want[:1]).max() < 1e-12
    with pytest.raises(FormatError):
        model.predict_proba(flat[:, :-1])  # a feature short: still a clear error


def test_model_json_says_what_it_is(tab):
    doc = json.loads((tab[0] / "model.json").read_text())
    assert doc["pickled"] is True and "trust" in doc["warning"] and "allow-list" in doc["loading"]
    assert doc["parts"][0]["weight"] == 1.0 and doc["kind"] == "learner"
    assert {"numpy", "lightgbm", "torch", "python"} <= set(doc["versions"])
    assert doc["spec"]["output_dim"] == tab[4].spec.output_dim
    # no training data in the saved learner: far smaller than the training split
    assert (tab[0] / "part-0.pkl").stat().st_size < 200_000


def test_predict_to_csv_on_a_dataset_in_batches(tab, tmp_path):
    folder, dataset, learner, cal, ds = tab
    seen = []
    n = predict_to_csv(
        folder, dataset, tmp_path / "p.csv", batch_size=7, progress=lambda d, t: seen.append((d, t))
    )
    x = ds.unlabelled.load()
    assert n == len(x) and seen[-1] == (n, n) and len(seen) > 2
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    assert rows[0] == ["id", *ds.spec.label_names, "top_class"]
    got = np.array([[float(v) for v in r[1:-1]] for r in rows[1:]])
    want = cal.probabilities(learner.predict_proba(x.x))
    assert np.abs(got - want).max() < 1e-6
    assert [int(r[0]) for r in rows[1:]] == x.ids.tolist()
    assert [r[-1] for r in rows[1:]] == [ds.spec.label_names[i] for i in want.argmax(axis=1)]
    # the test split in the official layout: the calibrated scores
    predict_to_csv(folder, dataset, tmp_path / "t.predict", split="test", fmt="predict")
    got = np.loadtxt(tmp_path / "t.predict")
    assert np.abs(got - cal.scores(learner.predict_proba(ds.test.load().x))).max() < 1e-6


def test_a_zip_of_the_model_and_a_run_folder_load(tab, tmp_path):
    folder = tab[0]
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as zf:
        for f in folder.iterdir():
            zf.write(f, f"model/{f.name}")
    x = tab[4].test.load().x
    want = load_model(folder).predict_proba(x)
    assert np.abs(load_model(tmp_path / "model.zip").predict_proba(x) - want).max() == 0
    shutil.copytree(folder, tmp_path / "run" / "model")
    assert load_model(tmp_path / "run").info["learner"] == tab[2].name


def test_another_domain_or_shape_is_a_clear_error(tab, tmp_path):
    folder = tab[0]
    image = make_image(tmp_path / "img", unlabelled=True)
    with pytest.raises(FormatError, match=r"image data; the model was trained on tabular data"):
        check_input(folder, image)
    model = load_model(folder)
    width = model.spec.shape[2]
    with pytest.raises(
        FormatError, match=rf"shape \(1, 1, 3, 1\); the model expects \(1, 1, {width}, 1\)"
    ):
        model.predict_proba(np.zeros((2, 1, 1, 3, 1), np.float32))
    other = make_tabular(tmp_path / "wide", n_features=width + 2)
    with pytest.raises(FormatError, match="the model expects"):
        predict_to_csv(folder, other, tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()


def test_a_table_without_a_manifest_needs_the_feature_count(tab, tmp_path):
    folder, _dataset, learner, cal, ds = tab
    x = ds.test.load().x
    width = x.shape[3]
    table = tmp_path / "rows.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(width)] + ["label"])
        w.writerows([[repr(float(v)) for v in row.ravel()] + ["a"] for row in x])
    predict_to_csv(folder, table, tmp_path / "p.csv")
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    # rows count from 1: the first row under the header
    assert rows[0][0] == "row" and [r[0] for r in rows[1:]] == [str(i + 1) for i in range(len(x))]
    got = np.array([[float(v) for v in r[1:-1]] for r in rows[1:]])
    assert np.abs(got - cal.probabilities(learner.predict_proba(x))).max() < 1e-6
    with table.open("w", newline="") as f:
        csv.writer(f).writerows([["a", "b"], [1, 2]])
    with pytest.raises(
        FormatError, match=rf"rows.csv: 2 feature columns; the model expects {width}"
    ):
        check_input(folder, table)


def test_columns_by_name_from_the_manifest(tmp_path):
    from autodl.formats.convert import format_dataset
    from tests.convert.inputs import tabular_rows, write_csv

    header, rows = tabular_rows(90)
    raw = write_csv(tmp_path / "animals.csv", header, rows)
    result = format_dataset(raw, tmp_path / "out", label="species")
    manifest = json.loads(Path(result.manifest).read_text())
    learner, cal, ds = write_model(tmp_path / "model", Path(result.dataset), manifest)
    # the columns in another order, without the label and id columns: matched by name
    order = ["weight", "colour", "length"]
    new = write_csv(
        tmp_path / "new.csv", order, [[r[header.index(c)] for c in order] for r in rows]
    )
    predict_to_csv(tmp_path / "model", new, tmp_path / "p.csv")
    got = list(csv.reader((tmp_path / "p.csv").open()))
    records = list(csv.DictReader(Path(result.records).open()))
    test = {int(r["id"]): int(r["row"]) for r in records if r["split"] == "test"}
    x = ds.test.load()
    want = cal.probabilities(learner.predict_proba(x.x))
    for i, rid in enumerate(x.ids.tolist()):
        row = got[1 + test[rid]]  # the manifest counts rows from 0, predict from 1
        assert row[0] == str(test[rid] + 1)
        assert np.abs(np.array([float(v) for v in row[1:-1]]) - want[i]).max() < 1e-6
    write_csv(tmp_path / "bad.csv", ["length", "weight"], [[1, 2]])
    with pytest.raises(
        FormatError, match=r"bad.csv: no column 'colour'; the model reads the columns"
    ):
        check_input(tmp_path / "model", tmp_path / "bad.csv")
    write_csv(tmp_path / "text.csv", ["length", "colour", "weight"], [["long", "red", 1]])
    with pytest.raises(
        FormatError, match=r"text.csv: row 1 \(line 2\), column 'length': 'long' is not a number"
    ):
        check_input(tmp_path / "model", tmp_path / "text.csv")


def test_incompatible_or_damaged_models_are_refused(tab, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tab[0], folder)
    doc = json.loads((folder / "model.json").read_text())
    doc["versions"]["numpy"] = "1.20.0"
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"saved with numpy 1.20.0 \(installed: "):
        load_model(folder)
    doc["versions"] = export.versions()
    doc["autodl_model"] = 99
    (folder / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="a model of format 99"):
        load_model(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a saved model"):
        load_model(tmp_path / "empty")
    doc["autodl_model"] = export.FORMAT
    (folder / "model.json").write_text(json.dumps(doc))
    (folder / "part-0.pkl").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="a part of the model does not load"):
        load_model(folder)


def test_raw_files_of_another_kind_are_refused(tab, tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(b"x")
    with pytest.raises(FormatError, match="reads a table .CSV. or an AutoDL dataset"):
        check_input(tab[0], tmp_path / "imgs")


def test_check_input_reads_model_json_only(tab, tmp_path):
    """The service's check before queueing: the spec in model.json, no unpickling (a
    damaged part does not matter) and none of the learners' libraries imported."""
    import subprocess
    import sys

    folder = tmp_path / "model"
    shutil.copytree(tab[0], folder)
    (folder / "part-0.pkl").write_bytes(b"garbage")
    code = (
        "import sys; from autodl.model import check_input; "
        f"check_input({str(folder)!r}, {str(tab[1])!r}); "
        "print(sorted(m for m in ('torch', 'lightgbm', 'sklearn', 'scipy.optimize') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    described = load_model(folder, parts=False)
    assert described.spec == tab[4].spec and described.recipe is None
    with pytest.raises(ModelError, match="loaded without its parts"):
        described.predict_proba(tab[4].test.load().x)


@pytest.mark.slow
def test_a_fresh_process_imports_only_what_the_parts_need(tab, tmp_path):
    """A linear model loads without torch or LightGBM, a LightGBM one without torch."""
    import subprocess
    import sys

    write_model(tmp_path / "gbm", tab[1], index=4)
    code = (
        "import sys, autodl; m = autodl.load_model(sys.argv[1]); "
        "print(m.info['learner'], sorted(x for x in ('torch', 'lightgbm', 'sklearn') "
        "if x in sys.modules))"
    )
    for folder, want in ((tab[0], ["sklearn"]), (tmp_path / "gbm", ["lightgbm", "sklearn"])):
        out = subprocess.run(
            [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True
        )
        assert out.stdout.split(" [")[1].strip() == str(want)[1:], out.stdout


def test_a_split_decoded_in_one_pass_is_predicted_in_one_call(tab, tmp_path):
    """Batches of a split already in memory only add each learner call's fixed cost."""
    folder, dataset, learner, cal, ds = tab
    seen = []
    n = predict_to_csv(folder, dataset, tmp_path / "p.csv", progress=lambda d, t: seen.append(d))
    assert seen == [0, n] and n == len(ds.unlabelled)
    rows = list(csv.reader((tmp_path / "p.csv").open()))
    got = np.array([[float(v) for v in r[1:-1]] for r in rows[1:]])
    want = cal.probabilities(learner.predict_proba(ds.unlabelled.load().x))
    assert np.abs(got - want).max() < 1e-6


class _Evil:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _plant(folder: Path, payload: object) -> None:
    import pickle

    (folder / "part-0.pkl").write_bytes(pickle.dumps(payload, protocol=4))


def test_a_pickle_naming_other_globals_is_refused(tab, tmp_path):
    """The restricted unpickler: os.system, eval, getattr, a dunder path, a call of an
    engine function that is not a reconstructor, and torch's nested pickle are refused
    before anything runs; the marker file is never written."""
    import builtins
    import os

    from autodl.engine import export as ex

    folder = tmp_path / "model"
    shutil.copytree(tab[0], folder)
    marker = tmp_path / "pwned"
    cases = [
        (_Evil(os.system, f"touch {marker}"), r"the global (posix|os)\.system"),
        (_Evil(builtins.eval, f"open({str(marker)!r}, 'w')"), r"the global builtins\.eval"),
        (_Evil(getattr, ex.annotate, "__globals__"), r"getattr\(\.\.\., '__globals__'\)"),
        (_Evil(ex.annotate, str(folder), {"x": 1}), r"a call of autodl\.engine\.export\.annotate"),
    ]
    for payload, refused in cases:
        _plant(folder, payload)
        with pytest.raises(ModelError, match=rf"refused to load {refused}"):
            load_model(folder)
        assert not marker.exists()
    # a dotted name reaching a function's globals
    raw = b"\x80\x04\x8c\x14autodl.engine.export\x8c\x10_new.__globals__\x93."
    (folder / "part-0.pkl").write_bytes(raw)
    with pytest.raises(ModelError, match=r"refused to load the global .*_new\.__globals__"):
        load_model(folder)


@pytest.mark.slow
def test_torch_tensors_load_without_torch_pickle(tmp_path):
    """Tensors are saved as safetensors beside the pickle; a storage pickled by torch (a
    crafted file) goes through torch's weights-only loader, which refuses a pickle
    hidden in it; real modules, dtypes and generators load."""
    import io
    import pickle

    import torch

    from autodl.engine import export as ex

    obj = {
        "net": torch.nn.Sequential(torch.nn.Linear(3, 2)),
        "dtype": torch.float16,
        "rng": np.random.default_rng(0),
    }
    pickled, tensors = ex.split(ex.freeze(obj))
    assert tensors is not None and b"torch.storage" not in pickled  # weights: safetensors
    back = ex.thaw(ex.freeze(obj))
    assert torch.equal(back["net"][0].weight, obj["net"][0].weight)
    assert back["dtype"] is torch.float16
    assert back["rng"].random() == np.random.default_rng(0).random()
    import os

    inner = pickle.dumps(_Evil(os.system, f"touch {tmp_path / 'pwned'}"), protocol=2)
    evil = _Evil(torch.storage._load_from_bytes, inner)
    with pytest.raises(pickle.UnpicklingError):
        ex._Unpickler(io.BytesIO(pickle.dumps(evil, protocol=4)), "t").load()
    assert not (tmp_path / "pwned").exists()


@pytest.mark.slow
def test_a_torch_model_saves_its_weights_as_safetensors(tmp_path):
    from autodl.engine import image

    ds = open_dataset(make_image(tmp_path / "img"))
    cnn = next(lr for lr in image.plan(ds.spec, 0) if lr.name.startswith("cnn"))
    data = ds.train.load()
    cnn.fit(data, 2.0)
    cal = calibrate.fit(cnn.predict_proba(data.x), data.labels, multiclass=True)
    recipe = export.Recipe.of([cnn], [cnn.name])
    info = {"learner": cnn.name, "spec": export.spec_json(ds.spec), "max_side": None}
    export.write(tmp_path / "model", recipe.snapshot(), recipe.names, cal, info)
    part = json.loads((tmp_path / "model" / "model.json").read_text())["parts"][0]
    assert part["tensors"] == "part-0.safetensors"
    assert b"torch.storage" not in (tmp_path / "model" / "part-0.pkl").read_bytes()
    x = ds.test.load().x
    got = load_model(tmp_path / "model").predict_proba(x)
    assert np.abs(got - cal.probabilities(cnn.predict_proba(x))).max() < 1e-6


def test_the_split_predicted_is_said(tab, tmp_path):
    """A dataset's split is chosen for the user (unlabelled if any, else test): say which."""
    folder, dataset, *_ = tab
    said: list[str] = []
    predict_to_csv(folder, dataset, tmp_path / "u.csv", say=said.append)
    assert said and said[0].startswith(f"Predicting on the unlabelled split of {dataset.name}:")
    bare = make_tabular(tmp_path / "bare", unlabelled=False)
    said.clear()
    predict_to_csv(folder, bare, tmp_path / "t.csv", say=said.append)
    assert said and said[0].startswith(f"Predicting on the test split of {bare.name} (it has no")


def test_a_folder_or_zip_holding_one_table_is_that_table(tab, tmp_path):
    """What the service extracts from a zip of one CSV (and `autodl submit-predict FILE`)."""
    folder, dataset, *_ = tab
    x = autodl.open_dataset(dataset).test.load().x
    rows = tmp_path / "in" / "rows.csv"
    rows.parent.mkdir()
    with rows.open("w", newline="") as f:
        csv.writer(f).writerows(x.reshape(len(x), -1).tolist())
    direct = tmp_path / "direct.csv"
    predict_to_csv(folder, rows, direct)
    via_folder = tmp_path / "folder.csv"
    predict_to_csv(folder, rows.parent, via_folder)
    assert via_folder.read_text() == direct.read_text()

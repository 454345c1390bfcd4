"""Runs save their model; a fresh process predicts the run's own predictions with it (slow).

Every domain: raw files (or a table) -> `autodl format` (with an unlabelled part) ->
a short run -> ``autodl predict`` in a fresh process on the test split (the run's
last test prediction, 1e-6) and on the raw unlabelled files converted on the fly
(the run's unlabelled probabilities, 1e-6). Then ensembles and refits, a run killed
at the deadline, a prediction that came too late, and ``--no-model``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import autodl
from autodl.formats.convert import format_dataset
from tests.conftest import run_autodl
from tests.convert import inputs

pytestmark = pytest.mark.slow

BUDGET = 8.0


def _raw(kind: str, root: Path) -> tuple[Path, Path, dict]:
    """Labelled raw data, an unlabelled part, and `format_dataset`'s options."""
    train, unl = root / "train", root / "new"
    if kind == "image":
        inputs.write_images(train, per_class=8, exts=("png", "jpg"))
        inputs.write_images(unl, per_class=2, exts=("png", "jpg"))
        return train, unl, {}
    if kind == "speech":
        inputs.write_audio(train, "wav", per_class=8)
        inputs.write_audio(unl, "wav", per_class=2)
        return train, unl, {}
    if kind == "video":
        inputs.write_videos(train, exts=("avi",), per_class=6)
        inputs.write_videos(unl, exts=("avi",), per_class=1)
        return train, unl, {}
    if kind == "text":
        for folder, n in ((train, 10), (unl, 2)):
            for cls in inputs.WORDS:
                (folder / cls).mkdir(parents=True)
                for i in range(n):
                    text = inputs.text_of(cls, i + (100 if folder == unl else 0))
                    (folder / cls / f"doc{i}.txt").write_text(text)
        return train, unl, {}
    header, rows = inputs.tabular_rows(120)
    table = inputs.write_csv(root / "animals.csv", header, rows)
    new_header, new_rows = inputs.tabular_rows(12, seed=5)
    keep = [c for c in new_header if c != "species"]  # the label column left out
    new = inputs.write_csv(
        root / "new.csv", keep, [[r[new_header.index(c)] for c in keep] for r in new_rows]
    )
    return table, new, {"label": "species", "drop": ("id",)}


def _floats(rows: list[list[str]], first: int, last: int | None) -> np.ndarray:
    return np.array([[float(v) for v in r[first:last]] for r in rows])


@pytest.mark.parametrize("kind", ["tabular", "image", "text", "speech", "video"])
def test_a_run_saves_a_model_that_predicts_its_predictions(kind, tmp_path):
    data, new, options = _raw(kind, tmp_path / "raw")
    result = format_dataset(data, tmp_path / "formatted", unlabelled=new, **options)
    out = tmp_path / "run"
    report = autodl.run(result.dataset, out, time_budget=BUDGET)
    ing = report.ingestion
    assert ing.model == out / "model" and (out / "model" / "model.json").is_file()
    doc = json.loads((out / "model" / "model.json").read_text())
    last = ing.predictions[-1]
    assert doc["prediction_index"] == last.index and doc["learner"] == last.learner
    assert doc["manifest"]["domain"] == result.domain

    # the test split, in a fresh process: the run's last test prediction
    got = tmp_path / "test.predict"
    proc = run_autodl(
        "predict", out / "model", result.dataset, "--split", "test", "--format", "predict",
        "--output", got, "--batch-size", "5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = np.loadtxt(last.path, ndmin=2)
    assert np.abs(np.loadtxt(got, ndmin=2) - want).max() < 1e-6

    # the raw unlabelled files (or rows), converted on the fly: the run's probabilities
    proc = run_autodl("predict", out / "model", new, "--output", tmp_path / "new.csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader((tmp_path / "new.csv").open()))
    assert rows[0] == [
        "row" if kind == "tabular" else "path",
        *doc["spec"]["label_names"],
        "top_class",
    ]
    records = [r for r in csv.DictReader(Path(result.records).open()) if r["split"] == "unlabelled"]
    run_rows = np.loadtxt(out / "unlabelled" / f"{ing.task}.predict", ndmin=2)
    if kind == "tabular":
        key = {int(r["row"]): int(r["id"]) for r in records}
        names = [int(r[0]) - 1 for r in rows[1:]]  # predict counts rows from 1, the manifest from 0
    else:
        key = {Path(r["source"]).as_posix(): int(r["id"]) for r in records}
        names = [Path(r[0]).as_posix() for r in rows[1:]]
    assert len(names) == len(run_rows)
    got = _floats(rows[1:], 1, -1)
    want = np.stack([run_rows[_id_row(out, ing.task, key[_match(n, key)])] for n in names])
    assert np.abs(got - want).max() < 1e-6


def _match(name, key):
    """The records manifest names unlabelled files from the unlabelled folder or its parent."""
    if name in key:
        return name
    hits = [k for k in key if isinstance(k, str) and k.endswith("/" + str(name))]
    assert len(hits) == 1, (name, list(key)[:5])
    return hits[0]


def _id_row(out: Path, task: str, record_id: int) -> int:
    """The row of ``record_id`` in the run's unlabelled prediction (its CSV lists the ids)."""
    ids = [int(r["id"]) for r in csv.DictReader((out / "unlabelled" / "predictions.csv").open())]
    return ids.index(record_id)


def test_ensembles_and_refits_reproduce_their_predictions(shared_data, monkeypatch):
    """Each emitted prediction's model, frozen when it is emitted (as the engine's
    process does), gives that prediction again: single learners, ensembles (members
    frozen before they trained on, `Schedule.keep`) and refits. Any ensemble the
    selection finds is emitted here (no margin), so that some are."""
    from autodl.engine import Budget, blend, export
    from autodl.engine import run as engine_run
    from autodl.formats.dataset import open_dataset

    monkeypatch.setattr(blend, "ENSEMBLE_MARGIN", -1.0)
    ds = open_dataset(shared_data / "datasets" / "emailspam")
    test_x = ds.test.load().x
    kinds = set()
    for p in engine_run(ds.train, ds.test, None, Budget(40), seed=0):
        frozen = p.model.snapshot()
        recipe = export.Recipe([(export.thaw(b), w) for b, w in frozen], p.model.names)
        got = p.model.calibration.scores(recipe.raw(test_x))
        assert np.abs(got - p.test).max() < 1e-9, p.learner
        kinds.add("ensemble" if len(frozen) > 1 else "learner")
        if p.note == "refit on all training rows; score from the hold-out":
            kinds.add("refit")
    assert {"ensemble", "learner"} <= kinds, kinds


def test_a_run_killed_at_the_deadline_keeps_its_last_counted_model(tmp_path):
    from autodl.formats.samples import make_digits

    ds = make_digits(tmp_path / "digits")
    report = autodl.run(ds, tmp_path / "run", time_budget=6, engine="tests.model.engines:stubborn")
    ing = report.ingestion
    assert ing.killed and ing.predictions
    doc = json.loads((tmp_path / "run" / "model" / "model.json").read_text())
    assert doc["prediction_index"] == ing.predictions[-1].index
    assert not (tmp_path / "run" / ".models").exists()
    got = autodl.load_model(tmp_path / "run" / "model").predict_proba(ds)  # unlabelled
    from autodl.model import predict_to_csv

    predict_to_csv(tmp_path / "run" / "model", ds, tmp_path / "t", split="test", fmt="predict")
    assert np.abs(np.loadtxt(tmp_path / "t") - np.loadtxt(ing.predictions[-1].path)).max() < 1e-6
    assert len(got) > 0


def test_a_prediction_after_the_deadline_does_not_replace_the_model(tmp_path):
    from autodl.formats.samples import make_tabular
    from autodl.ingestion import ingest

    ds = make_tabular(tmp_path / "tab", unlabelled=True)
    res = ingest(ds, tmp_path / "out", 6, engine="tests.model.engines:late", grace=1)
    assert len(res.predictions) == 1 and res.killed
    doc = json.loads((tmp_path / "out" / "model" / "model.json").read_text())
    assert doc["prediction_index"] == 0
    from autodl.model import predict_to_csv

    predict_to_csv(tmp_path / "out" / "model", ds, tmp_path / "t", split="test", fmt="predict")
    assert np.abs(np.loadtxt(tmp_path / "t") - np.loadtxt(res.predictions[0].path)).max() < 1e-6


def test_no_model(tmp_path):
    from autodl.formats.samples import make_tabular

    ds = make_tabular(tmp_path / "tab")
    proc = run_autodl("run", ds, "--time-budget", "3", "--output", tmp_path / "run", "--no-model")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "predictions").is_dir()
    assert not (tmp_path / "run" / "model").exists()
    assert not (tmp_path / "run" / ".models").exists()
    proc = run_autodl("predict", tmp_path / "run", ds, "--output", tmp_path / "p.csv")
    assert proc.returncode == 1 and "not a saved model" in proc.stderr


def test_the_last_counted_model_is_kept_not_the_newest(tmp_path):
    """The engine's process may have written the model of a prediction that came too
    late (``.models/1``): the run keeps the last counted one's (``.models/0``)."""
    from autodl.engine import calibrate, export
    from autodl.ingestion import IngestionResult, PredictionRecord, _keep_model

    staging = tmp_path / ".models"
    for k in (0, 1):
        info = {"prediction_index": k, "spec": {}, "learner": f"m{k}"}
        export.write(staging / str(k), [(b"x", 1.0)], [f"m{k}"], calibrate.identity(2, True), info)
    result = IngestionResult(tmp_path, "t", 10, 0)
    result.predictions.append(PredictionRecord(0, 0, 0, "m0", None, "", tmp_path / "p"))

    class Log:
        lines: list[str] = []

        def log(self, line):
            self.lines.append(line)

    kept = _keep_model(staging, tmp_path, result, Log())
    assert kept == tmp_path / "model" and not staging.exists()
    assert json.loads((kept / "model.json").read_text())["prediction_index"] == 0


def test_a_run_on_the_zip_alone_matches_a_tables_columns_by_name(tmp_path):
    """The zip `autodl format` makes (what users upload to the service) holds the part of
    the manifest a model needs: a run on that zip alone, with no manifest beside it,
    still takes a CSV's columns by name, not by position."""
    table, new, options = _raw("tabular", tmp_path / "raw")
    result = format_dataset(table, tmp_path / "formatted", **options)
    alone = tmp_path / "upload" / result.zip.name
    alone.parent.mkdir()
    alone.write_bytes(result.zip.read_bytes())
    assert not list(alone.parent.glob("*.manifest.json"))
    out = tmp_path / "run"
    autodl.run(alone, out, time_budget=BUDGET)
    doc = json.loads((out / "model" / "model.json").read_text())
    assert doc["manifest"]["details"]["features"], doc["manifest"]

    rows = list(csv.reader(new.open()))
    shuffled = tmp_path / "reordered.csv"
    order = list(reversed(range(len(rows[0]))))
    with shuffled.open("w", newline="") as f:
        csv.writer(f).writerows([[r[i] for i in order] for r in rows])
    model = autodl.load_model(out / "model")
    assert np.array_equal(model.predict_proba(new), model.predict_proba(shuffled))

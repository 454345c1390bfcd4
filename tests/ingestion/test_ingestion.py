"""Ingestion: the engine in a child process, the official prediction folder, the hard deadline."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from autodl.errors import IngestionError
from autodl.formats.dataset import open_dataset
from autodl.ingestion import ingest
from autodl.scoring.curve import read_end_file, read_prediction_folder, read_start_file
from autodl.scoring.metrics import read_array

ENGINES = "tests.ingestion.engines"


@pytest.mark.slow
def test_predictions_are_written_in_the_official_layout(tabular_dataset, tmp_path):
    ds_path, ds = tabular_dataset
    res = ingest(ds_path, tmp_path / "out", 30, engine=f"{ENGINES}:quick")
    assert res.success and res.error is None
    assert [p.learner for p in res.predictions] == ["quick-0", "quick-1"]
    pred_dir = tmp_path / "out" / "predictions"
    start = read_start_file(pred_dir / "start.txt")
    assert start["task_name"] == ds.name
    assert float(start["time_budget"]) == 30
    assert start["ingestion_pid"] == 0  # never a live pid: the official scorer kills that process
    for p in res.predictions:
        assert start[p.index] == pytest.approx(p.timestamp)
        assert 0 <= p.elapsed < 30
        arr = read_array(pred_dir / f"{ds.name}.predict_{p.index}")
        assert arr.shape == (len(ds.test), ds.spec.output_dim)
    end = read_end_file(pred_dir / "end.txt")
    assert end["ingestion_success"] == 1
    folder = read_prediction_folder(pred_dir)
    assert len(folder.files) == 2
    # No temp file is left behind by the atomic writes.
    assert not [f for f in pred_dir.iterdir() if f.name.startswith(".")]
    events = [
        json.loads(line)["event"]
        for line in (tmp_path / "out" / "run.jsonl").read_text().splitlines()
    ]
    assert events[0] == "start" and events[-1] == "end" and events.count("prediction") == 2
    assert "quick prediction 1" in (tmp_path / "out" / "engine.log").read_text()


@pytest.mark.slow
def test_unlabelled_predictions_are_handed_back_with_ids_and_label_names(tabular_dataset, tmp_path):
    ds_path, ds = tabular_dataset
    assert ds.unlabelled is not None
    res = ingest(ds_path, tmp_path / "out", 30, engine=f"{ENGINES}:quick")
    folder = tmp_path / "out" / "unlabelled"
    arr = read_array(folder / f"{ds.name}.predict")
    assert arr.shape == (len(ds.unlabelled), ds.spec.output_dim)
    np.testing.assert_allclose(arr, res.unlabelled, rtol=1e-6)
    lines = (folder / "predictions.csv").read_text().splitlines()
    names = ds.spec.label_names or [f"class_{i}" for i in range(ds.spec.output_dim)]
    assert lines[0] == "id," + ",".join(names)
    assert len(lines) == 1 + len(ds.unlabelled)
    ids = [int(line.split(",")[0]) for line in lines[1:]]
    assert ids == [ex.id for ex in ds.unlabelled]


@pytest.mark.slow
def test_a_crashing_engine_keeps_its_predictions_and_says_why(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    res = ingest(ds_path, tmp_path / "out", 30, engine=f"{ENGINES}:crash_after_one")
    assert not res.success
    assert "exploded on purpose" in res.error
    assert "RuntimeError" in res.error_traceback
    assert len(res.predictions) == 1 and res.predictions[0].path.exists()
    assert read_end_file(tmp_path / "out" / "predictions" / "end.txt")["ingestion_success"] == 0
    assert "exploded on purpose" in (tmp_path / "out" / "engine.log").read_text()


@pytest.mark.slow
def test_an_engine_that_ignores_the_deadline_is_killed(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    t0 = time.time()
    res = ingest(ds_path, tmp_path / "out", 2.0, engine=f"{ENGINES}:hang_after_one", grace=1.0)
    assert res.killed
    assert len(res.predictions) == 1
    # Start-up (spawn + imports) is not timed; the run itself ends at the deadline + grace.
    assert res.end_time - res.start_time < 2.0 + 1.0 + 2.0
    assert time.time() - t0 < 60
    assert res.success  # running out of time is not a failure: the predictions made count


@pytest.mark.slow
def test_nothing_after_the_deadline_is_counted(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    res = ingest(ds_path, tmp_path / "out", 2.0, engine=f"{ENGINES}:late_prediction", grace=1.0)
    assert [p.learner for p in res.predictions] == ["in-time"]
    assert all(p.elapsed <= 2.0 for p in res.predictions)
    files = sorted((tmp_path / "out" / "predictions").glob("*.predict_*"))
    assert len(files) == 1


@pytest.mark.slow
def test_a_prediction_of_the_wrong_shape_fails_the_run_clearly(tabular_dataset, tmp_path):
    ds_path, ds = tabular_dataset
    res = ingest(ds_path, tmp_path / "out", 30, engine=f"{ENGINES}:wrong_shape")
    assert not res.success
    assert f"expected ({len(ds.test)}, {ds.spec.output_dim})" in res.error
    assert res.predictions == []


@pytest.mark.slow
def test_an_engine_without_predictions_fails(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    res = ingest(ds_path, tmp_path / "out", 30, engine=f"{ENGINES}:never_predicts")
    assert not res.success and "no prediction" in res.error


@pytest.mark.slow
def test_the_clock_starts_after_the_engine_is_imported(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    t0 = time.time()
    res = ingest(ds_path, tmp_path / "out", 30, engine="tests.ingestion.slow_import_engine:run")
    assert res.start_time - t0 >= 2.0  # the 2 s import happened before the start
    assert res.predictions[0].elapsed < 2.0  # and did not count against the budget


def test_an_engine_that_cannot_be_imported_is_an_error(tabular_dataset, tmp_path):
    ds_path, _ = tabular_dataset
    with pytest.raises(IngestionError, match="could not be loaded"):
        ingest(ds_path, tmp_path / "out", 5, engine="tests.ingestion.no_such_module:run")


def test_a_non_positive_budget_is_refused(tabular_dataset, tmp_path):
    with pytest.raises(IngestionError, match="must be positive"):
        ingest(tabular_dataset[0], tmp_path / "out", 0)


@pytest.mark.slow
def test_warm_up_runs_before_the_clock_with_the_datasets_spec(
    tabular_dataset, tmp_path, monkeypatch
):
    ds_path, _ = tabular_dataset
    record = tmp_path / "warm.txt"
    monkeypatch.setenv("WARM_ENGINE_FILE", str(record))
    res = ingest(ds_path, tmp_path / "out", 30, engine="tests.ingestion.warm_engine:run", seed=7)
    name, output_dim, seed, finished = record.read_text().split()
    spec = open_dataset(ds_path).spec
    assert (name, int(output_dim), int(seed)) == (spec.name, spec.output_dim, 7)
    assert float(finished) <= res.start_time  # warmed before the clock started
    assert res.error is None and res.predictions
    assert res.predictions[0].elapsed < 1.5  # the 1.5 s warm-up did not count
    log = (tmp_path / "out" / "engine.log").read_text()
    assert "warmed for the test" in log  # what warm_up returned is logged


@pytest.mark.slow
def test_what_the_engine_prints_never_reaches_the_callers_stdout(tabular_dataset, tmp_path):
    import subprocess
    import sys

    ds_path, _ = tabular_dataset
    code = (
        "from autodl.ingestion import ingest\n"
        f"r = ingest({str(ds_path)!r}, {str(tmp_path / 'out')!r}, 20,"
        " engine='tests.ingestion.engines:chatty')\n"
        "print('predictions', len(r.predictions))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "predictions 2\n"  # only the caller's own output
    assert "python chatter" in proc.stderr and "C-level chatter" in proc.stderr

"""Issue 15, point 2: the engine gets its threads as an argument, and one run opens its
dataset once in this process (the engine's process opens it once more, itself)."""

from __future__ import annotations

import pytest

from autodl import pipeline
from autodl.formats import dataset as dataset_module
from autodl.ingestion import ingest
from autodl.settings import Settings

ENGINES = "tests.ingestion.engines"


def _threads_line(out) -> list[str]:
    log = (out / "engine.log").read_text()
    return next(line for line in log.splitlines() if "THREADS" in line).split()[-2:]


@pytest.mark.slow
def test_the_thread_count_reaches_the_engine_as_an_argument(tabular_dataset, tmp_path):
    res = ingest(
        tabular_dataset[0], tmp_path / "two", 30, engine=f"{ENGINES}:report_threads", threads=2
    )
    assert res.success
    # the argument, and the native pools of its process sized from it
    assert _threads_line(tmp_path / "two") == ["2", "2"]
    res = ingest(tabular_dataset[0], tmp_path / "all", 30, engine=f"{ENGINES}:report_threads")
    assert res.success and _threads_line(tmp_path / "all")[0] == "None"  # every core


@pytest.fixture
def opened(monkeypatch):
    """How many times this process opens a dataset."""
    calls = []
    real = dataset_module.open_dataset

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(dataset_module, "open_dataset", counting)
    return calls


@pytest.mark.slow
def test_a_run_opens_its_dataset_once(tabular_dataset, tmp_path, opened):
    settings = Settings(time_budget=30.0)
    path, ds = tabular_dataset
    report = pipeline.run(path, tmp_path / "a", engine=f"{ENGINES}:quick", settings=settings)
    assert report.success and len(opened) == 1  # pipeline.run, then passed down
    report = pipeline.run(ds, tmp_path / "b", engine=f"{ENGINES}:quick", settings=settings)
    assert report.success and len(opened) == 1  # an open Dataset is not opened again
    assert report.score is not None and report.dataset["name"] == ds.name

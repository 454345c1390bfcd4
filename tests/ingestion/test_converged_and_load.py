"""Issue 13, points 7 and 8: an engine that ends by itself is typed as converged; every run
records how busy the machine was."""

from __future__ import annotations

import json
import os

import pytest

from autodl.ingestion import ingest

ENGINES = "tests.ingestion.engines"


@pytest.mark.slow
def test_an_engine_that_ends_early_is_typed_converged(tabular_dataset, tmp_path):
    res = ingest(tabular_dataset[0], tmp_path / "out", 30, engine=f"{ENGINES}:quick")
    assert res.success and res.converged  # "done" long before the deadline
    assert 0 <= res.converged_at < 10 and res.duration < 25
    log = (tmp_path / "out" / "engine.log").read_text()
    assert "the engine finished early: converged at" in log


@pytest.mark.slow
def test_an_engine_stopped_at_the_deadline_is_not_converged(tabular_dataset, tmp_path):
    res = ingest(
        tabular_dataset[0], tmp_path / "out", 2, engine=f"{ENGINES}:hang_after_one", grace=0.5
    )
    assert res.killed and not res.converged and res.converged_at is None


@pytest.mark.slow
def test_the_machine_load_is_recorded(tabular_dataset, tmp_path):
    res = ingest(tabular_dataset[0], tmp_path / "out", 30, engine=f"{ENGINES}:brief", threads=1)
    load = res.load
    assert load is not None
    assert load.cores == len(os.sched_getaffinity(0)) and load.threads == 1
    assert 0 <= load.load_start < 10 * os.cpu_count() and load.load_mean >= 0
    assert 0.0 <= load.other_cpu <= 1.0 and load.cpu_available == round(1 - load.other_cpu, 3)
    events = [json.loads(x) for x in (tmp_path / "out" / "run.jsonl").read_text().splitlines()]
    recorded = [e for e in events if e["event"] == "load"]
    assert recorded and recorded[0]["cores"] == load.cores
    assert "cpu_available" in recorded[0] and "load_mean" in recorded[0]
    assert "of the CPU free for the engine" in load.text()


def test_the_load_meter_keeps_the_most_other_jobs_it_saw_and_survives_a_failing_count():
    from autodl import _load

    counts = iter([1, 3, 2])
    meter = _load.LoadMeter(os.getpid(), 1, every=0.0, others=lambda: next(counts))
    meter._others_at -= _load.OTHERS_EVERY  # as if ten seconds had passed, twice
    meter.sample()
    meter._others_at -= _load.OTHERS_EVERY
    meter.sample()
    load = meter.finish()
    assert load.other_jobs == 3 and "3 other jobs running beside it at most" in load.text()
    assert load.to_json()["other_jobs"] == 3

    def broken() -> int:
        raise RuntimeError("database gone")

    assert _load.LoadMeter(os.getpid(), 1, others=broken).finish().other_jobs is None
    plain = _load.LoadMeter(os.getpid(), 1).finish()  # autodl run: no service, no count
    assert plain.other_jobs is None and "other job" not in plain.text()

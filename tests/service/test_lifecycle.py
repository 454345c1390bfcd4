"""The job lifecycle's seams: the pipeline's stage callback (not a display event) moves a
job to scoring, the outcome is typed, one `Heartbeat` writes beats, one /proc walker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from autodl import pipeline
from autodl.ingestion import IngestionResult, Outcome, PredictionRecord, Progress
from autodl.service import jobs as J
from autodl.service import processes
from autodl.service.db import Database
from autodl.service.jobs.runner import run_job
from autodl.service.models import Job, User, WorkerNode


@pytest.fixture
def db(settings):
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    yield db
    db.dispose()


def _new_job(db) -> int:
    with db.session() as s:
        user = User(name="ann", password_hash="x")
        s.add(user)
        s.flush()
        job = J.create_job(
            s, user, name="t", time_budget=3, report={"name": "tiny"}, stored_bytes=0
        )
        return job.id


def _state(db, job_id) -> str:
    with db.session() as s:
        return s.get(Job, job_id).state


def _result(out: Path, n: int, **fields) -> IngestionResult:
    result = IngestionResult(out, "tiny", 3.0, 0.0, end_time=1.0, **fields)
    result.predictions = [
        PredictionRecord(k, 0.5, 0.5, "linear", 0.9, "", out / f"p{k}") for k in range(n)
    ]
    return result


def test_the_stage_callback_moves_the_job_to_scoring_not_the_end_event(
    db, settings, monkeypatch, tmp_path
):
    job_id = _new_job(db)
    seen = []

    def fake_run(dataset, output_dir, budget, *, on_progress, on_stage, **_):
        on_stage(pipeline.Stage.RUNNING)
        on_progress(Progress(0.5, 2.5, 1, None, "prediction"))
        on_progress(Progress(3.0, 0.0, 1, None, "end", "the engine finished"))
        seen.append(_state(db, job_id))  # a display event changes nothing
        on_stage(pipeline.Stage.SCORING)
        seen.append(_state(db, job_id))
        return pipeline.RunReport(tmp_path, {}, _result(tmp_path, 1, success=True), None)

    monkeypatch.setattr(pipeline, "run", fake_run)
    assert run_job(job_id, settings) == "finished"
    assert seen == ["running", "scoring"]
    with db.session() as s:
        job = s.get(Job, job_id)
        assert [e.state for e in job.events] == ["queued", "running", "scoring", "finished"]
        assert job.events[2].message == "1 prediction(s) made; scoring."
        assert job.n_predictions == 1


def test_the_outcome_is_typed(tmp_path):
    assert _result(tmp_path, 2, success=True).outcome == Outcome.FINISHED
    converged = _result(tmp_path, 2, success=True, converged=True, converged_at=1.0)
    assert converged.outcome == Outcome.CONVERGED
    assert _result(tmp_path, 1, error="boom", failure="crash").outcome == Outcome.STOPPED_EARLY
    assert _result(tmp_path, 0, error="none", failure="timeout").outcome == Outcome.FAILED
    assert Outcome.FAILED == "failed"  # a StrEnum: JSON and logs show its value


def test_one_heartbeat_beats_on_any_row_and_stops(db):
    with db.session() as s:
        s.add(WorkerNode(name="w1", host="h"))
    row = update(WorkerNode).where(WorkerNode.name == "w1")
    beat = J.Heartbeat(db, row, 0.05, stopped_at=None).start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with db.session() as s:
                if s.query(WorkerNode).one().heartbeat_at is not None:
                    break
            time.sleep(0.05)
    finally:
        beat.stop()
    with db.session() as s:
        assert s.query(WorkerNode).one().heartbeat_at is not None
    assert not beat._thread.is_alive()


def test_the_proc_walker_finds_a_job_process_and_kills_its_group():
    # A stand-in whose command line names the runner module, in a group of its own.
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", processes.RUNNER],
        start_new_session=True,
    )
    try:
        table = processes.process_table()
        assert table is not None and table[child.pid] == (os.getpid(), child.pid)
        assert processes.is_job_process(child.pid)
        assert child.pid in processes.job_processes(os.getpid())
        assert not processes.is_job_process(os.getpid())
        processes.kill_group(child.pid)
        assert child.wait(10) < 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

"""Prediction jobs through Celery: the web app on PostgreSQL + Redis, one `autodl worker`
(its own working directory, the shared storage root). A real short run saves its model;
`autodl submit-predict` uploads new data, the worker runs the prediction job, and the CSV
it downloads equals `autodl.model.predict_to_csv`'s on the same data."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import select

from autodl.engine.protocol import DEFAULT_ENGINE
from autodl.service.db import Database
from autodl.service.models import Job, JobEvent
from tests.scaleout.conftest import WorkerProc
from tests.service.conftest import LiveServer


@pytest.mark.slow
def test_a_prediction_job_runs_on_a_worker(scale_settings, tabular_zip, tabular_dir, tmp_path):
    from autodl.model import predict_to_csv

    settings = replace(
        scale_settings, engine=DEFAULT_ENGINE, data_dir=tmp_path / "shared", predict_budget=120
    )
    server = LiveServer(settings, tmp_path / "server.log").start()
    worker = WorkerProc(settings, "w1", tmp_path / "machine1")
    db = Database(settings.sqlalchemy_url)
    try:
        assert server.cli("user", "create", "ann", input="password123\n").returncode == 0
        token = server.cli("token", "create", "ann").stdout.strip()
        common = ["--server", server.url, "--token", token]
        out = server.cli("submit", str(tabular_zip), "--time-budget", "5", "--wait", *common)
        assert out.returncode == 0, out.stderr
        with db.session() as s:
            run = s.scalar(select(Job).where(Job.kind == "run"))
            assert run.state == "finished" and run.node == "w1"

        csv_out = tmp_path / "predictions.csv"
        out = server.cli(
            "submit-predict",
            str(run.id),
            str(tabular_dir),
            "--output",
            str(csv_out),
            *common,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr + out.stdout
        assert "row(s) predicted" in out.stdout
        want = tmp_path / "want.csv"
        predict_to_csv(
            settings.data_dir / "jobs" / str(run.id) / "results" / "model", tabular_dir, want
        )
        assert csv_out.read_bytes() == want.read_bytes()
        with db.session() as s:
            p = s.scalar(select(Job).where(Job.kind == "predict"))
            assert p.parent_id == run.id and p.state == "finished" and p.node == "w1"
            states = [e.state for e in s.scalars(select(JobEvent).where(JobEvent.job_id == p.id))]
            assert states == ["queued", "running", "finished"]

        # Wrong data: refused with the model's words before anything reaches the broker.
        wrong = tmp_path / "wrong"
        wrong.mkdir()
        (wrong / "new.csv").write_text("colour,size\nred,1\n")
        out = server.cli("submit-predict", str(run.id), str(wrong), *common)
        assert out.returncode == 1 and "does not fit this model" in out.stderr
        with db.session() as s:
            assert len(s.scalars(select(Job).where(Job.kind == "predict")).all()) == 1
    finally:
        worker.stop()
        server.stop()
        db.dispose()

"""The web app on PostgreSQL + Redis with two `autodl worker` processes (separate working
directories, one shared storage root): six jobs through the API spread over both workers and
finish; one worker is SIGKILLed mid-job and its job is run again by the other; no job is lost
or run twice (checked in every job's state history)."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from autodl.service.db import Database
from autodl.service.models import Job, JobEvent, WorkerNode
from tests.scaleout.conftest import WorkerProc
from tests.service.conftest import LiveServer, bearer, wait_for

STEADY = "tests.service.engines:steady"


@pytest.mark.slow
def test_six_jobs_two_workers_one_killed(scale_settings, tabular_zip, tmp_path):
    settings = replace(scale_settings, engine=STEADY, data_dir=tmp_path / "shared")
    server = LiveServer(settings, tmp_path / "server.log").start()
    workers = [WorkerProc(settings, f"w{i}", tmp_path / f"machine{i}") for i in (1, 2)]
    db = Database(settings.sqlalchemy_url)
    try:
        out = server.cli("user", "create", "ann", input="password123\n")
        assert out.returncode == 0, out.stderr
        token = server.cli("token", "create", "ann").stdout.strip()
        ids = []
        with httpx.Client(base_url=server.url, headers=bearer(token), timeout=30) as http:
            for k in range(6):
                with open(tabular_zip, "rb") as f:
                    r = http.post(
                        "/api/v1/jobs",
                        files={"file": ("t.zip", f, "application/zip")},
                        data={"name": f"job{k}", "time_budget": "3"},
                    )
                assert r.status_code in (200, 201), r.text
                ids.append(r.json()["id"])

            def running_on(node):
                with db.session() as s:
                    return s.scalar(select(Job.id).where(Job.node == node, Job.state == "running"))

            # Both machines take work; then w1 dies in the middle of a job.
            wait_for(lambda: running_on("w2"), timeout=60)
            victim = wait_for(lambda: running_on("w1"), timeout=60)
            time.sleep(1.0)
            killed_at = time.monotonic()
            workers[0].kill_machine()

            def all_ended():
                states = [http.get(f"/api/v1/jobs/{i}").json()["state"] for i in ids]
                return (
                    states
                    if all(s in ("finished", "failed", "cancelled") for s in states)
                    else None
                )

            states = wait_for(all_ended, timeout=120, interval=0.5)
            assert states == ["finished"] * 6, states

        with db.session() as s:
            jobs = {j.id: j for j in s.scalars(select(Job).where(Job.id.in_(ids)))}
            events = {
                i: [
                    e.state
                    for e in s.scalars(
                        select(JobEvent).where(JobEvent.job_id == i).order_by(JobEvent.id)
                    )
                ]
                for i in ids
            }
            nodes = {w.name: w for w in s.scalars(select(WorkerNode))}
        # The killed job: re-queued once by the reaper, then run by w2 to the end.
        assert events[victim] == ["queued", "running", "queued", "running", "scoring", "finished"]
        assert jobs[victim].node == "w2" and jobs[victim].requeues == 1
        # Every other job ran exactly once; both workers ran jobs (w1: the victim, at least).
        for i in ids:
            if i != victim:
                assert events[i] == ["queued", "running", "scoring", "finished"], (i, events[i])
        assert nodes["w2"].jobs_done >= 5 and nodes["w2"].devices == "CPU"
        print(f"victim restarted {time.monotonic() - killed_at:.1f} s after the kill (upper bound)")
    finally:
        for w in workers:
            w.stop()
        server.stop()
        db.dispose()

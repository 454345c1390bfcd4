"""The embedded supervisor: one job at a time, cancel and time limit kill the process group,
and a server restart re-queues running jobs once, then fails them with a reason."""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import replace

import httpx
import pytest

from autodl.service import jobs as J
from autodl.service.db import Database
from autodl.service.dispatch.embedded import Supervisor
from autodl.service.models import Job, User
from autodl.service.storage import Storage
from tests.service.conftest import LiveServer, bearer, wait_for


@pytest.fixture
def make(settings, tabular_dir):
    made = []

    def _make(**changes):
        s = replace(settings, **changes)
        db = Database(s.sqlalchemy_url)
        db.upgrade()
        storage = Storage(s.data_dir)
        with db.session() as session:
            user = session.query(User).filter_by(name="ann").one_or_none()
            if user is None:
                session.add(User(name="ann", password_hash="x"))

        def new_job(budget=3):
            with db.session() as session:
                job = J.create_job(
                    session,
                    session.query(User).filter_by(name="ann").one(),
                    name="t",
                    time_budget=budget,
                    report={"name": "tinytabular"},
                    stored_bytes=0,
                )
                shutil.copytree(tabular_dir, storage.dataset_dir(job.id))
                return job.id

        sup = Supervisor(s, db, storage)
        made.append((sup, db))
        return sup, db, new_job

    yield _make
    for sup, db in made:
        sup.stop()
        db.dispose()


def get(db, job_id) -> Job:
    with db.session() as s:
        job = s.get(Job, job_id)
        _ = job.events
        return job


@pytest.mark.slow
def test_jobs_run_one_at_a_time_in_child_processes(make):
    sup, db, new_job = make()
    a, b = new_job(), new_job()
    sup.start()
    wait_for(lambda: get(db, b).state == "finished", timeout=60)
    ja, jb = get(db, a), get(db, b)
    assert ja.state == "finished" and ja.ended_at <= jb.started_at
    assert ja.worker.split(":")[-1] != str(os.getpid())  # it ran in a child process
    wait_for(lambda: sup.children == {}, timeout=10)


@pytest.mark.slow
def test_two_workers_run_two_jobs_at_once(make):
    sup, db, new_job = make(workers=2, engine="tests.service.engines:steady")
    a, b = new_job(budget=3), new_job(budget=3)
    sup.start()
    assert wait_for(lambda: get(db, a).state == get(db, b).state == "running", timeout=30)
    wait_for(lambda: get(db, b).state == "finished" and get(db, a).state == "finished", timeout=60)
    ja, jb = get(db, a), get(db, b)
    # The runs overlapped in time (one worker would run them one after the other), in two
    # different child processes.
    spans = [(ja.started_at, ja.ended_at), (jb.started_at, jb.ended_at)]
    assert ja.started_at < jb.ended_at and jb.started_at < ja.ended_at, spans
    assert ja.worker != jb.worker, (ja.worker, jb.worker)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


@pytest.mark.slow
def test_cancel_kills_a_running_job(make):
    sup, db, new_job = make(engine="tests.service.engines:steady")
    job_id = new_job(budget=60)
    sup.start()
    wait_for(lambda: get(db, job_id).state == "running", timeout=30)
    pid = sup.children[job_id].proc.pid
    with db.session() as s:
        assert J.cancel(s, s.get(Job, job_id))
    sup.notify(job_id)
    wait_for(lambda: job_id not in sup.children, timeout=10)
    assert not _alive(pid)
    job = get(db, job_id)
    assert job.state == "cancelled" and not job.quota_refunded


@pytest.mark.slow
def test_the_time_limit_kills_a_stuck_job(make):
    sup, db, new_job = make(
        engine="tests.service.hang_import_engine:run", grace_seconds=0.5, job_margin_seconds=1.5
    )
    job_id = new_job(budget=1)
    sup.start()
    wait_for(lambda: get(db, job_id).state == "failed", timeout=30)
    job = get(db, job_id)
    assert (
        "longer than its time limit" in job.reason
        and job.fault == "platform"
        and job.quota_refunded
    )


def test_recovery_requeues_once_then_fails(make):
    sup, db, new_job = make()
    job_id = new_job()
    dead = f"{socket.gethostname()}:999999999"
    with db.session() as s:
        J.set_state(s, s.get(Job, job_id), "running", worker=dead)
    sup.recover()
    job = get(db, job_id)
    assert job.state == "queued" and job.requeues == 1 and "restarted" in job.events[-1].message
    with db.session() as s:
        J.set_state(s, s.get(Job, job_id), "running", worker=dead)
    sup.recover()
    job = get(db, job_id)
    assert job.state == "failed" and job.fault == "platform" and "restarted twice" in job.reason


@pytest.mark.slow
def test_a_killed_server_takes_its_job_down_and_reruns_it_on_restart(
    settings, tmp_path, tabular_zip
):
    """SIGKILL the real server mid-job: the job process dies with it; the next start re-queues and finishes it."""
    s = replace(settings, engine="tests.service.engines:steady")
    server = LiveServer(s, tmp_path / "server.log").start()
    try:
        token = add_user_via_db(s, "ann")
        with open(tabular_zip, "rb") as f:
            r = httpx.post(
                server.url + "/api/v1/jobs",
                headers=bearer(token),
                files={"file": ("d.zip", f)},
                data={"time_budget": "4"},
                timeout=30,
            )
        job_id = r.json()["id"]

        def running():
            j = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer(token)).json()
            return j["state"] == "running" and j

        wait_for(running, timeout=30, interval=0.2)
        db = Database(s.sqlalchemy_url)
        worker_pid = int(get(db, job_id).worker.rsplit(":", 1)[1])
        server.kill()
        wait_for(lambda: not _alive(worker_pid), timeout=10)  # it noticed its parent died
        server.start()
        job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer(token)).json()
        assert job["state"] in ("queued", "running", "scoring", "finished")
        wait_for(
            lambda: (
                httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer(token)).json()[
                    "state"
                ]
                == "finished"
            ),
            timeout=60,
            interval=0.3,
        )
        job = httpx.get(f"{server.url}/api/v1/jobs/{job_id}", headers=bearer(token)).json()
        states = [e["state"] for e in job["events"]]
        assert states == ["queued", "running", "queued", "running", "scoring", "finished"]
        assert "restarted" in job["events"][2]["message"]
        db.dispose()
    finally:
        server.stop()


def add_user_via_db(settings, name):
    from autodl.service import auth

    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    try:
        with db.session() as s:
            user = auth.create_user(s, name, "password123")
            return auth.create_token(s, user, "t")[1]
    finally:
        db.dispose()


@pytest.mark.slow
def test_a_jobs_engine_runs_confined(make, settings):
    """The job process keeps the database URL it needs; its engine gets no secret, the
    automatic memory limit, the file-size limit and the kernel's first place to be killed."""
    import json

    from autodl import _confine

    sup, db, new_job = make(
        engine="tests.ingestion.engines:report_confinement", job_file_bytes=3 * 1024**3
    )
    job_id = new_job(budget=3)
    sup.start()
    wait_for(lambda: get(db, job_id).state == "finished", timeout=60)
    log = (Storage(settings.data_dir).results_dir(job_id) / "engine.log").read_text()
    facts = json.loads(log.split("CONFINEMENT ", 1)[1].splitlines()[0])
    for name in ("AUTODL_SECRET_KEY", "AUTODL_DATABASE_URL", "AUTODL_BROKER_URL"):
        assert name not in facts["proc_environ"]
    assert "AUTODL_JOB_FILE_BYTES" in facts["proc_environ"]  # other settings travel
    assert facts["oom_score_adj"] == 1000 and facts["parent_oom_score_adj"] == 900
    assert facts["fsize"] == 3 * 1024**3
    assert facts["as"] == _confine.job_memory_bytes(0, settings.workers)

"""PostgreSQL through the same models: Alembic migrations (`autodl db upgrade`), the job
state machine's compare-and-set, `run_job` idempotence and the heartbeat reaper."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import inspect, select, update

from autodl.service import jobs as J
from autodl.service.db import Database, current_revision, upgrade
from autodl.service.dispatch.celery import CeleryDispatcher, time_limit
from autodl.service.dispatch.worker import slot_devices
from autodl.service.jobs.runner import run_job
from autodl.service.models import Job, JobEvent, User, utcnow
from autodl.service.storage import Storage
from tests.service.conftest import ROOT

#: the newest migration (each file is named after its revision)
HEAD = max(p.name[:4] for p in (ROOT / "autodl/service/migrations/versions").glob("0*.py"))


@pytest.mark.slow
def test_autodl_db_upgrade_on_postgresql(scale_settings, pg_url):
    env = scale_settings.child_environ()
    out = subprocess.run(
        [sys.executable, "-m", "autodl", "db", "upgrade"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert HEAD in out.stdout and current_revision(pg_url) == HEAD
    db = Database(pg_url)
    try:
        tables = set(inspect(db.engine).get_table_names())
        assert {"users", "api_tokens", "jobs", "job_events", "workers"} <= tables
        columns = {c["name"] for c in inspect(db.engine).get_columns("jobs")}
        assert {"node", "dispatched_at", "redispatches", "handbacks"} <= columns
        assert {"kind", "parent_id", "dataset_hash"} <= columns  # 0005, 0006
    finally:
        db.dispose()
    # Down to the first revision and up again: both directions run on PostgreSQL.
    from alembic import command

    from autodl.service.db import alembic_config

    command.downgrade(alembic_config(pg_url), "0001")
    assert current_revision(pg_url) == "0001"
    upgrade(pg_url)
    assert current_revision(pg_url) == HEAD


def _db_with_job(settings, tabular_dir, budget=3):
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(settings.data_dir)
    with db.session() as s:
        user = User(name="ann", password_hash="x")
        s.add(user)
        s.flush()
        job = J.create_job(
            s, user, name="t", time_budget=budget, report={"name": "t"}, stored_bytes=0
        )
        job_id = job.id
    import shutil

    shutil.copytree(tabular_dir, storage.dataset_dir(job_id))
    return db, job_id


def _history(db, job_id):
    with db.session() as s:
        return [
            e.state
            for e in s.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            )
        ]


@pytest.mark.slow
def test_run_job_runs_once_on_postgresql(scale_settings, tabular_dir):
    db, job_id = _db_with_job(scale_settings, tabular_dir)
    try:
        assert run_job(job_id, scale_settings, db) == "finished"
        assert run_job(job_id, scale_settings, db) == "finished"  # redelivered: not run again
        assert _history(db, job_id) == ["queued", "running", "scoring", "finished"]
    finally:
        db.dispose()


def test_compare_and_set_lets_one_claimant_win(scale_settings, tabular_dir):
    db, job_id = _db_with_job(scale_settings, tabular_dir)
    try:
        with db.session() as a, db.session() as b:
            ja, jb = a.get(Job, job_id), b.get(Job, job_id)
            assert J.set_state(a, ja, "running", worker="a:1")
            a.commit()
            assert not J.set_state(b, jb, "running", worker="b:2")
            assert jb.state == "running" and jb.worker == "a:1"
    finally:
        db.dispose()


@pytest.mark.slow
def test_live_heartbeat_elsewhere_is_left_alone_stale_one_is_taken_over(
    scale_settings, tabular_dir
):
    db, job_id = _db_with_job(scale_settings, tabular_dir)
    try:
        with db.session() as s:
            job = s.get(Job, job_id)
            J.set_state(s, job, "running", worker="other:1", node="w9", heartbeat_at=utcnow())
        assert run_job(job_id, scale_settings, db) == "running"  # alive elsewhere
        with db.session() as s:
            old = utcnow() - timedelta(seconds=scale_settings.heartbeat_timeout + 5)
            s.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=old))
        assert run_job(job_id, scale_settings, db) == "finished"
        assert _history(db, job_id) == [
            "queued",
            "running",
            "queued",
            "running",
            "scoring",
            "finished",
        ]
        with db.session() as s:
            assert s.get(Job, job_id).requeues == 1
    finally:
        db.dispose()


def test_reaper_requeues_once_then_fails_with_a_reason(scale_settings, tabular_dir):
    db, job_id = _db_with_job(scale_settings, tabular_dir)
    dispatcher = CeleryDispatcher(scale_settings, db)
    sent = []
    dispatcher.send = lambda job_id, budget: sent.append(job_id)
    old = utcnow() - timedelta(seconds=scale_settings.heartbeat_timeout + 5)
    try:
        for expected in ("queued", "failed"):
            with db.session() as s:
                job = s.get(Job, job_id)
                J.set_state(s, job, "running", worker="gone:1", node="w1", heartbeat_at=old)
            assert dispatcher.reap_once() == [(job_id, expected)]
        assert sent == [job_id]  # re-queued once: one new message
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job.fault == "platform" and job.quota_refunded
            assert "(w1) stopped answering twice" in job.reason
        assert dispatcher.reap_once() == []
    finally:
        db.dispose()


def test_gpu_slots_and_time_limit(scale_settings):
    assert slot_devices([], 0) is None and slot_devices(["0"], 3) is None
    assert [slot_devices(["0", "1"], k) for k in range(4)] == ["0", "1", "0", "1"]
    limit = time_limit(scale_settings, 10)
    assert limit > 10 + scale_settings.grace_seconds + scale_settings.job_margin_seconds


def test_workers_page_lists_workers_for_admins_only(scale_settings):
    import re

    from fastapi.testclient import TestClient

    from autodl.service.app import create_app
    from autodl.service.models import WorkerNode
    from tests.service.conftest import add_user

    app = create_app(scale_settings)
    assert isinstance(app.state.service.dispatcher, CeleryDispatcher)
    with TestClient(app) as client:
        add_user(client, "root", admin=True)
        add_user(client, "bob")
        db = app.state.service.db
        with db.session() as s:
            s.add(WorkerNode(name="gpu1-77", host="gpu1", devices="GPU ×2 (NVIDIA H100)"))
            s.add(WorkerNode(name="cpu1-78", host="cpu1", devices="CPU", jobs_done=3))
            user = s.scalar(select(User).where(User.name == "bob"))
            job = J.create_job(
                s, user, name="t", time_budget=5, report={"name": "t"}, stored_bytes=0
            )
            J.set_state(s, job, "running", node="gpu1-77", heartbeat_at=utcnow())
            job_id = job.id

        def sign_in(name):
            client.cookies.clear()
            page = client.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
            r = client.post(
                "/login", data={"name": name, "password": "password123", "csrf_token": token}
            )
            assert r.status_code in (200, 303)

        sign_in("bob")
        assert client.get("/admin/workers").status_code == 403
        sign_in("root")
        page = client.get("/admin/workers").text
        assert "gpu1-77" in page and "GPU ×2 (NVIDIA H100)" in page and f"#{job_id}" in page
        assert "cpu1" in page and ">3<" in page and "alive" in page

"""Fair share: while others wait, one user's jobs do not hold every worker slot, and with
one slot, users take turns (embedded supervisor, real processes and SQLite)."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest

from autodl.service import jobs as J
from autodl.service.db import Database
from autodl.service.dispatch.embedded import Supervisor
from autodl.service.fairness import fair_order, may_start, next_job
from autodl.service.models import Job, User
from autodl.service.storage import Storage
from tests.service.conftest import wait_for


@pytest.fixture
def world(settings, tabular_dir):
    """``submit(user)`` queues a job of that user; returns (settings, db, storage, submit)."""
    made = []

    def _make(**changes):
        s = replace(settings, **changes)
        db = Database(s.sqlalchemy_url)
        db.upgrade()
        storage = Storage(s.data_dir)
        made.append(db)

        def submit(name: str, budget: float = 3) -> int:
            with db.session() as session:
                user = session.query(User).filter_by(name=name).one_or_none()
                if user is None:
                    user = User(name=name, password_hash="x")
                    session.add(user)
                    session.flush()
                job = J.create_job(
                    session,
                    user,
                    name="t",
                    time_budget=budget,
                    report={"name": "tinytabular"},
                    stored_bytes=0,
                )
                shutil.copytree(tabular_dir, storage.dataset_dir(job.id))
                return job.id

        return s, db, storage, submit

    yield _make
    for db in made:
        db.dispose()


def _start(db, job_id):
    with db.session() as s:
        assert J.set_state(s, s.get(Job, job_id), "running")


def test_the_running_limit_applies_only_while_others_wait(world):
    s, db, _, submit = world(max_running_per_user=1)
    a1, a2 = submit("ann"), submit("ann")
    _start(db, a1)
    with db.session() as session:
        # Nobody else waits: ann may use a free slot for her second job.
        assert next_job(session, s).id == a2
    b1 = submit("bob")
    with db.session() as session:
        assert [j.id for j in fair_order(session, s)] == [b1]  # a2 waits for bob's turn
        assert not may_start(session, session.get(Job, a2), s)
        assert may_start(session, session.get(Job, b1), s)
        # A job handed to a process that has not claimed it yet no longer waits: with bob
        # served, a free slot goes to ann again.
        assert next_job(session, s, starting={b1}).id == a2
    s0 = replace(s, max_running_per_user=0)  # 0: no limit, round robin only
    with db.session() as session:
        assert [j.id for j in fair_order(session, s0)] == [b1, a2]


@pytest.mark.slow
def test_one_slot_alternates_between_users(world):
    s, db, storage, submit = world(workers=1)
    a1, a2, a3 = submit("ann", 1), submit("ann", 1), submit("ann", 1)
    b1 = submit("bob", 1)
    sup = Supervisor(s, db, storage)
    sup.start()
    try:
        ids = [a1, a2, a3, b1]

        def ended():
            with db.session() as session:
                jobs = [session.get(Job, i) for i in ids]
                return jobs if all(j.state in J.TERMINAL for j in jobs) else None

        jobs = wait_for(ended, timeout=120)
    finally:
        sup.stop()
    order = [j.id for j in sorted(jobs, key=lambda j: j.started_at)]
    assert order == [a1, b1, a2, a3]  # bob's job does not wait behind all of ann's


@pytest.mark.slow
def test_two_slots_one_user_at_a_time_while_others_wait(world):
    s, db, storage, submit = world(
        workers=2, max_running_per_user=1, engine="tests.service.engines:steady"
    )
    a1, a2, b1 = submit("ann", 4), submit("ann", 4), submit("bob", 4)
    sup = Supervisor(s, db, storage)
    sup.start()
    try:

        def states():
            with db.session() as session:
                return [session.get(Job, i).state for i in (a1, a2, b1)]

        wait_for(lambda: states()[0] == "running" and states()[2] == "running", timeout=60)
        assert states()[1] == "queued"  # ann's second job waits while bob runs
        wait_for(lambda: all(st in J.TERMINAL for st in states()), timeout=120)
        with db.session() as session:
            jobs = {i: session.get(Job, i) for i in (a1, a2, b1)}
        assert jobs[a2].started_at >= min(jobs[a1].ended_at, jobs[b1].ended_at)
    finally:
        sup.stop()

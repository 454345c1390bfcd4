"""Recovery on real PostgreSQL + Redis: queued jobs whose broker message was lost are sent
again by the reaper (and jobs whose message is still there are not), and a worker stopped
with SIGTERM in the middle of a job hands it back, to be run to the end exactly once."""

from __future__ import annotations

import json
import shutil
import signal
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from autodl.service import jobs as J
from autodl.service.db import Database
from autodl.service.dispatch.broker import QUEUE, broker_job_ids
from autodl.service.dispatch.celery import LOST_MESSAGE, CeleryDispatcher
from autodl.service.models import Job, JobEvent, User, utcnow
from autodl.service.storage import Storage
from tests.scaleout.conftest import WorkerProc
from tests.service.conftest import wait_for

STEADY = "tests.service.engines:steady"


def _jobs(settings, tabular_dir, n: int, budget: float = 3) -> tuple[Database, list[int]]:
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(settings.data_dir)
    with db.session() as s:
        user = User(name="ann", password_hash="x")
        s.add(user)
        s.flush()
        ids = [
            J.create_job(
                s, user, name=f"j{k}", time_budget=budget, report={"name": "t"}, stored_bytes=0
            ).id
            for k in range(n)
        ]
    for i in ids:
        shutil.copytree(tabular_dir, storage.dataset_dir(i))
    return db, ids


def _history(db, job_id) -> list[tuple[str, str | None]]:
    with db.session() as s:
        return [
            (e.state, e.message)
            for e in s.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
            )
        ]


def _backdate_dispatch(db, settings) -> None:
    old = utcnow() - timedelta(seconds=settings.heartbeat_timeout + 5)
    with db.session() as s:
        s.execute(update(Job).values(dispatched_at=old, queued_at=old))


def _all_ended(db, ids):
    with db.session() as s:
        states = [s.get(Job, i).state for i in ids]
    return states if all(st in J.TERMINAL for st in states) else None


@pytest.mark.slow
def test_lost_messages_are_sent_again_and_every_job_runs_once(
    scale_settings, tabular_dir, redis_url, tmp_path
):
    settings = replace(scale_settings, data_dir=tmp_path / "shared")
    db, ids = _jobs(settings, tabular_dir, 3)
    dispatcher = CeleryDispatcher(settings, db)
    broker = redis.Redis.from_url(redis_url)
    worker = None
    try:
        for i in ids:
            dispatcher.notify(i)  # no worker yet: the messages wait in the queue
        assert broker_job_ids(settings) == set(ids)
        # The broker restarts without persistence: every message is gone.
        broker.flushdb()
        broker.set("autodl-test-claim", "1", ex=900)
        assert broker_job_ids(settings) == set()
        _backdate_dispatch(db, settings)  # as if dispatched long ago

        dispatcher.start()  # the reaper, every heartbeat (0.5 s here)

        def resent():
            with db.session() as s:
                n = [s.get(Job, i).redispatches for i in ids]
            return n if all(n) else None

        assert wait_for(resent, timeout=30) == [1, 1, 1]
        assert broker_job_ids(settings) == set(ids)
        assert broker.llen(QUEUE) == 3  # one message each: sent again once, not at every pass
        time.sleep(3 * settings.heartbeat_seconds)
        assert broker.llen(QUEUE) == 3

        worker = WorkerProc(settings, "w1", tmp_path / "machine1")
        assert wait_for(lambda: _all_ended(db, ids), timeout=120, interval=0.3) == ["finished"] * 3
        for i in ids:
            history = _history(db, i)
            assert [st for st, _ in history] == [
                "queued",
                "queued",
                "running",
                "scoring",
                "finished",
            ], history
            assert history[1][1] == LOST_MESSAGE
        with db.session() as s:
            assert all(s.get(Job, i).redispatches == 1 for i in ids)
        assert broker.llen(QUEUE) == 0
    finally:
        if worker is not None:
            worker.stop()
        dispatcher.stop()
        db.dispose()


def test_a_job_whose_message_is_queued_or_unacked_is_not_sent_again(
    scale_settings, tabular_dir, redis_url
):
    db, ids = _jobs(scale_settings, tabular_dir, 2)
    dispatcher = CeleryDispatcher(scale_settings, db)
    broker = redis.Redis.from_url(redis_url)
    try:
        for i in ids:
            dispatcher.notify(i)
        _backdate_dispatch(db, scale_settings)
        # One message stays in the queue; the other is held by a worker (unacknowledged),
        # as kombu keeps it: [message, exchange, routing key] under its delivery tag.
        held = json.loads(broker.rpop(QUEUE))
        broker.hset("unacked", "tag-1", json.dumps([held, "", QUEUE]))
        assert broker_job_ids(scale_settings) == set(ids)
        for _ in range(4):
            assert dispatcher.recover_lost() == []
        assert broker.llen(QUEUE) == 1 and broker.hlen("unacked") == 1
        with db.session() as s:
            assert [s.get(Job, i).redispatches for i in ids] == [0, 0]
        for i in ids:
            assert [st for st, _ in _history(db, i)] == ["queued"]

        # The held message is lost too (say, its Redis key was deleted): sent again,
        # at the second pass that misses it; the queued one still is not.
        broker.delete("unacked")
        assert dispatcher.recover_lost() == []
        [resent] = dispatcher.recover_lost()
        assert broker.llen(QUEUE) == 2 and broker_job_ids(scale_settings) == set(ids)
        assert dispatcher.recover_lost() == []
        with db.session() as s:
            assert s.get(Job, resent).redispatches == 1
            assert sum(s.get(Job, i).redispatches for i in ids) == 1
    finally:
        db.dispose()


def test_a_recent_dispatch_is_given_time(scale_settings, tabular_dir, redis_url):
    """Within AUTODL_HEARTBEAT_TIMEOUT of its dispatch a job is never sent again."""
    db, ids = _jobs(scale_settings, tabular_dir, 1)
    dispatcher = CeleryDispatcher(scale_settings, db)
    try:
        dispatcher.notify(ids[0])
        redis.Redis.from_url(redis_url).delete(QUEUE)
        assert [dispatcher.recover_lost() for _ in range(3)] == [[], [], []]
    finally:
        db.dispose()


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
def test_sigterm_hands_the_running_job_back_and_it_runs_once_to_the_end(
    scale_settings, tabular_dir, tmp_path
):
    settings = replace(scale_settings, engine=STEADY, data_dir=tmp_path / "shared")
    db, [job_id] = _jobs(settings, tabular_dir, 1, budget=20)
    dispatcher = CeleryDispatcher(settings, db)
    dispatcher.start()  # the server's reaper runs as in production
    workers = [WorkerProc(settings, "w1", tmp_path / "machine1")]
    try:
        dispatcher.notify(job_id)

        def running():
            with db.session() as s:
                job = s.get(Job, job_id)
                return job if job.state == "running" and job.n_predictions > 0 else None

        job = wait_for(running, timeout=60, interval=0.2)
        job_pid = int(job.worker.rpartition(":")[2])
        assert job.node == "w1" and _alive(job_pid)

        t = time.monotonic()
        workers[0].proc.send_signal(signal.SIGTERM)  # `kill PID`, systemd or docker stop
        code = workers[0].proc.wait(30)
        stopped_in = time.monotonic() - t
        # Warm shutdown did not wait for the 20 s job: it handed it back and left.
        assert code == 0 and stopped_in < 12, (code, stopped_in)
        assert not _alive(job_pid)
        with db.session() as s:
            job = s.get(Job, job_id)
            assert job.state == "queued" and job.handbacks == 1 and job.requeues == 0
            assert job.worker is None and job.node is None
        assert "w1 was stopped while the job ran" in _history(db, job_id)[-1][1]

        # The worker comes back (a restart, or another machine): the job runs to the end.
        workers.append(WorkerProc(settings, "w1", tmp_path / "machine1"))
        assert wait_for(lambda: _all_ended(db, [job_id]), timeout=90, interval=0.3) == ["finished"]
        assert [st for st, _ in _history(db, job_id)] == [
            "queued",
            "running",
            "queued",
            "running",
            "scoring",
            "finished",
        ]
        with db.session() as s:
            job = s.get(Job, job_id)
            # Sent again by the stopping worker itself, not by the lost-message check.
            assert job.redispatches == 0 and job.requeues == 0 and job.attempts == 2
            assert job.n_predictions > 0
        log = (tmp_path / "machine1" / "worker.log").read_text()
        assert "Warm shutdown" in log
    finally:
        for w in workers:
            w.stop()
        dispatcher.stop()
        db.dispose()

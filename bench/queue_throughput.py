"""Scale-out queue figures on real PostgreSQL + Redis (as in CI):

1. enqueue rate: Celery tasks sent per second by the server's dispatcher;
2. throughput: trivial jobs (the `quick` test engine) finished per second by W workers
   (`autodl worker` processes, concurrency C each) — the cost of dispatch, claim, the job
   process and the bookkeeping, with nearly no engine time;
3. recovery: seconds from SIGKILL of a worker (and everything under it) in the middle of a
   job to that job running again on the other worker (AUTODL_HEARTBEAT_TIMEOUT sets most of it);
4. lost message: seconds from a queued job being left without a broker message (as a
   Redis restart without persistence leaves it) to that job running on an idle worker —
   the reaper's lost-message check (missing at two passes AUTODL_HEARTBEAT_SECONDS apart)
   plus the pick-up. For a job dispatched long ago (the usual case: it waited in the
   queue); a job dispatched less than AUTODL_HEARTBEAT_TIMEOUT ago waits that long first.

    .venv/bin/python bench/queue_throughput.py [--jobs 12] [--workers 2] [--concurrency 1]
                                               [--markdown]

``--markdown`` prints the figures as one table with the command and date
(docs/benchmarks.md).

On the servers named by AUTODL_TEST_PG and AUTODL_TEST_REDIS (as the scale-out tests), else
on servers of its own started from the test extra's wheels (tests/scaleout/servers.py).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from sqlalchemy import func, select, update  # noqa: E402

from autodl.formats.samples import make_tabular  # noqa: E402
from autodl.service import jobs as J  # noqa: E402
from autodl.service.db import Database  # noqa: E402
from autodl.service.dispatch.celery import CeleryDispatcher  # noqa: E402
from autodl.service.models import Job, JobEvent, User, utcnow  # noqa: E402
from autodl.service.storage import Storage  # noqa: E402
from autodl.settings import Settings  # noqa: E402
from tests.scaleout.conftest import WorkerProc  # noqa: E402
from tests.scaleout.servers import (  # noqa: E402
    admin_connect,
    database_url,
    postgres_server,
    redis_server,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--heartbeat-timeout", type=float, default=10.0)
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    # A timeout's SIGTERM must still stop the workers and drop the database (finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    servers = contextlib.ExitStack()
    pg = servers.enter_context(postgres_server())
    redis_url = servers.enter_context(redis_server()) + "/15"
    name = f"autodl_bench_{secrets.token_hex(4)}"
    with admin_connect(pg) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="autodl-qbench-"))
    redis.Redis.from_url(redis_url).flushdb()
    settings = Settings(
        data_dir=tmp / "shared",
        engine="tests.ingestion.engines:quick",
        database_url=database_url(pg, name),
        broker_url=redis_url,
        heartbeat_seconds=1.0,
        heartbeat_timeout=args.heartbeat_timeout,
        grace_seconds=1,
        job_margin_seconds=60,
    )
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(settings.data_dir)
    data = make_tabular(tmp / "src", n_train=40, n_test=20)
    dispatcher = CeleryDispatcher(settings, db)
    dispatcher.start()  # the reaper
    workers: list[WorkerProc] = []
    os.environ["PYTHONPATH"] = str(ROOT)
    try:
        with db.session() as s:
            s.add(User(name="bench", password_hash="x"))

        def new_jobs(n, budget):
            ids = []
            with db.session() as s:
                user = s.scalar(select(User))
                for _ in range(n):
                    job = J.create_job(
                        s, user, name="b", time_budget=budget, report={"name": "b"}, stored_bytes=0
                    )
                    ids.append(job.id)
            for i in ids:
                shutil.copytree(data, storage.dataset_dir(i))
            return ids

        # 1. enqueue rate
        ids = new_jobs(args.jobs, 5)
        t0 = time.perf_counter()
        for i in ids:
            dispatcher.send(i, 5)
        send_rate = len(ids) / (time.perf_counter() - t0)

        # 2. throughput
        workers = [
            WorkerProc(settings, f"b{k}", tmp / f"m{k}", args.concurrency)
            for k in range(args.workers)
        ]
        t0 = time.perf_counter()
        first = None
        while True:
            with db.session() as s:
                done = s.scalar(select(func.count()).where(Job.state == "finished"))
            if done and first is None:
                first = time.perf_counter()
            if done >= len(ids):
                break
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"only {done} of {len(ids)} jobs finished in 600 s")
            time.sleep(0.05)
        total = time.perf_counter() - t0
        rate = (len(ids) - 1) / (time.perf_counter() - first)
        with db.session() as s:
            twice = s.scalar(
                select(func.count()).where(JobEvent.state == "running").select_from(JobEvent)
            )

        # 3. recovery after a worker's death
        for w in workers:
            w.stop()
        [victim] = new_jobs(1, 30)
        steady = replace(settings, engine="tests.service.engines:steady")
        workers = [WorkerProc(steady, f"r{k}", tmp / f"r{k}", 1) for k in range(2)]
        dispatcher.send(victim, 30)

        def node():
            with db.session() as s:
                j = s.get(Job, victim)
                return j.node if j.state == "running" else None

        while node() is None:
            time.sleep(0.05)
        time.sleep(2)
        dying = next(w for w in workers if w.name == node())
        t_kill = time.perf_counter()
        dying.kill_machine()
        while True:
            n = node()
            if n is not None and n != dying.name:
                break
            time.sleep(0.05)
        recovery = time.perf_counter() - t_kill

        # 4. lost message: idle workers wait on the queue while a queued job has no message
        # (lost between its dispatch and its delivery); the reaper notices and re-sends it.
        while node() is not None:  # the victim finishes; both workers are idle
            time.sleep(0.1)
        [lost] = new_jobs(1, 5)
        long_ago = utcnow() - timedelta(seconds=args.heartbeat_timeout + 1)
        with db.session() as s:  # dispatched long ago, like a job that waited in the queue
            s.execute(
                update(Job).where(Job.id == lost).values(dispatched_at=long_ago, queued_at=long_ago)
            )
        t_lost = time.perf_counter()
        while True:
            with db.session() as s:
                if s.get(Job, lost).state != "queued":
                    break
            time.sleep(0.05)
        lost_recovery = time.perf_counter() - t_lost

        from bench._markdown import Rows

        setup = (
            f"workers: {args.workers} x concurrency {args.concurrency}, {args.jobs} trivial jobs"
        )
        if not args.markdown:
            print(setup)
        report = Rows(args.markdown, ["measure", "figure"])
        for measure, figure in (
            ("enqueue rate:       ", f"{send_rate:8.0f} tasks/s"),
            ("throughput:         ", f"{len(ids) / total:8.2f} jobs/s end to end ({total:.1f} s)"),
            ("throughput (steady):", f"{rate:8.2f} jobs/s after the first job finished"),
            ("runs per job:       ", f"{twice / len(ids):8.2f} (1.00 = none run twice)"),
            (
                "worker death -> job running again:",
                f"{recovery:.1f} s (AUTODL_HEARTBEAT_TIMEOUT={args.heartbeat_timeout:g} s)",
            ),
            (
                "message lost -> job running again:",
                f"{lost_recovery:.1f} s "
                f"(AUTODL_HEARTBEAT_SECONDS={settings.heartbeat_seconds:g} s)",
            ),
        ):
            report.add([measure.strip(" :"), figure.strip()], f"{measure} {figure}")
        report.end(setup + ".")
    finally:
        for w in workers:
            w.stop()
        dispatcher.stop()
        db.dispose()
        redis.Redis.from_url(redis_url).flushdb()
        with admin_connect(pg) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)
        servers.close()


if __name__ == "__main__":
    main()

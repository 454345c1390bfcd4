"""The embedded dispatcher: runs queued jobs in child processes inside the server.

One supervisor thread per data directory (a file lock makes sure of it when the
server runs several processes). It starts up to ``AUTODL_WORKERS`` jobs at once, in
the fair order of `autodl.service.fairness` (per-user running limit, round robin),
each as ``python -m autodl.service.jobs.runner ID`` in a new process group
(`autodl.service.processes`), and kills that group when the job is cancelled or
deleted, or when it runs past budget + grace + ``AUTODL_JOB_MARGIN_SECONDS``. A job
process that dies without recording an end fails the job with a reason.

On start it recovers from a crash: jobs left running are re-queued once, then
failed (`jobs.requeue_or_fail`), and their old process groups are killed.

With AUTODL_BROKER_URL set, `autodl.service.dispatch.celery` replaces it behind the
same `Dispatcher` interface: each `autodl worker` task starts and watches the job
process with the same `spawn_job_process` / `watch_child`. Both run `run_job`, which
claims a job only while it is queued.
"""

from __future__ import annotations

import fcntl
import threading

from sqlalchemy import select

from autodl.service.db import Database
from autodl.service.fairness import next_job
from autodl.service.jobs import ACTIVE, requeue_or_fail
from autodl.service.models import Job
from autodl.service.processes import (
    JobProcess,
    kill_group,
    kill_stale_job_process,
    spawn_job_process,
    watch_child,
)
from autodl.service.storage import Storage
from autodl.settings import Settings

POLL_SECONDS = 0.5


class Supervisor:
    def __init__(self, settings: Settings, db: Database, storage: Storage):
        self.settings, self.db, self.storage = settings, db, storage
        self.children: dict[int, JobProcess] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_file = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        lock = open(self.storage.root / "supervisor.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()  # another server process supervises this data directory
            return
        self._lock_file = lock
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="autodl-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising; running jobs are killed and re-queued on the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        for child in list(self.children.values()):
            kill_group(child.proc.pid)
            child.proc.wait(5)
        self.children.clear()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def notify(self, job_id: int) -> None:
        self._wake.set()

    # ------------------------------------------------------------- recovery
    def recover(self) -> None:
        with self.db.session() as s:
            for job in s.scalars(select(Job).where(Job.state.in_(ACTIVE))).all():
                kill_stale_job_process(job.worker)
                requeue_or_fail(s, job)

    # ----------------------------------------------------------------- loop
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a database hiccup must not end supervision
                import traceback

                traceback.print_exc()
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def tick(self) -> None:
        with self.db.session() as s:
            for child in list(self.children.values()):
                self._watch(s, child)
            while len(self.children) < max(1, self.settings.workers) and not self._stop.is_set():
                job = next_job(s, self.settings, starting=set(self.children))
                if job is None:
                    break
                self._spawn(job)

    def _spawn(self, job: Job) -> None:
        self.children[job.id] = spawn_job_process(job, self.settings, self.storage)

    def _watch(self, s, child: JobProcess) -> None:
        if watch_child(s, child, self.settings, self.storage):
            del self.children[child.job_id]

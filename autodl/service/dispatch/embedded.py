"""The embedded dispatcher: runs queued jobs in child processes inside the server.

One supervisor thread per data directory (a file lock makes sure of it when the
server runs several processes). It starts up to ``AUTODL_WORKERS`` jobs at once, in
the fair order of `autodl.service.fairness` (per-user running limit, round robin),
each as ``python -m autodl.service.worker ID`` in a new process group, and kills
that group when the job is cancelled or deleted, or when it runs past
budget + grace + ``AUTODL_JOB_MARGIN_SECONDS``. A job process that dies without
recording an end fails the job with a reason.

On start it recovers from a crash: jobs left running are re-queued once, then
failed (`jobs.requeue_or_fail`), and their old process groups are killed.

With AUTODL_BROKER_URL set, `autodl.service.scaleout` replaces it behind the same
`Dispatcher` interface: each `autodl worker` task starts and watches the job process
with the same `spawn_job_process` / `watch_child`. Both call `jobs.run_job`, which
claims a job only while it is queued.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select

from autodl.service.db import Database
from autodl.service.fairness import next_job
from autodl.service.jobs import ACTIVE, HANDED_BACK, requeue_or_fail, set_state
from autodl.service.models import Job
from autodl.service.storage import Storage
from autodl.settings import Settings

POLL_SECONDS = 0.5


class Dispatcher(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def notify(self, job_id: int) -> None: ...


@dataclass
class _Child:
    job_id: int
    proc: subprocess.Popen
    deadline: float
    killed_because: str | None = None


class Supervisor:
    def __init__(self, settings: Settings, db: Database, storage: Storage):
        self.settings, self.db, self.storage = settings, db, storage
        self.children: dict[int, _Child] = {}
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
            _kill_group(child.proc.pid)
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
                _kill_stale_worker(job.worker)
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

    def _watch(self, s, child: _Child) -> None:
        if watch_child(s, child, self.settings, self.storage):
            del self.children[child.job_id]


def spawn_job_process(job: Job, settings: Settings, storage: Storage) -> _Child:
    """``python -m autodl.service.worker ID`` in a process group of its own, with its deadline."""
    log = storage.worker_log(job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "autodl.service.worker", str(job.id)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=settings.child_environ(),
            start_new_session=True,  # its own process group: killed as one
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + job.time_budget + settings.grace_seconds
    return _Child(job.id, proc, deadline + settings.job_margin_seconds)


def watch_child(s, child: _Child, settings: Settings, storage: Storage) -> bool:
    """Kill ``child`` if its job was cancelled or ran out of time; True once it has ended.

    A job left running or scoring by its ended process (and owned by that process)
    fails with a reason; so does a queued job whose process failed before claiming
    it, unless the process handed it back (exit status `HANDED_BACK`, on SIGTERM).
    """
    job = s.get(Job, child.job_id)
    if job is not None:
        s.refresh(job)
    code = child.proc.poll()
    if code is None:
        if job is None or job.deleted_at is not None or job.state == "cancelled":
            child.killed_because = "cancelled"
            _kill_group(child.proc.pid)
        elif time.monotonic() > child.deadline:
            child.killed_because = "timeout"
            _kill_group(child.proc.pid)
        return False
    _kill_group(child.proc.pid)  # the engine, if the job process left it behind
    if job is None:
        storage.delete_job(child.job_id)  # its account was deleted; it may have written since
        return True
    ours = job.worker is None or job.worker.endswith(f":{child.proc.pid}")
    if job.deleted_at is not None:
        storage.delete_job(job.id)  # it may have written after the delete
    elif (job.state in ACTIVE and ours) or (job.state == "queued" and code not in (0, HANDED_BACK)):
        if child.killed_because == "timeout":
            limit = job.time_budget + settings.grace_seconds + settings.job_margin_seconds
            reason = f"The job took longer than its time limit ({limit:g} s including start-up and scoring) and was stopped."
        else:
            reason = f"The process running the job stopped unexpectedly (exit code {code})."
        set_state(
            s,
            job,
            "failed",
            message=reason
            + " This is a fault of the platform, not of your data: your daily quota was given back.",
            fault="platform",
            guard={"worker": job.worker} if job.state in ACTIVE else None,
        )
    return True


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_stale_worker(worker: str | None) -> None:
    """Kill the process group of a job process a crashed server left behind (this host only)."""
    if not worker or ":" not in worker:
        return
    import socket

    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        if b"autodl.service.worker" in cmdline.read_bytes():
            _kill_group(int(pid))
    except OSError:
        pass

"""Scale-out dispatch: Celery over a Redis broker, `autodl worker` on each machine.

With ``AUTODL_BROKER_URL`` set, the server's dispatcher (`CeleryDispatcher`) sends
one task per job carrying only the job id, and runs the reaper. Each `autodl worker`
(`run_worker`) consumes them: the task starts the same job process as the embedded
supervisor (``python -m autodl.service.worker ID``, a process group of its own) and
watches it — deadline, cancel, delete — then counts the job on the Workers page.

Delivery guarantees, in layers:

* ``acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only
  after the job ended, so a worker that dies leaves it unacknowledged;
* Redis ``visibility_timeout`` above the longest job: a live long job's message is
  never handed to a second worker; ``unacked_restore_interval`` keeps the sweep that
  gives back a dead worker's message frequent;
* the reaper (here, every heartbeat interval): a running job whose heartbeat is older
  than ``AUTODL_HEARTBEAT_TIMEOUT`` is re-queued once (a new message) or failed with a
  reason — the fast path, seconds rather than the visibility timeout;
* `jobs.run_job` claims a job only while queued (compare-and-set), so a redelivered
  or duplicate message never runs a job twice.

``worker_prefetch_multiplier=1`` and ``worker_max_tasks_per_child=1``: a worker holds
only the jobs it runs, and every job starts in a fresh pool process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from dataclasses import replace

from sqlalchemy import select, update

from autodl.service.db import Database
from autodl.service.jobs import reap
from autodl.service.models import Job, WorkerNode, utcnow
from autodl.service.storage import Storage
from autodl.settings import Settings

TASK = "autodl.run_job"
QUEUE = "autodl"
#: Slack on top of the longest job for the broker's visibility timeout and Celery's limit.
SLACK_SECONDS = 600.0


def make_celery(settings: Settings):
    from celery import Celery

    app = Celery("autodl", broker=settings.broker_url, set_as_current=False)
    longest = settings.longest_job_seconds
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        task_time_limit=longest + SLACK_SECONDS,
        broker_transport_options={
            "visibility_timeout": int(longest + SLACK_SECONDS),
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=False,
    )
    return app


def time_limit(settings: Settings, budget: float) -> float:
    """Celery's hard limit for one job: above budget + grace + margin (the task's own kill)."""
    return budget + settings.grace_seconds + settings.job_margin_seconds + 60


class CeleryDispatcher:
    """The server side: queue a job as a Celery task; reap jobs whose worker died."""

    def __init__(self, settings: Settings, db: Database):
        self.settings, self.db = settings, db
        self.celery = make_celery(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="autodl-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def notify(self, job_id: int) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            budget = job.time_budget if job is not None else self.settings.max_time_budget
        self.send(job_id, budget)

    def send(self, job_id: int, budget: float) -> None:
        self.celery.send_task(
            TASK, args=[job_id], queue=QUEUE, time_limit=time_limit(self.settings, budget)
        )

    def reap_once(self) -> list[tuple[int, str]]:
        with self.db.session() as s:
            changed = reap(s, self.settings)
            budgets = {
                j.id: j.time_budget
                for j in s.scalars(select(Job).where(Job.id.in_([i for i, _ in changed])))
            }
        for job_id, state in changed:
            if state == "queued":
                self.send(job_id, budgets[job_id])
        return changed

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self.reap_once()
            except Exception:  # noqa: BLE001 - a database or broker hiccup must not end reaping
                import traceback

                traceback.print_exc()


# ------------------------------------------------------------------ worker side


def detect_gpus() -> list[str]:
    """The GPU indices this machine may use (CUDA_VISIBLE_DEVICES if set, else nvidia-smi)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def gpu_label(gpus: list[str]) -> str:
    if not gpus:
        return "CPU"
    name = ""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.splitlines()
        name = f" ({out[0].strip()})" if out else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return f"GPU ×{len(gpus)}{name}"


def slot_devices(gpus: list[str], slot: int) -> str | None:
    """CUDA_VISIBLE_DEVICES for pool process ``slot``: one GPU each, round robin."""
    if len(gpus) <= 1:
        return None  # one GPU (all slots share it) or none: leave the environment alone
    return gpus[slot % len(gpus)]


def run_worker(settings: Settings, concurrency: int = 1) -> None:
    """Run this machine's Celery worker until stopped (`autodl worker`)."""
    from celery.signals import worker_process_init

    if not settings.broker_url:
        from autodl.errors import AutoDLError

        raise AutoDLError(
            "AUTODL_BROKER_URL is not set",
            "Set it to the broker the server uses, e.g. redis://10.0.0.2:6379/0.",
        )
    host = socket.gethostname()
    name = settings.worker_name or f"{host}-{os.getpid()}"
    settings = replace(settings, worker_name=name)
    gpus = detect_gpus()
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(settings.data_dir)
    with db.session() as s:
        row = s.scalar(select(WorkerNode).where(WorkerNode.name == name))
        if row is None:
            row = WorkerNode(name=name, host=host)
            s.add(row)
        row.devices, row.concurrency = gpu_label(gpus), concurrency
        row.started_at = row.heartbeat_at = utcnow()
        row.stopped_at = None
    db.dispose()

    app = make_celery(settings)
    slot_env: dict[str, str] = {}

    @worker_process_init.connect
    def _pool_process(**_):  # pragma: no cover - runs in the pool process
        from billiard.process import current_process

        devices = slot_devices(gpus, current_process().index or 0)
        if devices is not None:
            slot_env["CUDA_VISIBLE_DEVICES"] = devices

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)
    def run_job_task(job_id: int) -> str:  # pragma: no cover - runs in the pool process
        return execute(int(job_id), settings, storage, slot_env)

    stop = threading.Event()
    beat = threading.Thread(
        target=_worker_heartbeat, args=(settings, name, stop), name="autodl-worker-beat"
    )
    beat.daemon = True
    beat.start()
    try:
        app.Worker(
            hostname=f"{name}@{host}",
            concurrency=concurrency,
            pool="prefork",
            queues=[QUEUE],
            loglevel="INFO",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
        ).start()
    finally:
        stop.set()
        db = Database(settings.sqlalchemy_url)
        with db.session() as s:
            s.execute(update(WorkerNode).where(WorkerNode.name == name).values(stopped_at=utcnow()))
        db.dispose()


def _worker_heartbeat(settings: Settings, name: str, stop: threading.Event) -> None:
    db = Database(settings.sqlalchemy_url)
    while not stop.wait(settings.heartbeat_seconds):
        try:
            with db.session() as s:
                s.execute(
                    update(WorkerNode)
                    .where(WorkerNode.name == name)
                    .values(heartbeat_at=utcnow(), stopped_at=None)
                )
        except Exception:  # noqa: BLE001 - try again at the next beat
            pass


def execute(job_id: int, settings: Settings, storage: Storage, env: dict | None = None) -> str:
    """The task's body: run the job process and watch it to its end; the job's final state."""
    from autodl.service.supervisor import spawn_job_process, watch_child

    db = Database(settings.sqlalchemy_url)
    try:
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued" or job.deleted_at is not None:
                return job.state if job is not None else "missing"  # no process for a no-op
            run_settings = settings
            if env:
                os.environ.update(env)  # the job process inherits this slot's GPU
            child = spawn_job_process(job, run_settings, storage)
        while True:
            with db.session() as s:
                if watch_child(s, child, settings, storage):
                    break
            time.sleep(0.5)
        with db.session() as s:
            s.execute(
                update(WorkerNode)
                .where(WorkerNode.name == settings.worker_name)
                .values(jobs_done=WorkerNode.jobs_done + 1)
            )
            job = s.get(Job, job_id)
            return job.state if job is not None else "missing"
    finally:
        db.dispose()

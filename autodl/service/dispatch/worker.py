"""`autodl worker`: this machine's Celery worker (`run_worker`) and the GPUs it hands out.

On start the worker records itself on the Workers page (a `WorkerNode` row with its
devices and slots) and beats on that row (`Heartbeat`). Each pool process gets one
GPU, round robin (`slot_devices`), which its job processes inherit. On a warm
shutdown (SIGTERM, Ctrl-C) it forwards SIGTERM to its job processes so that they hand
their jobs back (see `autodl.service.dispatch.celery`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import replace

from sqlalchemy import select, update

from autodl.service.db import Database
from autodl.service.dispatch import celery as tasks
from autodl.service.dispatch.celery import QUEUE, TASK, WorkerContext, make_celery, run_job_task
from autodl.service.jobs import Heartbeat
from autodl.service.models import WorkerNode, utcnow
from autodl.service.processes import job_processes
from autodl.service.storage import Storage
from autodl.settings import Settings


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
    from celery.signals import worker_process_init, worker_shutting_down

    if not settings.broker_url:
        from autodl.errors import AutoDLError

        raise AutoDLError(
            "AUTODL_BROKER_URL is not set",
            "Set it to the broker the server uses, e.g. redis://10.0.0.2:6379/0.",
        )
    host = socket.gethostname()
    name = settings.worker_name or f"{host}-{os.getpid()}"
    # AUTODL_WORKERS of a job process = this machine's slots: the automatic memory limit
    # per job (AUTODL_JOB_MEMORY_BYTES=0) is the machine's share per slot.
    settings = replace(settings, worker_name=name, workers=max(1, concurrency))
    gpus = detect_gpus()
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
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
    app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)(run_job_task)
    tasks.context = WorkerContext(settings, Storage(settings.data_dir), app)

    def pool_process(**_) -> None:  # pragma: no cover - runs in the pool process
        from billiard.process import current_process

        devices = slot_devices(gpus, current_process().index or 0)
        if devices is not None:
            tasks.context.env["CUDA_VISIBLE_DEVICES"] = devices

    worker_process_init.connect(pool_process, weak=False)
    worker_shutting_down.connect(_hand_back_jobs, weak=False)

    beat_db = Database(settings.sqlalchemy_url)
    row = update(WorkerNode).where(WorkerNode.name == name)
    beat = Heartbeat(
        beat_db, row, settings.heartbeat_seconds, name="autodl-worker-beat", stopped_at=None
    ).start()
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
        beat.stop()
        beat_db.dispose()
        db = Database(settings.sqlalchemy_url)
        with db.session() as s:
            s.execute(update(WorkerNode).where(WorkerNode.name == name).values(stopped_at=utcnow()))
        db.dispose()


def _hand_back_jobs(**_) -> None:  # pragma: no cover - runs in the worker's signal handler
    """Warm shutdown waits for running tasks: ask their job processes to hand the jobs
    back now, so that the worker stops in seconds."""
    for pid in job_processes(os.getpid()):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass

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
* lost messages (the reaper too): a queued job whose message is neither in the
  broker's queue nor held unacknowledged by a worker — Redis restarted without
  persistence, the queue was purged, the broker was down when the job was submitted —
  is sent again (`CeleryDispatcher.recover_lost`). It must have been dispatched more
  than ``AUTODL_HEARTBEAT_TIMEOUT`` ago and be missing in two passes in a row (a
  worker moves a message from the queue to the unacked hash in two steps); the
  re-send is compare-and-set on ``dispatched_at`` (one server of several sends it),
  counted in ``redispatches`` and written in the job's history. Only a Redis broker
  can be inspected; with another broker (RabbitMQ keeps durable queues) this step is
  skipped and a queued job is sent once;
* stopping a worker (SIGTERM, Ctrl-C: Celery's warm shutdown) hands its jobs back:
  the worker forwards SIGTERM to its job processes, each puts its running job back in
  the queue (`jobs.hand_back`, not counted as a lost run) and exits with
  `jobs.HANDED_BACK`; the task then sends the job again and returns, and the worker
  exits within seconds instead of waiting for jobs of up to an hour. A job already
  scoring finishes first;
* `jobs.run_job` claims a job only while queued (compare-and-set), so a redelivered
  or duplicate message never runs a job twice;
* fair share (`autodl.service.fairness`): before starting the job a message names, the
  worker asks `may_start`; when another user's turn comes first (per-user running limit
  while others wait, then round robin) it sends the message again with a countdown of
  `DEFER_SECONDS` and returns `DEFERRED`, so a user's queue of ten cannot hold every
  worker.

``worker_prefetch_multiplier=1`` and ``worker_max_tasks_per_child=1``: a worker holds
only the jobs it runs, and every job starts in a fresh pool process.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select, update

from autodl.service.db import Database
from autodl.service.fairness import may_start
from autodl.service.jobs import HANDED_BACK, reap, record_redispatch, stale_before
from autodl.service.models import Job, WorkerNode, utcnow
from autodl.service.storage import Storage
from autodl.settings import Settings

TASK = "autodl.run_job"
#: `execute`'s answer when the job must wait for its user's turn; its message is sent
#: again with a countdown of DEFER_SECONDS.
DEFERRED = "deferred"
DEFER_SECONDS = 5.0
QUEUE = "autodl"
#: Slack on top of the longest job for the broker's visibility timeout and Celery's limit.
SLACK_SECONDS = 600.0
#: kombu's Redis layout: one list per priority step ("autodl", "autodl\x06\x163", …) and
#: the hash of messages delivered but not yet acknowledged.
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_UNACKED = "unacked"
LOST_MESSAGE = (
    "The job's message was no longer in the broker's queue (lost, e.g. in a broker "
    "restart without persistence); it was sent again."
)


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


def send_job(
    celery, settings: Settings, job_id: int, budget: float, countdown: float | None = None
) -> None:
    """Send the job's task (only its id) to the broker (``countdown``: not before then)."""
    celery.send_task(
        TASK,
        args=[job_id],
        queue=QUEUE,
        time_limit=time_limit(settings, budget),
        countdown=countdown,
    )


def dispatch(
    celery,
    db: Database,
    settings: Settings,
    job_id: int,
    budget: float,
    countdown: float | None = None,
) -> None:
    """Send the job's task and record when (the lost-message check counts from then)."""
    send_job(celery, settings, job_id, budget, countdown)
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))


def _job_of(message: dict) -> int | None:
    """The job id a kombu message of ours carries; None for any other message."""
    headers = message.get("headers") or {}
    if headers.get("task") != TASK:
        return None
    try:
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return int(json.loads(body)[0][0])
    except (KeyError, IndexError, TypeError, ValueError):
        try:
            return int(json.loads(headers.get("argsrepr") or "")[0])
        except (IndexError, TypeError, ValueError):
            return None


def broker_job_ids(settings: Settings) -> set[int] | None:
    """Jobs with a message in the broker (queued or held unacknowledged by a worker).

    None when the broker cannot be inspected (not Redis). One MULTI reads the queue's
    lists and the unacked hash at one instant.
    """
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
    try:
        pipe = client.pipeline(transaction=True)
        for step in REDIS_PRIORITY_STEPS:
            pipe.lrange(QUEUE if step == 0 else f"{QUEUE}{REDIS_PRIORITY_SEP}{step}", 0, -1)
        pipe.hvals(REDIS_UNACKED)
        *queued, unacked = pipe.execute()
    finally:
        client.close()
    ids: set[int] = set()
    for raw in (m for lst in queued for m in lst):
        try:
            job = _job_of(json.loads(raw))
        except ValueError:
            continue
        if job is not None:
            ids.add(job)
    for raw in unacked:
        try:
            job = _job_of(json.loads(raw)[0])  # [message, exchange, routing key]
        except (ValueError, IndexError, TypeError):
            continue
        if job is not None:
            ids.add(job)
    return ids


class CeleryDispatcher:
    """The server side: queue a job as a Celery task; reap jobs whose worker died, and
    send again the queued jobs whose message the broker lost."""

    def __init__(self, settings: Settings, db: Database):
        self.settings, self.db = settings, db
        self.celery = make_celery(settings)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing: set[int] = set()  # queued jobs without a message at the last pass

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="autodl-reaper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def notify(self, job_id: int) -> None:
        """A job was submitted (or cancelled, or deleted): send it if it is queued.

        If the broker cannot be reached the job stays queued and `recover_lost` sends
        it once the broker answers.
        """
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued" or job.deleted_at is not None:
                return
            budget = job.time_budget
        try:
            self.send(job_id, budget)
        except Exception:  # noqa: BLE001 - the reaper sends it later; the upload succeeded
            import traceback

            traceback.print_exc()

    def send(self, job_id: int, budget: float) -> None:
        dispatch(self.celery, self.db, self.settings, job_id, budget)

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

    def recover_lost(self) -> list[int]:
        """Send again every queued job whose message is missing from the broker; their ids.

        A job qualifies when its last dispatch is older than AUTODL_HEARTBEAT_TIMEOUT and
        its message was missing at this pass and the one before. Redis only (else []).
        """
        cutoff = stale_before(self.settings.heartbeat_timeout)
        with self.db.read_session() as s:
            candidates = {
                j.id: j
                for j in s.scalars(
                    select(Job).where(
                        Job.state == "queued",
                        Job.deleted_at.is_(None),
                        func.coalesce(Job.dispatched_at, Job.queued_at) < cutoff,
                    )
                )
            }
        if not candidates:
            self._missing = set()
            return []
        present = broker_job_ids(self.settings)
        if present is None:
            return []
        missing = set(candidates) - present
        due, self._missing = missing & self._missing, missing - self._missing
        sent = []
        for job_id in sorted(due):
            with self.db.session() as s:
                job = s.get(Job, job_id)
                if job is None or job.state != "queued" or job.deleted_at is not None:
                    continue
                if not record_redispatch(s, job, LOST_MESSAGE):
                    continue  # dispatched meanwhile (another server, or a hand-back)
                budget = job.time_budget
            send_job(self.celery, self.settings, job_id, budget)
            sent.append(job_id)
        return sent

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            for step in (self.reap_once, self.recover_lost):
                try:
                    step()
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
        return execute(int(job_id), settings, storage, slot_env, celery=app)

    @worker_shutting_down.connect
    def _hand_back_jobs(**_):  # pragma: no cover - runs in the worker's signal handler
        # Warm shutdown waits for running tasks: ask their job processes to hand the
        # jobs back now, so that the worker stops in seconds.
        for pid in job_processes(os.getpid()):
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass

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


def job_processes(root: int) -> list[int]:
    """Pids of the job processes (``autodl.service.worker``) under process ``root`` (Linux)."""
    parents: dict[int, int] = {}
    try:
        entries = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []
    for entry in entries:
        try:
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rpartition(")")[2].split()[1]
            )
        except (OSError, ValueError, IndexError):
            pass
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - below
        below |= frontier
    out = []
    for pid in sorted(below):
        try:
            if b"autodl.service.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out.append(pid)
        except OSError:
            pass
    return out


def execute(
    job_id: int,
    settings: Settings,
    storage: Storage,
    env: dict | None = None,
    celery=None,
) -> str:
    """The task's body: run the job process and watch it to its end; the job's final state.

    A job process that handed its job back (SIGTERM: this worker is stopping) leaves it
    queued; it is sent again here (``celery``) for another worker, or this one restarted.
    """
    from autodl.service.supervisor import spawn_job_process, watch_child

    db = Database(settings.sqlalchemy_url)
    try:
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued" or job.deleted_at is not None:
                return job.state if job is not None else "missing"  # no process for a no-op
            if not may_start(s, job, settings):
                budget = job.time_budget
                defer = True
            else:
                defer = False
        if defer:
            # Not this user's turn (fair share): back to the broker for a little while; the
            # worker takes the next message meanwhile. (Without ``celery``, the server's
            # lost-message check sends it again.)
            if celery is not None:
                dispatch(celery, db, settings, job_id, budget, countdown=DEFER_SECONDS)
            return DEFERRED
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state != "queued" or job.deleted_at is not None:
                return job.state if job is not None else "missing"
            run_settings = settings
            if env:
                os.environ.update(env)  # the job process inherits this slot's GPU
            child = spawn_job_process(job, run_settings, storage)
        while True:
            with db.session() as s:
                if watch_child(s, child, settings, storage):
                    break
            time.sleep(0.5)
        handed_back = child.proc.returncode == HANDED_BACK
        with db.session() as s:
            if not handed_back:
                s.execute(
                    update(WorkerNode)
                    .where(WorkerNode.name == settings.worker_name)
                    .values(jobs_done=WorkerNode.jobs_done + 1)
                )
            job = s.get(Job, job_id)
            state = job.state if job is not None else "missing"
            budget = job.time_budget if job is not None else 0.0
        if handed_back and state == "queued" and celery is not None:
            try:
                dispatch(celery, db, settings, job_id, budget)
            except Exception:  # noqa: BLE001 - the server's lost-message check sends it later
                import traceback

                traceback.print_exc()
        return state
    finally:
        db.dispose()

"""Scale-out dispatch: Celery over a Redis broker, `autodl worker` on each machine.

With ``AUTODL_BROKER_URL`` set, the server's dispatcher (`CeleryDispatcher`) sends
one task per job carrying only the job id, and runs the reaper. Each `autodl worker`
(`autodl.service.dispatch.worker.run_worker`) consumes them: the task (`run_job_task`,
thin: an id in, plain Python out) calls `execute`, which starts the same job process
as the embedded supervisor (``python -m autodl.service.jobs.runner ID``, a process
group of its own) and watches it — deadline, cancel, delete — then counts the job on
the Workers page.

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
  can be inspected (`autodl.service.dispatch.broker`); with another broker (RabbitMQ
  keeps durable queues) this step is skipped and a queued job is sent once;
* stopping a worker (SIGTERM, Ctrl-C: Celery's warm shutdown) hands its jobs back:
  the worker forwards SIGTERM to its job processes, each puts its running job back in
  the queue (`jobs.hand_back`, not counted as a lost run) and exits with
  `jobs.HANDED_BACK`; the task then sends the job again and returns, and the worker
  exits within seconds instead of waiting for jobs of up to an hour. A job already
  scoring finishes first;
* `run_job` claims a job only while queued (compare-and-set), so a redelivered or
  duplicate message never runs a job twice;
* fair share (`autodl.service.fairness`): before starting the job a message names, the
  worker asks `may_start`; when another user's turn comes first (per-user running limit
  while others wait, then round robin) it sends the message again with a countdown of
  `DEFER_SECONDS` and returns `DEFERRED`, so a user's queue of ten cannot hold every
  worker.

``worker_prefetch_multiplier=1`` and ``worker_max_tasks_per_child=1``: a worker holds
only the jobs it runs, and every job starts in a fresh pool process.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import func, select, update

from autodl.service.db import Database
from autodl.service.dispatch.broker import QUEUE, TASK, broker_job_ids
from autodl.service.fairness import may_start
from autodl.service.jobs import HANDED_BACK, reap, record_redispatch, stale_before
from autodl.service.models import Job, WorkerNode, utcnow
from autodl.service.processes import spawn_job_process, watch_child
from autodl.service.storage import Storage
from autodl.settings import Settings

#: `execute`'s answer when the job must wait for its user's turn; its message is sent
#: again with a countdown of DEFER_SECONDS.
DEFERRED = "deferred"
DEFER_SECONDS = 5.0
#: Slack on top of the longest job for the broker's visibility timeout and Celery's limit.
SLACK_SECONDS = 600.0
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


@dataclass
class WorkerContext:
    """What the task needs on an `autodl worker`; `run_worker` sets it before the pool forks."""

    settings: Settings
    storage: Storage
    celery: object
    #: This pool process's environment for its job processes (its GPU, one slot each).
    env: dict[str, str] = field(default_factory=dict)


#: Set once per `autodl worker` process (`run_worker`); the pool processes inherit it.
context: WorkerContext | None = None


def run_job_task(job_id: int) -> str:  # pragma: no cover - runs in the pool process
    """The Celery task `TASK` (registered by `run_worker`): run job ``job_id`` here."""
    if context is None:
        raise RuntimeError("the autodl task runs in an `autodl worker` only")
    return execute(int(job_id), context.settings, context.storage, context.env, context.celery)


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
            if env:
                os.environ.update(env)  # the job process inherits this slot's GPU
            child = spawn_job_process(job, settings, storage)
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

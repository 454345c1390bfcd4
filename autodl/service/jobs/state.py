"""The job state machine and the one function that changes a job's state, `set_state`.

States: ``queued → running → scoring → finished | failed | cancelled`` (and back to
``queued`` when a runner was lost or handed its job back). `set_state` checks the
transition, compares and sets in one UPDATE (so two processes cannot both claim a
job, and a job cancelled meanwhile stays cancelled), time-stamps it and records a
`JobEvent`. A ``failed`` job always has a ``reason`` written for the user and a
``fault``: "data" (the upload) or "platform" (us: the engine, the server, a restart)
— a platform fault gives the user's daily quota back.

The helpers below are the transitions the rest of the service asks for by name
(`create_job`, `create_prediction_job`, `cancel`, `delete`, `requeue_or_fail`,
`hand_back`, `process_ended`); each goes through `set_state` (or, for a job's birth, writes its first event).
"""

from __future__ import annotations

import os
import socket
import threading

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from autodl.formats.names import dataset_name_problem, valid_dataset_name
from autodl.service.db import Database
from autodl.service.jobinfo import clean_job_name, compact_report
from autodl.service.models import Job, JobEvent, User, utcnow
from autodl.service.storage import Storage

TERMINAL = frozenset({"finished", "failed", "cancelled"})
ACTIVE = frozenset({"running", "scoring"})
TRANSITIONS = {
    "queued": {"running", "cancelled", "failed"},
    "running": {"scoring", "finished", "failed", "cancelled", "queued"},
    "scoring": {"finished", "failed", "cancelled", "queued"},
}
STAMP = {
    "queued": "queued_at",
    "running": "started_at",
    "scoring": "scoring_at",
    "finished": "ended_at",
    "failed": "ended_at",
    "cancelled": "ended_at",
}
#: Hand-backs (worker stopped by SIGTERM) a job may have before one counts as a lost run:
#: a job that gets its worker stopped every time (e.g. evicted for memory) cannot loop.
MAX_HANDBACKS = 5
#: Exit status of a job process that handed its job back (EX_TEMPFAIL): send it again.
HANDED_BACK = 75
#: What the user is told when a failure was the platform's (the quota is given back).
PLATFORM = "This is a fault of the platform, not of your data: your daily quota was given back."
#: What the user is told when a failure was caused by the data (it costs quota).
CHARGED = "This run counts against your daily quota."

#: Set when this process is handing its job back: `run_job` then claims nothing. The
#: claim runs under `CLAIM`, so once `hand_back` holds it no claim is half-way.
STOPPING = threading.Event()
CLAIM = threading.Lock()


class InvalidTransition(Exception):
    pass


def set_state(
    db: Session,
    job: Job,
    new: str,
    *,
    message: str | None = None,
    fault: str | None = None,
    guard: dict | None = None,
    **values,
) -> bool:
    """Move ``job`` to ``new`` if it is still in the state it was read in; False otherwise.

    ``message`` is stored on the event (and as the reason of a failure); ``guard``
    adds column == value conditions (e.g. the attempt a worker owns); ``values``
    are written in the same UPDATE.
    """
    old = job.state
    if new not in TRANSITIONS.get(old, ()):
        raise InvalidTransition(f"job {job.id}: {old} -> {new} is not allowed")
    if new == "failed":
        if not message:
            raise ValueError("a failed job needs a reason for the user")
        fault = fault or "platform"
        values.update(reason=message, fault=fault)
        if fault == "platform":
            values["quota_refunded"] = True
    now = utcnow()
    values.setdefault(STAMP[new], now)
    conditions = [Job.id == job.id, Job.state == old]
    conditions += [getattr(Job, k) == v for k, v in (guard or {}).items()]
    result = db.execute(
        update(Job)
        .where(*conditions)
        .values(state=new, **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        db.refresh(job)
        return False
    db.add(JobEvent(job_id=job.id, state=new, at=now, message=message))
    db.flush()
    db.refresh(job)
    return True


def worker_id() -> str:
    """Who runs a job: ``host:pid`` of its job process (stored in ``Job.worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def create_job(
    db: Session, user: User, *, name: str, time_budget: float, report: dict, stored_bytes: int
) -> Job:
    """Record a checked upload as a queued job.

    ``report`` is the check report; its ``name`` (the dataset's, which names files)
    must follow the dataset name rule: the form's ``name`` is only a display label,
    cleaned by `clean_job_name`, and never stands in for it. The report is stored
    compact (`compact_report`).
    """
    dataset_name = report.get("name")
    if not valid_dataset_name(dataset_name):
        # check_dataset refuses such an upload first; this guards every other caller.
        raise ValueError(
            dataset_name_problem(dataset_name)
            if isinstance(dataset_name, str)
            else f"A dataset name {dataset_name!r} is not allowed: the report holds no name."
        )
    return _queued(
        db,
        "Submitted and validated.",
        user_id=user.id,
        name=clean_job_name(name) or dataset_name,
        dataset_name=dataset_name,
        dataset_info=compact_report(report),
        time_budget=time_budget,
        stored_bytes=stored_bytes,
    )


def create_prediction_job(
    db: Session, user: User, parent: Job, *, name: str, time_budget: float, stored_bytes: int
) -> Job:
    """Record a checked prediction upload as a queued job of kind "predict" that applies
    ``parent``'s model (`autodl.service.predictions`). It shares the run's dataset name
    (what its files are named after) and goes through the same queue and quotas."""
    return _queued(
        db,
        "Submitted and checked against the model.",
        user_id=user.id,
        kind="predict",
        parent_id=parent.id,
        name=clean_job_name(name) or f"Predictions with job {parent.id}'s model",
        dataset_name=parent.dataset_name,
        dataset_info="{}",
        time_budget=time_budget,
        stored_bytes=stored_bytes,
    )


def _queued(db: Session, message: str, **fields) -> Job:
    """Add a job with ``fields``, queued now, and its first event (``message``)."""
    now = utcnow()
    job = Job(**fields, state="queued", created_at=now, queued_at=now)
    db.add(job)
    db.flush()
    db.add(JobEvent(job_id=job.id, state="queued", at=now, message=message))
    db.flush()
    return job


def cancel(db: Session, job: Job) -> bool:
    """Cancel a queued or running job (a queued one gives its quota back)."""
    if job.state in TERMINAL:
        return False
    refund = job.state == "queued"
    return set_state(
        db,
        job,
        "cancelled",
        message="Cancelled by the user.",
        quota_refunded=refund or job.quota_refunded,
    )


#: The columns a deleted job's row keeps (its tombstone): who, when, how much compute,
#: and whether it counts against the quota; nothing of the data. `delete` blanks the others
#: (name "(deleted)", dataset_info "{}", the rest empty, null or 0).
TOMBSTONE = (
    "id",
    "user_id",
    "created_at",
    "time_budget",
    "state",
    "started_at",
    "ended_at",
    "duration",
    "quota_refunded",
    "deleted_at",
    # the scheduler's counters: how often it was retried, nothing of the data
    "attempts",
    "requeues",
    "handbacks",
    "redispatches",
    # what the compute was for (a run, or a prediction with the run it applied)
    "kind",
    "parent_id",
)


def delete(db: Session, job: Job, storage: Storage) -> None:
    """Remove the job's files and scrub its row down to the `TOMBSTONE` columns.

    The dataset name, the display name, the check report, the reason, the note, the
    scores and the events (with their messages) go; the row stays so that the daily
    quotas (jobs and compute time) still count the job.
    """
    if job.state not in TERMINAL:
        cancel(db, job)
    job.deleted_at = utcnow()
    job.name, job.dataset_name, job.dataset_info = "(deleted)", "", "{}"
    job.dataset_hash = None  # (the leaderboard's key: content the user deleted)
    job.reason = job.note = job.fault = None
    job.alc = job.final_nauc = job.final_accuracy = None
    job.n_predictions, job.stored_bytes = 0, 0
    job.worker = job.node = None
    job.queued_at = job.scoring_at = job.heartbeat_at = job.dispatched_at = None
    job.events.clear()  # delete-orphan: the rows go
    db.flush()
    storage.delete_job(job.id)
    # A run's prediction jobs apply its model: they go with it (their processes are killed
    # by whoever watches them, as for any deleted job).
    children = select(Job).where(Job.parent_id == job.id, Job.deleted_at.is_(None))
    for child in db.scalars(children).all():
        delete(db, child, storage)


def requeue_or_fail(
    db: Session,
    job: Job,
    why: str = "The server restarted while the job ran",
    guard: dict | None = None,
    why_twice: str = "The server restarted twice while this job was running",
) -> str:
    """After its runner was lost (server restart, dead worker): back to the queue once, then failed."""
    if job.requeues < 1:
        set_state(
            db,
            job,
            "queued",
            message=f"{why}; it was put back in the queue.",
            requeues=job.requeues + 1,
            worker=None,
            node=None,
            guard=guard,
        )
    else:
        set_state(
            db,
            job,
            "failed",
            message=f"{why_twice}, so it was stopped. " + PLATFORM,
            fault="platform",
            guard=guard,
        )
    return job.state


def hand_back(db: Database, job_id: int, who: str) -> str:
    """Put the job this process runs back in the queue (its worker is being stopped).

    Called by the job process on SIGTERM, from a thread of its own. After it, this
    process claims nothing. A running job owned by this process goes back to
    ``queued`` (compare-and-set on its owner and attempt; not counted in ``requeues``
    unless it was handed back `MAX_HANDBACKS` times already); a job that is scoring is
    left to finish (seconds); a job not yet claimed stays queued. Returns the state
    the job is in afterwards: ``queued`` means "send it again, and stop now".
    """
    STOPPING.set()
    with CLAIM:  # a claim under way has committed, or will not happen
        pass
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is None or job.deleted_at is not None:
            return "missing"
        if job.state != "running" or job.worker != worker_id():
            return job.state
        guard = {"worker": job.worker, "attempts": job.attempts}
        if job.handbacks < MAX_HANDBACKS:
            set_state(
                s,
                job,
                "queued",
                message=f"{who} was stopped while the job ran; the job was handed back "
                "to the queue and starts again from the beginning.",
                handbacks=job.handbacks + 1,
                worker=None,
                node=None,
                guard=guard,
            )
            return job.state
        why = f"{who} was stopped while the job ran, for the {job.handbacks + 1}th time"
        return requeue_or_fail(s, job, why, guard=guard, why_twice=why)


def process_ended(
    db: Session, job: Job, *, pid: int, code: int, time_limit: float | None = None
) -> None:
    """The job's process ended (exit status ``code``): fail the job if it left it unfinished.

    Written by the process that watched it (`autodl.service.processes.watch_child`),
    the only one left to say what happened. A job left running or scoring by its ended
    process (and owned by it) fails with a reason; so does a queued job whose process
    failed before claiming it, unless the process handed it back (exit status
    `HANDED_BACK`). ``time_limit``: the watcher killed it past that many seconds.
    """
    ours = job.worker is None or job.worker.endswith(f":{pid}")
    if not (
        (job.state in ACTIVE and ours) or (job.state == "queued" and code not in (0, HANDED_BACK))
    ):
        return
    if time_limit is not None:
        reason = f"The job took longer than its time limit ({time_limit:g} s including start-up and scoring) and was stopped."
    else:
        reason = f"The process running the job stopped unexpectedly (exit code {code})."
    set_state(
        db,
        job,
        "failed",
        message=f"{reason} {PLATFORM}",
        fault="platform",
        guard={"worker": job.worker} if job.state in ACTIVE else None,
    )


def record_redispatch(db: Session, job: Job, why: str) -> bool:
    """Note that the queued ``job``'s message is sent again; False if another server did it.

    Compare-and-set on ``dispatched_at``, so of several servers' reapers one sends it.
    Not a change of state: the job stays queued; its history says why it was sent again.
    """
    now = utcnow()
    result = db.execute(
        update(Job)
        .where(
            Job.id == job.id,
            Job.state == "queued",
            Job.dispatched_at.is_(None)
            if job.dispatched_at is None
            else Job.dispatched_at == job.dispatched_at,
        )
        .values(dispatched_at=now, redispatches=Job.redispatches + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False
    db.add(JobEvent(job_id=job.id, state="queued", at=now, message=why))
    db.flush()
    return True

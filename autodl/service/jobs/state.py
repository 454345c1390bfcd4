"""Jobs: the state machine, the queue's questions, and `run_job`, the one way a job is run.

States: ``queued → running → scoring → finished | failed | cancelled`` (and back to
``queued`` once when the server restarts under a running job). `set_state` is the
only function that changes a job's state: it checks the transition, compares and
sets in one UPDATE (so two processes cannot both claim a job, and a job cancelled
meanwhile stays cancelled), time-stamps it and records a `JobEvent`. A ``failed``
job always has a ``reason`` written for the user and a ``fault``: "data" (the
upload) or "platform" (us: the engine, the server, a restart) — a platform fault
gives the user's daily quota back.

`run_job(job_id)` is idempotent: it claims the job only while it is queued, so a
second call (or a redelivered message, with Celery) returns without running it.

`hand_back` is the job process's answer to SIGTERM (a worker being stopped): the
running job goes back to the queue (not counted as a lost run) and the process
claims nothing more.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from autodl.errors import AutoDLError, FormatError
from autodl.formats.names import dataset_name_problem, valid_dataset_name
from autodl.service.db import Database
from autodl.service.jobinfo import clean_job_name, compact_report
from autodl.service.models import Job, JobEvent, User, utcnow
from autodl.service.storage import Storage
from autodl.settings import Settings

STATES = ("queued", "running", "scoring", "finished", "failed", "cancelled")
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
HEARTBEAT_SECONDS = 5.0
#: Hand-backs (worker stopped by SIGTERM) a job may have before one counts as a lost run:
#: a job that gets its worker stopped every time (e.g. evicted for memory) cannot loop.
MAX_HANDBACKS = 5
#: Exit status of a job process that handed its job back (EX_TEMPFAIL): send it again.
HANDED_BACK = 75

#: Set when this process is handing its job back: `run_job` then claims nothing. The
#: claim runs under `_CLAIM`, so once `hand_back` holds it no claim is half-way.
STOPPING = threading.Event()
_CLAIM = threading.Lock()


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


# ------------------------------------------------------------------ queries


def visible_jobs(user: User):
    """The jobs ``user`` may see: their own, or everyone's for an administrator."""
    query = select(Job).where(Job.deleted_at.is_(None))
    return query if user.is_admin else query.where(Job.user_id == user.id)


def get_job(db: Session, user: User, job_id: int) -> Job | None:
    """The job, or None when it does not exist *or belongs to someone else* (same answer)."""
    return db.scalar(visible_jobs(user).where(Job.id == job_id))


def queue_position(db: Session, job: Job) -> int | None:
    """1 for the next job to run; None unless queued."""
    if job.state != "queued" or job.queued_at is None:
        return None
    ahead = db.scalar(
        select(func.count(Job.id)).where(
            Job.state == "queued",
            Job.deleted_at.is_(None),
            or_(
                Job.queued_at < job.queued_at, and_(Job.queued_at == job.queued_at, Job.id < job.id)
            ),
        )
    )
    return int(ahead or 0) + 1


def running_count(db: Session) -> int:
    return int(db.scalar(select(func.count(Job.id)).where(Job.state.in_(ACTIVE))) or 0)


def next_queued(db: Session, exclude: set[int]) -> Job | None:
    query = select(Job).where(Job.state == "queued", Job.deleted_at.is_(None))
    if exclude:
        query = query.where(Job.id.not_in(exclude))
    return db.scalar(query.order_by(Job.queued_at, Job.id).limit(1))


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
    now = utcnow()
    job = Job(
        user_id=user.id,
        name=clean_job_name(name) or dataset_name,
        dataset_name=dataset_name,
        dataset_info=compact_report(report),
        time_budget=time_budget,
        state="queued",
        created_at=now,
        queued_at=now,
        stored_bytes=stored_bytes,
    )
    db.add(job)
    db.flush()
    db.add(JobEvent(job_id=job.id, state="queued", at=now, message="Submitted and validated."))
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
    job.reason = job.note = job.fault = None
    job.alc = job.final_nauc = job.final_accuracy = None
    job.n_predictions, job.stored_bytes = 0, 0
    job.worker = job.node = None
    job.queued_at = job.scoring_at = job.heartbeat_at = job.dispatched_at = None
    job.events.clear()  # delete-orphan: the rows go
    db.flush()
    storage.delete_job(job.id)


# ------------------------------------------------------------------ running


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_job(job_id: int, settings: Settings, db: Database | None = None) -> str:
    """Run a queued job to the end; return its final state. Safe to call twice."""
    own_db = db is None
    db = db or Database(settings.sqlalchemy_url)
    storage = Storage(settings.data_dir)
    try:
        with _CLAIM, db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.deleted_at is not None:
                return "missing"
            if STOPPING.is_set():
                return job.state  # this process is being stopped: leave the job queued
            if job.state in ACTIVE and is_stale(job, settings):
                # Redelivered after its worker died, before the reaper saw it.
                why = lost_worker_reason(job)
                requeue_or_fail(s, job, why, why_twice=why + " twice")
            if job.state != "queued":
                return job.state  # finished, or running elsewhere with a live heartbeat
            now = utcnow()
            if not set_state(
                s,
                job,
                "running",
                worker=worker_id(),
                node=settings.worker_name or None,
                heartbeat_at=now,
                attempts=Job.attempts + 1,
            ):
                return job.state
            attempt, budget = job.attempts, job.time_budget
        beat = _Heartbeat(db, job_id, attempt, settings.heartbeat_seconds)
        try:
            return _run(job_id, attempt, budget, settings, db, storage)
        finally:
            beat.stop()
    finally:
        if own_db:
            db.dispose()


class _Heartbeat:
    """Records every ``interval`` seconds that the job's process lives (the reaper reads it)."""

    def __init__(self, db: Database, job_id: int, attempt: int, interval: float):
        self.db, self.job_id, self.attempt, self.interval = db, job_id, attempt, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="autodl-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                with self.db.session() as s:
                    s.execute(
                        update(Job)
                        .where(
                            Job.id == self.job_id,
                            Job.state.in_(ACTIVE),
                            Job.attempts == self.attempt,
                        )
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:  # noqa: BLE001 - a missed beat is not fatal; the next one may land
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def is_stale(job: Job, settings: Settings) -> bool:
    beat = job.heartbeat_at or job.started_at
    return beat is None or beat < stale_before(settings.heartbeat_timeout)


def lost_worker_reason(job: Job) -> str:
    where = job.node or (job.worker or "?").rpartition(":")[0] or "?"
    return f"The worker running the job ({where}) stopped answering"


def reap(db: Session, settings: Settings) -> list[tuple[int, str]]:
    """Re-queue (once) or fail every running job whose heartbeat stopped; [(id, new state)]."""
    out = []
    stale = db.scalars(
        select(Job).where(
            Job.state.in_(ACTIVE),
            or_(
                Job.heartbeat_at < stale_before(settings.heartbeat_timeout),
                Job.heartbeat_at.is_(None),
            ),
        )
    ).all()
    for job in stale:
        if not is_stale(job, settings):
            continue
        why = lost_worker_reason(job)
        state = requeue_or_fail(
            db, job, why, guard={"heartbeat_at": job.heartbeat_at}, why_twice=why + " twice"
        )
        if state in ("queued", "failed"):
            out.append((job.id, state))
    return out


def _run(
    job_id: int, attempt: int, budget: float, settings: Settings, db: Database, storage: Storage
) -> str:
    from autodl import pipeline

    guard = {"attempts": attempt}
    last_beat = [time.monotonic()]

    def transition(new: str, **kw) -> bool:
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state not in TRANSITIONS or new not in TRANSITIONS[job.state]:
                return False
            return set_state(s, job, new, guard=guard, **kw)

    def on_progress(p) -> None:
        if p.event == "end":
            transition("scoring", message=f"{p.n_predictions} prediction(s) made; scoring.")
        elif time.monotonic() - last_beat[0] > HEARTBEAT_SECONDS:
            last_beat[0] = time.monotonic()
            with db.session() as s:
                s.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.state == "running", Job.attempts == attempt)
                    .values(heartbeat_at=utcnow(), n_predictions=p.n_predictions)
                )

    try:
        report = pipeline.run(
            storage.dataset_dir(job_id),
            storage.results_dir(job_id),
            budget,
            engine=settings.engine,
            force=True,
            settings=settings,
            on_progress=on_progress,
            other_jobs=lambda: _others_running(db, job_id),
        )
    except FormatError as e:
        transition("failed", message=f"Your dataset could not be read: {e.message}", fault="data")
    except AutoDLError as e:
        transition(
            "failed",
            message=f"The engine could not be run: {e.message}. {PLATFORM}",
            fault="platform",
        )
    except Exception as e:  # noqa: BLE001 - the user gets a reason, the operator the log
        import traceback

        traceback.print_exc()
        transition(
            "failed",
            message=f"An internal error stopped the job ({type(e).__name__}). {PLATFORM}",
            fault="platform",
        )
    else:
        _finish(job_id, report, transition, storage)
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is not None and job.deleted_at is None:
            job.stored_bytes = storage.job_bytes(job_id)
        return job.state if job is not None else "missing"


def _others_running(db: Database, job_id: int) -> int:
    """Jobs of this service running beside ``job_id`` (every worker's, not only ours)."""
    with db.session() as s:
        return s.scalar(
            select(func.count()).select_from(Job).where(Job.state == "running", Job.id != job_id)
        )


PLATFORM = "This is a fault of the platform, not of your data: your daily quota was given back."
#: What the user is told when a failure was caused by the data (it costs quota).
CHARGED = "This run counts against your daily quota."


def _finish(job_id: int, report, transition, storage: Storage) -> None:
    """Record the run's outcome from ingestion's typed ``failure``.

    Any prediction made counts: the job finishes, with a note when the engine stopped
    early (memory limit included). Without one, the failure was caused by the data — a
    time-out with no prediction, the memory or file-size limit, the engine failing on
    it — and costs quota (fault "data"); only the platform's faults are given back
    (`_run`'s exceptions, lost workers, restarts).
    """
    from autodl import ingestion as I

    ing, score = report.ingestion, report.score
    values = {
        "n_predictions": len(ing.predictions),
        "duration": round(ing.duration, 3),
        "alc": score.alc if score is not None else None,
        "final_nauc": score.final_nauc if score is not None else None,
        "final_accuracy": score.final_accuracy if score is not None else None,
    }
    if ing.predictions:
        notes = []
        if not ing.success:
            notes.append(
                f"The engine stopped early ({_why(ing)}); the scores count the {len(ing.predictions)} prediction(s) it made before."
            )
        elif ing.converged:  # typed: the engine ended by itself before the deadline
            notes.append(
                f"Finished early: converged at {ing.converged_at:.1f} s of {ing.time_budget:g} s "
                "(nothing left could raise the hold-out score; the score holds to the deadline)."
            )
        if ing.load is not None:  # so that runs compared later are compared fairly
            notes.append(f"Machine during the run: {ing.load.text()}.")
        note = " ".join(notes) or None
        transition("finished", message="Finished.", note=note, **values)
        return
    if ing.failure in (I.TIMEOUT, I.NO_PREDICTION):
        message = f"The model made no prediction within the time budget of {ing.time_budget:g} s. A larger dataset needs more time: submit it again with a larger budget."
    elif ing.failure == I.MEMORY:
        message = f"{_why(ing)[0].upper()}{_why(ing)[1:]} before its first prediction. Make the dataset smaller (fewer or smaller records, fewer classes), or ask the operator for more memory per job."
    elif ing.failure == I.FILE_SIZE:
        message = f"{ing.error[0].upper()}{ing.error[1:]} before its first prediction."
    else:  # ERROR, CRASH, INVALID: the engine failed on this data
        message = f"The engine stopped with an error before its first prediction: {ing.error}."
    transition("failed", message=f"{message} {CHARGED}", fault="data", **values)


def _why(ing) -> str:
    """The run's error, with the memory limit's setting named (the user's hint to ask for more)."""
    from autodl import ingestion as I

    if ing.failure == I.MEMORY and ing.memory_limit:
        return f"{ing.error} (the memory limit of one job, AUTODL_JOB_MEMORY_BYTES)"
    return ing.error or "no reason given"


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
    with _CLAIM:  # a claim under way has committed, or will not happen
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


def record_redispatch(db: Session, job: Job, why: str) -> bool:
    """Note that the queued ``job``'s message is sent again; False if another server did it.

    Compare-and-set on ``dispatched_at``, so of several servers' reapers one sends it.
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


def stale_before(seconds: float):
    return utcnow() - timedelta(seconds=seconds)

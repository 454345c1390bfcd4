"""Jobs whose runner was lost: a heartbeat older than ``AUTODL_HEARTBEAT_TIMEOUT``.

The job process beats every ``AUTODL_HEARTBEAT_SECONDS`` (`heartbeat.Heartbeat`); the
Celery dispatcher calls `reap` at that pace, and `run_job` checks `is_stale` when a
message is redelivered before the reaper saw its job. A lost runner's job goes back
to the queue once, then fails (`state.requeue_or_fail`).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from autodl.service.jobs.queries import stale_before
from autodl.service.jobs.state import ACTIVE, requeue_or_fail
from autodl.service.models import Job
from autodl.settings import Settings


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

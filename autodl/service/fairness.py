"""Fair share of the worker slots: which queued job starts next, and whether a job may start.

Two rules, the same for the embedded supervisor (`next_job`) and for Celery workers
(`may_start`, asked before a worker starts the job a message names):

* **Running limit.** While another user has a job waiting, a user with
  ``AUTODL_MAX_RUNNING_PER_USER`` jobs running (or starting) gets no further slot. When
  nobody else waits, free slots are not left idle: one user may use them all. A job that
  runs is never stopped to make room, so a newcomer waits at most until the first running
  job ends (a job lasts at most ``AUTODL_MAX_TIME_BUDGET`` plus grace and margin).
* **Round robin.** Among the users allowed a slot, the one with fewest jobs running goes
  first, then the one whose last job started longest ago (never started: first), then
  the oldest job. With one worker, two users' jobs alternate instead of one user's
  queue of ten running before the other's first.

Celery's queue is first in, first out; a worker that receives a job that should not
start yet sends its message again with a short countdown (`dispatch.celery.execute`) and takes
the next one. Two workers deciding at the same instant can both start a job of the same
user (the limit is read, not locked): the limit is then passed by one job for one run.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from autodl.service.jobs import ACTIVE
from autodl.service.models import Job
from autodl.settings import Settings

#: Queued jobs looked at per decision (the oldest); a user's later jobs wait their turn anyway.
SCAN = 1000
_NEVER = datetime.min.replace(tzinfo=UTC)


def fair_order(db: Session, settings: Settings, starting: Collection[int] = ()) -> list[Job]:
    """Queued jobs allowed to start now, best first; ``starting``: jobs handed to a process
    that has not claimed them yet (they count as running, and are not candidates)."""
    starting = set(starting)
    query = select(Job).where(Job.state == "queued", Job.deleted_at.is_(None))
    if starting:
        query = query.where(Job.id.not_in(starting))
    queued = db.scalars(query.order_by(Job.queued_at, Job.id).limit(SCAN)).all()
    if not queued:
        return []
    busy = Job.state.in_(ACTIVE)
    if starting:
        busy = or_(busy, Job.id.in_(starting))
    running = dict(
        db.execute(
            select(Job.user_id, func.count(Job.id))
            .where(busy, Job.deleted_at.is_(None))
            .group_by(Job.user_id)
        ).all()
    )
    users = {j.user_id for j in queued}
    last_start = dict(
        db.execute(
            select(Job.user_id, func.max(Job.started_at))
            .where(Job.user_id.in_(users))
            .group_by(Job.user_id)
        ).all()
    )
    limit = settings.max_running_per_user

    def allowed(job: Job) -> bool:
        others_wait = len(users) > 1
        return not (limit > 0 and others_wait and running.get(job.user_id, 0) >= limit)

    def key(job: Job):
        last = last_start.get(job.user_id) or _NEVER
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return (running.get(job.user_id, 0), last, job.queued_at or _NEVER, job.id)

    return sorted((j for j in queued if allowed(j)), key=key)


def next_job(db: Session, settings: Settings, starting: Collection[int] = ()) -> Job | None:
    """The queued job the embedded supervisor should start next, or None."""
    order = fair_order(db, settings, starting)
    return order[0] if order else None


def may_start(db: Session, job: Job, settings: Settings) -> bool:
    """Whether ``job`` (queued) may start now: its user is the one whose turn it is."""
    order = fair_order(db, settings)
    return bool(order) and order[0].user_id == job.user_id

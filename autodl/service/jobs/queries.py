"""The questions asked about jobs: who may see which, where a job stands in the queue.

Pages and the JSON API both look jobs up here (`get_job`, `load_job`); the dispatchers
ask `running_count` and `others_running`. Reads only: changes of state
are `autodl.service.jobs.state`'s.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autodl.service.db import Database
from autodl.service.jobs.state import ACTIVE
from autodl.service.models import Job, User, utcnow


def visible_jobs(user: User):
    """The runs ``user`` may see: their own, or everyone's for an administrator. Prediction
    jobs are not among them: they are found through their run (`get_prediction`)."""
    query = select(Job).where(Job.deleted_at.is_(None), Job.kind == "run")
    return query if user.is_admin else query.where(Job.user_id == user.id)


def get_job(db: Session, user: User, job_id: int) -> Job | None:
    """The job, or None when it does not exist *or belongs to someone else* (same answer)."""
    return db.scalar(visible_jobs(user).where(Job.id == job_id))


def load_job(db: Session, user: User, job_id: int) -> Job:
    """The user's job (any job for an admin); 404 alike for missing and someone else's."""
    # Imported here: the job process imports this package and must not load FastAPI.
    from autodl.service.deps import ServiceError

    job = get_job(db, user, job_id)
    if job is None:
        raise ServiceError(
            404, f"No job {job_id} among your jobs.", "List yours with GET /api/v1/jobs."
        )
    return job


def get_prediction(db: Session, parent: Job, prediction_id: int) -> Job | None:
    """The prediction job ``prediction_id`` of the run ``parent`` (already checked to be
    visible to the caller: `load_job`), or None."""
    return db.scalar(
        select(Job).where(
            Job.id == prediction_id,
            Job.parent_id == parent.id,
            Job.kind == "predict",
            Job.deleted_at.is_(None),
        )
    )


def predictions_of(db: Session, parent: Job) -> list[Job]:
    """The run's prediction jobs, newest first."""
    return list(
        db.scalars(
            select(Job)
            .where(Job.parent_id == parent.id, Job.kind == "predict", Job.deleted_at.is_(None))
            .order_by(Job.id.desc())
        )
    )


def queue_position(db: Session, job: Job) -> int | None:
    """1 for the next job to run; None unless queued (`queue_positions` of one job)."""
    if job.state != "queued" or job.queued_at is None:
        return None
    return queue_positions(db, [job.id]).get(job.id)


def queue_positions(db: Session, job_ids: Collection[int]) -> dict[int, int]:
    """`queue_position` of each queued job among ``job_ids`` (the others are left out),
    in one query: a listing's page asks once, not once a row."""
    if not job_ids:
        return {}
    ranked = (
        select(Job.id, func.row_number().over(order_by=(Job.queued_at, Job.id)).label("position"))
        .where(Job.state == "queued", Job.deleted_at.is_(None), Job.queued_at.is_not(None))
        .subquery()
    )
    rows = db.execute(select(ranked.c.id, ranked.c.position).where(ranked.c.id.in_(job_ids)))
    return {job_id: int(position) for job_id, position in rows}


def running_count(db: Session) -> int:
    return int(db.scalar(select(func.count(Job.id)).where(Job.state.in_(ACTIVE))) or 0)


def others_running(db: Database, job_id: int) -> int:
    """Jobs of this service active beside ``job_id`` (every worker's, not only ours):
    the same count as `running_count` less the job itself, so the run's load meter and
    the job's page (`present.running_fields`) name the same number."""
    with db.session() as s:
        return s.scalar(
            select(func.count()).select_from(Job).where(Job.state.in_(ACTIVE), Job.id != job_id)
        )


def stale_before(seconds: float):
    """The time before which a heartbeat (or a dispatch) is ``seconds`` old."""
    return utcnow() - timedelta(seconds=seconds)

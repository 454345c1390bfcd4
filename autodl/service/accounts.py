"""Account operations shared by the pages and the API: change the password, delete the account.

Both need the current password (a stolen session cookie alone cannot lock a user
out or erase their work) and count wrong passwords against the account's sign-in
limit. Deleting an account cancels its running jobs, deletes every job with its
files (`jobs.delete`), its API tokens and the user row; the last administrator
cannot delete their account.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from autodl.service import auth
from autodl.service import jobs as J
from autodl.service.deps import Service, ServiceError
from autodl.service.models import ApiToken, Job, JobEvent, User


def name_key(name: str) -> str:
    """The rate limiter's key of an account name (names longer than any real one cut)."""
    return "name:" + name.strip().lower()[:64]


def check_password_attempt(service: Service, user: User, password: str) -> None:
    """ServiceError 403 for a wrong password (counted), 429 when too many were wrong."""
    key = name_key(user.name)
    service.limiter.check(key, what="password attempts")
    service.limiter.hit(key)  # before the hash: parallel guesses cannot outrun the count
    if not auth.verify_password(user.password_hash, password):
        raise ServiceError(403, "The password is wrong.", "Type your current password.")
    service.limiter.forgive(key)


def change_password(
    service: Service, db: Session, user: User, current: str, new: str, again: str | None = None
) -> User:
    """New password set, every session of the user signed out; the user row (in ``db``).

    ServiceError 403 for a wrong current password, 422 for an unacceptable new one.
    """
    row = db.merge(user)
    check_password_attempt(service, row, current)
    try:
        auth.change_password(row, current, new, again)
    except auth.AuthError as e:
        raise ServiceError(422, e.message) from None
    db.flush()
    return row


def delete_account(service: Service, db: Session, user: User, password: str) -> list[int]:
    """Delete ``user`` with every job (files too), token and session; the ids of the jobs.

    The caller tells the dispatcher about each job id, so running ones are stopped.
    """
    row = db.merge(user)
    check_password_attempt(service, row, password)
    if row.is_admin:
        admins = db.scalar(select(func.count()).select_from(User).where(User.is_admin))
        if admins <= 1:
            raise ServiceError(
                409,
                "You are the only administrator: the service would have none.",
                "Make another user an administrator first (`autodl user create NAME --admin`).",
            )
    jobs = db.scalars(select(Job).where(Job.user_id == row.id)).all()
    ids = [job.id for job in jobs]
    for job in jobs:
        if job.deleted_at is None:
            J.delete(db, job, service.storage)  # cancels a running one, removes its files
        else:
            service.storage.delete_job(job.id)
    if ids:
        db.execute(delete(JobEvent).where(JobEvent.job_id.in_(ids)))
        db.execute(delete(Job).where(Job.id.in_(ids)))
    db.execute(delete(ApiToken).where(ApiToken.user_id == row.id))
    db.delete(row)
    db.flush()
    for job_id in ids:
        service.curves.pop(job_id, None)
    return ids


def account_summary(db: Session, user: User) -> dict:
    """What deleting the account removes: counts for the confirmation page."""
    jobs = db.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.user_id == user.id, Job.deleted_at.is_(None))
    )
    tokens = db.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)
    )
    return {"jobs": jobs or 0, "tokens": tokens or 0}

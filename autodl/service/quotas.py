"""Quotas: jobs and compute time per user in any 24 hours, and bytes stored per user.

A job counts against the daily quotas unless it was refunded: a platform failure
(worker lost, server restart, an error in our own code), or cancelled while still
queued. A failure caused by the data (no prediction within the budget, the memory
limit, the engine failing on it) counts. A rejected upload never becomes a job, so it
costs nothing. Deleting a job frees its storage but not its place in the day's count.

Compute time is the time budget: a job reserves its whole budget while queued or
running, and once it has ended keeps only the time its engine ran (at most the
budget), so an engine that converges early gives the rest back. A submission whose
budget exceeds what is left of the last 24 hours is refused (429).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from autodl._units import human_bytes
from autodl.service.models import Job, User, utcnow
from autodl.service.uploads import UploadRefused
from autodl.settings import Settings


@dataclass
class Usage:
    jobs_per_day: int
    jobs_today: int
    storage_quota: int
    storage_used: int
    compute_per_day: float = 0.0
    compute_used: float = 0.0

    @property
    def jobs_left(self) -> int:
        return max(0, self.jobs_per_day - self.jobs_today)

    @property
    def storage_left(self) -> int:
        return max(0, self.storage_quota - self.storage_used)

    @property
    def compute_left(self) -> float:
        return max(0.0, self.compute_per_day - self.compute_used)

    def to_json(self) -> dict:
        return {
            "jobs_per_day": self.jobs_per_day,
            "jobs_today": self.jobs_today,
            "jobs_left": self.jobs_left,
            "storage_quota_bytes": self.storage_quota,
            "storage_used_bytes": self.storage_used,
            "storage_left_bytes": self.storage_left,
            "compute_seconds_per_day": self.compute_per_day,
            "compute_seconds_used": round(self.compute_used, 1),
            "compute_seconds_left": round(self.compute_left, 1),
        }


def usage(db: Session, user: User, settings: Settings) -> Usage:
    since = utcnow() - timedelta(days=1)
    jobs_today = db.scalar(
        select(func.count(Job.id)).where(
            Job.user_id == user.id, Job.created_at > since, Job.quota_refunded.is_(False)
        )
    )
    # Seconds charged per job: its budget, or once it has run, the time it ran (≤ budget).
    charged = case(
        (Job.duration.is_(None), Job.time_budget),
        (Job.duration < Job.time_budget, Job.duration),
        else_=Job.time_budget,
    )
    compute = db.scalar(
        select(func.coalesce(func.sum(charged), 0.0)).where(
            Job.user_id == user.id, Job.created_at > since, Job.quota_refunded.is_(False)
        )
    )
    used = db.scalar(
        select(func.coalesce(func.sum(Job.stored_bytes), 0)).where(
            Job.user_id == user.id, Job.deleted_at.is_(None)
        )
    )
    return Usage(
        jobs_per_day=user.jobs_per_day if user.jobs_per_day is not None else settings.jobs_per_day,
        jobs_today=int(jobs_today or 0),
        storage_quota=(
            user.storage_quota_bytes
            if user.storage_quota_bytes is not None
            else settings.storage_quota_bytes
        ),
        storage_used=int(used or 0),
        compute_per_day=float(
            user.compute_seconds_per_day
            if user.compute_seconds_per_day is not None
            else settings.compute_seconds_per_day
        ),
        compute_used=float(compute or 0.0),
    )


def check_can_submit(u: Usage) -> None:
    """Refuse before the upload is read when the user is already out of quota."""
    if u.jobs_left <= 0:
        raise UploadRefused(
            f"You have used your {u.jobs_per_day} jobs for the last 24 hours.",
            429,
            "Try again tomorrow, or ask the operator for a larger quota. Jobs that failed "
            "because of the platform, and jobs cancelled before they started, do not count.",
        )
    if u.compute_left < 1:
        raise _compute_refused(u, None)
    if u.storage_left <= 0:
        raise UploadRefused(
            f"Your storage is full ({human_bytes(u.storage_used)} of {human_bytes(u.storage_quota)}).",
            413,
            "Delete jobs you no longer need (My jobs → Delete) to free space.",
        )


def check_compute(u: Usage, budget: float) -> None:
    """Refuse a job whose time budget exceeds the compute time left of the last 24 hours."""
    if budget > u.compute_left:
        raise _compute_refused(u, budget)


def _compute_refused(u: Usage, budget: float | None) -> UploadRefused:
    asked = f"This job asks for {budget:g} s but " if budget is not None else ""
    return UploadRefused(
        f"{asked}you have {u.compute_left:.0f} s of compute time left of your "
        f"{u.compute_per_day:g} s for the last 24 hours.",
        429,
        "Submit it with a smaller time budget, try again later (time used more than 24 hours "
        "ago is given back), or ask the operator for a larger quota. Jobs that failed because "
        "of the platform, and jobs cancelled before they started, do not count.",
    )

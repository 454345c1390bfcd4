"""Quotas: jobs per user in any 24 hours, and bytes stored per user.

A job counts against the daily quota unless it was refunded (a platform failure,
or cancelled while still queued). A rejected upload never becomes a job, so it
costs nothing. Deleting a job frees its storage but not its place in the day's count.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autodl.service.models import Job, User, utcnow
from autodl.service.uploads import UploadRefused, human_bytes
from autodl.settings import Settings


@dataclass
class Usage:
    jobs_per_day: int
    jobs_today: int
    storage_quota: int
    storage_used: int

    @property
    def jobs_left(self) -> int:
        return max(0, self.jobs_per_day - self.jobs_today)

    @property
    def storage_left(self) -> int:
        return max(0, self.storage_quota - self.storage_used)

    def to_json(self) -> dict:
        return {
            "jobs_per_day": self.jobs_per_day,
            "jobs_today": self.jobs_today,
            "jobs_left": self.jobs_left,
            "storage_quota_bytes": self.storage_quota,
            "storage_used_bytes": self.storage_used,
            "storage_left_bytes": self.storage_left,
        }


def usage(db: Session, user: User, settings: Settings) -> Usage:
    since = utcnow() - timedelta(days=1)
    jobs_today = db.scalar(
        select(func.count(Job.id)).where(
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
    if u.storage_left <= 0:
        raise UploadRefused(
            f"Your storage is full ({human_bytes(u.storage_used)} of {human_bytes(u.storage_quota)}).",
            413,
            "Delete jobs you no longer need (My jobs → Delete) to free space.",
        )

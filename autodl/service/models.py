"""The service's tables (SQLAlchemy 2). Portable SQL only: they run on SQLite and PostgreSQL.

The database is the source of truth for every job; files on disk only hold data.
Timestamps are timezone-aware UTC. A job's state changes only through
`autodl.service.jobs.set_state`, which also writes a `JobEvent`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores UTC and always gives back aware datetimes (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: None: the operator's default (AUTODL_JOBS_PER_DAY / AUTODL_STORAGE_QUOTA_BYTES).
    jobs_per_day: Mapped[int | None] = mapped_column(Integer, nullable=True)
    storage_quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: None: AUTODL_COMPUTE_SECONDS_PER_DAY (seconds of time budget in any 24 hours).
    compute_seconds_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Bumped on password change or "sign out everywhere": older cookies stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=0)

    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )


class ApiToken(Base):
    """An API token; only the SHA-256 of the secret is kept (the user sees it once)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class Job(Base):
    """One run of the engine on one uploaded dataset."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    dataset_name: Mapped[str] = mapped_column(String(200))
    #: check_dataset's summary (domain, classes, counts, shape) as JSON text.
    dataset_info: Mapped[str] = mapped_column(Text, default="{}")
    #: The SHA-256 of the dataset's content (`leaderboard.dataset_hash`), computed when the
    #: upload was checked: runs with the same hash are runs of the same data (None: before 0006).
    dataset_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    time_budget: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    scoring_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: For `failed`: what went wrong, written for the user; `fault` is "data" or "platform".
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: A note on a finished job (e.g. the engine stopped early but predictions were scored).
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requeues: Mapped[int] = mapped_column(Integer, default=0)
    #: Who runs it: "host:pid" of the worker process (its process group for the supervisor).
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The `autodl worker` (its `WorkerNode.name`) that runs it; None for the embedded supervisor.
    node: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    #: Scale-out: when its last broker message was sent; messages sent again because the
    #: broker lost one (`dispatch.celery.CeleryDispatcher.recover_lost`); times a stopping worker
    #: handed it back to the queue (SIGTERM, `jobs.hand_back`).
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redispatches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    handbacks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The job does not count against the daily quota (platform failure, cancelled in queue).
    quota_refunded: Mapped[bool] = mapped_column(Boolean, default=False)
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    alc: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_nauc: Mapped[float | None] = mapped_column(Float, nullable=True)
    final_accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_predictions: Mapped[int] = mapped_column(Integer, default=0)
    duration: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: Set when the user deletes the job: its files are gone, the row stays so that
    #: the daily quota cannot be reset by deleting jobs.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    #: "run" (train on an uploaded dataset) or "predict" (apply the model of job
    #: ``parent_id`` to uploaded data: `autodl.service.predictions`). Prediction jobs go
    #: through the same queue, dispatchers, runner and quotas; the job listings show runs only.
    kind: Mapped[str] = mapped_column(String(16), default="run", server_default="run")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), nullable=True, index=True
    )

    user: Mapped[User] = relationship()
    events: Mapped[list[JobEvent]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobEvent.id"
    )


class JobEvent(Base):
    """One state change of a job, time-stamped (the job's history)."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)

    job: Mapped[Job] = relationship(back_populates="events")


class WorkerNode(Base):
    """An `autodl worker` process (one per machine, usually): for the operator's Workers page."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    host: Mapped[str] = mapped_column(String(200))
    #: "CPU" or the GPUs it runs jobs on, e.g. "GPU ×2 (NVIDIA H100)".
    devices: Mapped[str] = mapped_column(String(200), default="CPU")
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    jobs_done: Mapped[int] = mapped_column(Integer, default=0)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

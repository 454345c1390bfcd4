"""Request and response bodies of the API: one pydantic model per direction."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, in words for a person.")
    hint: str | None = Field(None, description="What to do about it.")
    problems: list[dict] | None = Field(
        None, description="Every problem found in a rejected dataset."
    )
    code: str | None = Field(
        None,
        description="A stable name of the error, for programs; only where one is set: "
        "'missing_label' (a zip of a raw table whose label column could not be guessed: "
        "send it again with the `label` field naming one of `columns`).",
    )
    columns: list[str] | None = Field(
        None, description="With code 'missing_label': the table's columns (at most 50)."
    )


class DatasetOut(BaseModel):
    name: str = Field(description="The dataset's name (its <name>.data folder); names files.")
    domain: str | None
    classes: int | None
    label_names: list[str] | None = Field(
        description="The class names; null in listings (read one job for them)."
    )
    train: int | None
    test: int | None
    unlabelled: int | None
    shape: list[int] | None
    problems: list[dict] | None = Field(
        None,
        description="Warnings of the upload's check (at most 100); only when reading one job.",
    )
    problems_total: int | None = Field(
        None, description="How many problems the check found in all; only when reading one job."
    )


class EventOut(BaseModel):
    state: str
    at: str | None
    message: str | None


class JobOut(BaseModel):
    id: int
    name: str
    owner: str | None
    dataset: DatasetOut
    time_budget: float
    state: str = Field(description="queued, running, scoring, finished, failed or cancelled")
    reason: str | None = Field(description="Why a failed job failed, for its user.")
    fault: str | None = Field(description="'data' or 'platform' for a failed job.")
    note: str | None
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration: float | None
    alc: float | None
    final_nauc: float | None
    final_accuracy: float | None
    n_predictions: int
    quota_refunded: bool
    url: str
    page: str
    queue_position: int | None = Field(
        None, description="1 = next to run; null unless queued. Listings fill it too."
    )
    jobs_running: int | None = Field(
        None, description="Jobs running now; null unless queued. Listings fill it too."
    )
    other_jobs: int | None = Field(
        None,
        description="Other jobs running beside this one now; null unless running. Listings "
        "fill it too.",
    )
    events: list[EventOut] | None = Field(
        None, description="The job's history; null in listings (read one job for it)."
    )
    downloads: dict[str, str] | None = Field(
        None,
        description="Name -> URL of each file the job has now; null in listings (read one "
        "job for them).",
    )


class UsageOut(BaseModel):
    jobs_per_day: int
    jobs_today: int
    jobs_left: int
    storage_quota_bytes: int
    storage_used_bytes: int
    storage_left_bytes: int
    compute_seconds_per_day: float = 0.0
    compute_seconds_used: float = 0.0
    compute_seconds_left: float = 0.0


class JobListOut(BaseModel):
    jobs: list[JobOut] = Field(description="One page of jobs, in the order asked for.")
    usage: UsageOut
    next: str | None = Field(
        None,
        description="Pass as ?cursor= (with the same sort) for the next page; null on the last.",
    )


class PointOut(BaseModel):
    index: int
    t: float
    nauc: float | None
    accuracy: float | None
    learner: str | None
    valid_score: float | None
    late: bool


class ClassAucOut(BaseModel):
    label: str
    auc: float | None


class CurveOut(BaseModel):
    id: int
    name: str
    state: str
    time_budget: float
    t0: float
    points: list[PointOut]
    alc: float | None
    final_nauc: float | None
    final_accuracy: float | None
    auc_per_class: list[ClassAucOut]
    ignored_classes: list[str | int]


class MeOut(BaseModel):
    id: int
    name: str
    is_admin: bool
    usage: UsageOut


class TokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["laptop"])


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: str | None
    last_used_at: str | None


class TokenCreatedOut(TokenOut):
    token: str = Field(description="The secret: shown this once, never again.")


class UserAdminOut(BaseModel):
    id: int
    name: str
    is_admin: bool
    created_at: str | None
    usage: UsageOut


class QuotaIn(BaseModel):
    # Upper bounds keep values within the database's columns (a 422, never a 500).
    jobs_per_day: int | None = Field(
        None, ge=0, le=1_000_000, description="null: the operator's default"
    )
    storage_quota_bytes: int | None = Field(
        None, ge=0, le=2**60, description="null: the operator's default"
    )
    compute_seconds_per_day: float | None = Field(
        None, ge=0, le=1e9, description="seconds of time budget in any 24 hours; null: default"
    )


class PasswordIn(BaseModel):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class AccountDeleteIn(BaseModel):
    password: str = Field(max_length=1024, description="Your current password, to confirm.")

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


class ExampleOut(BaseModel):
    row: int = Field(description="The test row (0-based, in the test split's record order).")
    id: int = Field(description="The record's id.")
    label: str = Field(
        description="The class it is filed under (multi-label: the label got wrong)."
    )
    true: list[str]
    predicted: list[str]
    probability: float = Field(
        description="Multi-class: of the class predicted; multi-label: of `label`."
    )
    error: float = Field(description="How confidently wrong (the order of the list).")
    kind: str = Field(description="image, video, series (an image each), text or features.")
    image: str | None
    image_url: str | None = Field(description="The PNG (images, videos, series), or null.")
    text: str | None = Field(description="Text decoded to words, or a tabular row's values.")


class ExamplesOut(BaseModel):
    task: str = Field(description="multi-class or multi-label")
    domain: str
    prediction: int | None = Field(description="The prediction they are taken from.")
    rows: int
    mistakes: int = Field(description="Test rows the prediction gets wrong.")
    per_class: int
    threshold: float | None
    examples: list[ExampleOut] = Field(description="Most confident mistakes first.")


class LeaderboardRowOut(BaseModel):
    rank: int | None
    id: int
    name: str
    owner: str | None
    state: str
    time_budget: float
    seed: int | None
    first_prediction: float | None = Field(description="Seconds to the first prediction.")
    alc: float | None
    final_nauc: float | None
    final_accuracy: float | None
    n_predictions: int
    created_at: str | None
    this: bool = Field(description="The job the leaderboard was asked for.")
    url: str
    page: str
    curve: str


class LeaderboardOut(BaseModel):
    job: int
    dataset: dict = Field(description="name and content hash (null for older jobs)")
    everyone: bool = Field(description="Every user's runs (administrators) or yours only.")
    runs: list[LeaderboardRowOut] = Field(description="Best ALC first.")
    curves: list[int] = Field(description="The jobs whose curves the page overlays.")
    truncated: bool


class PerClassOut(BaseModel):
    label: str
    support: int = Field(description="Examples of the class in the test split.")
    precision: float | None = Field(description="Null when the class is never predicted.")
    recall: float | None = Field(description="Null when the class has no example.")
    f1: float | None
    auc: float | None = Field(description="ROC AUC, null for a class left out of the NAUC.")
    average_precision: float | None = Field(description="Null when the class has no example.")
    threshold: float | None = Field(
        description="Multi-label: the score from which the label counts as predicted; "
        "multi-class: null (the predicted class is the highest score)."
    )


class DiagnosticsOut(BaseModel):
    id: int
    state: str
    task: str = Field(description="multi-class or multi-label")
    diagnosed_prediction: int | None = Field(
        description="The prediction they describe: the last made within the time budget."
    )
    label_names: list[str] | None
    confusion_matrix: list[list[int]] | None = Field(
        description="Multi-class: rows the true class, columns the predicted class, counts."
    )
    top_confusions: list[dict] | None = Field(
        description="Multi-class: the largest off-diagonal cells, {true, predicted, count, "
        "share} (share: of the true class's examples)."
    )
    per_class: list[PerClassOut] = Field(description="One row per class, in class order.")
    label_confusion: list[dict] | None = Field(
        description="Multi-label: each label's {tp, fp, fn, tn} at its threshold."
    )
    error_cooccurrence: list[list[int]] | None = Field(
        description="Multi-label: examples on which labels i and j are both wrong."
    )
    matrix_max_classes: int = Field(
        description="Beyond this many classes the page lists the top-confused pairs."
    )
    curves: dict | None = Field(
        description="curves.json: per class (with positives and negatives) `roc` {fpr, "
        "tpr} and `pr` {recall, precision}, downsampled to `max_points`; `macro` the "
        "average curves with their AUC and AP."
    )


def upload_body(**properties: dict) -> dict:
    """The OpenAPI request body of an upload: a multipart form whose required field
    'file' is the zip, with the other ``properties`` (fields, in order), or the raw zip."""
    return {
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["file"], "properties": properties}
            },
            "application/zip": {"schema": {"type": "string", "format": "binary"}},
        }
    }

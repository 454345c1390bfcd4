"""Jobs are the resource: list, submit, read, cancel, delete, curve, log, downloads."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from autodl.service import jobs as J
from autodl.service.api.schemas import (
    CurveOut,
    DiagnosticsOut,
    ErrorOut,
    ExamplesOut,
    JobListOut,
    JobOut,
    LeaderboardOut,
    upload_body,
)
from autodl.service.deps import DB, RowId, ServiceDep, ServiceError, User
from autodl.service.diagnostics import diagnostics_json
from autodl.service.examples import example_image, examples_json
from autodl.service.leaderboard import leaderboard_json
from autodl.service.listing import DEFAULT_LIMIT, MAX_LIMIT, page, page_json
from autodl.service.models import Job
from autodl.service.present import (
    DOWNLOADS,
    curve_json,
    download_path,
    job_json,
    log_tail,
    why_missing,
)
from autodl.service.quotas import usage
from autodl.service.submissions import api_refusal, submit
from autodl.service.uploads import UploadRefused

router = APIRouter(
    prefix="/jobs", tags=["jobs"], responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}}
)

SortKey = Literal[
    "created",
    "-created",
    "name",
    "-name",
    "state",
    "-state",
    "budget",
    "-budget",
    "alc",
    "-alc",
    "duration",
    "-duration",
    "dataset",
    "-dataset",
]


@router.get(
    "",
    response_model=JobListOut,
    summary="Your jobs, newest first (or sorted), one page at a time",
    description=(
        f"Pages of `limit` jobs (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}). When more "
        "jobs follow, `next` holds a cursor: pass it as `cursor` with the same `sort` for "
        "the next page. The rows of a listing leave out (null) the dataset's "
        "`label_names` and `problems`, and the job's `events` and `downloads`: read one "
        "job for those. `queue_position`, `jobs_running` and `other_jobs` are filled as "
        "when reading one job."
    ),
    responses={422: {"model": ErrorOut}},
)
def list_jobs(
    db: DB,
    service: ServiceDep,
    user: User,
    sort: SortKey = "-created",
    all: Annotated[bool, Query(description="Administrators: every user's jobs")] = False,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description=f"Jobs per page, 1 to {MAX_LIMIT}")
    ] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=1000, description="The `next` of the previous page (opaque)"),
    ] = None,
):
    rows, next_cursor = page(db, user, sort, all, limit, cursor)
    return {
        "jobs": page_json(db, service.storage, rows),
        "usage": usage(db, user, service.settings).to_json(),
        "next": next_cursor,
    }


@router.post(
    "",
    status_code=201,
    response_model=JobOut,
    summary="Submit a dataset zip (multipart field 'file', or the raw body)",
    responses={413: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": upload_body(
            file={"type": "string", "format": "binary", "description": "The dataset zip"},
            name={"type": "string"},
            time_budget={"type": "number", "description": "Seconds (default 1200)"},
            label={
                "type": "string",
                "description": "Label column (tables only): for a zip of raw data, the column "
                "of the table that holds the classes (else guessed from names such as 'label' "
                "or 'class'). A zip of raw data (a CSV, TSV or Parquet table, or one folder "
                "per class of images, audio, video or text) is converted with `autodl "
                "format`'s defaults before it is validated.",
            },
        ),
        "parameters": [
            {"name": "name", "in": "query", "required": False, "schema": {"type": "string"}},
            {"name": "time_budget", "in": "query", "required": False, "schema": {"type": "number"}},
            {
                "name": "label",
                "in": "query",
                "required": False,
                "description": "Label column (tables only), for a zip of raw data",
                "schema": {"type": "string"},
            },
        ],
    },
)
async def create(request: Request, service: ServiceDep, user: User, response: Response):
    try:
        job_id = await submit(request, service, user)
    except UploadRefused as e:
        raise api_refusal(e) from None
    response.headers["Location"] = f"/api/v1/jobs/{job_id}"
    return await run_in_threadpool(_job_out, service, job_id)


def _job_out(service, job_id: int) -> dict:
    with service.db.session() as s:
        return job_json(s, service.storage, s.get(Job, job_id))


@router.get(
    "/{job_id}", response_model=JobOut, summary="One job: state, queue position, scores, downloads"
)
def read(job_id: RowId, db: DB, service: ServiceDep, user: User):
    return job_json(db, service.storage, J.load_job(db, user, job_id))


@router.delete(
    "/{job_id}",
    status_code=204,
    summary="Delete a job with its dataset and results (cancels it first)",
)
def remove(job_id: RowId, db: DB, service: ServiceDep, user: User):
    J.delete(db, J.load_job(db, user, job_id), service.storage)
    service.curves.pop(job_id, None)
    service.dispatcher.notify(job_id)
    return Response(status_code=204)


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    summary="Cancel a queued or running job",
    responses={409: {"model": ErrorOut}},
)
def cancel(job_id: RowId, db: DB, service: ServiceDep, user: User):
    job = J.load_job(db, user, job_id)
    if not J.cancel(db, job):
        raise ServiceError(
            409, f"Job {job_id} is {job.state}; only a queued or running job can be cancelled."
        )
    service.dispatcher.notify(job_id)
    return job_json(db, service.storage, job)


@router.get(
    "/{job_id}/curve",
    response_model=CurveOut,
    summary="The learning curve so far (live while the job runs)",
)
def curve(job_id: RowId, db: DB, service: ServiceDep, user: User):
    return curve_json(service.curves, service.storage, J.load_job(db, user, job_id))


def _none_yet(job: Job, what: str, hint: str) -> ServiceError:
    """404: the job has no ``what`` (yet, while it has not ended)."""
    yet = f" yet (it is {job.state})." if job.state not in J.TERMINAL else "."
    return ServiceError(404, f"Job {job.id} has no {what}{yet}", hint)


@router.get(
    "/{job_id}/diagnostics",
    response_model=DiagnosticsOut,
    summary="Confusion matrix, per-class precision, recall, F1, AUC, AP, ROC and PR curves",
    description="For the run's last prediction within the time budget, as the job stored "
    "them (scores.json and curves.json).",
)
def diagnostics(job_id: RowId, db: DB, service: ServiceDep, user: User):
    job = J.load_job(db, user, job_id)
    data = diagnostics_json(service.storage, job)
    if data is None:
        raise _none_yet(
            job,
            "diagnostics",
            "They are written when a run on a dataset with a solution made a prediction "
            "within its time budget and was scored.",
        )
    return data


@router.get(
    "/{job_id}/examples",
    response_model=ExamplesOut,
    summary="The examples the run gets most wrong (made by the job; images under examples/)",
)
def examples(job_id: RowId, db: DB, service: ServiceDep, user: User):
    job = J.load_job(db, user, job_id)
    index = examples_json(service.storage, job)
    if index is None:
        raise _none_yet(
            job,
            "examples",
            "They are made when a run on a dataset with a solution has been scored.",
        )
    return index


@router.get(
    "/{job_id}/examples/{name}",
    response_class=FileResponse,
    summary="One image of the examples (a PNG named in the examples' index)",
)
def example_png(job_id: RowId, name: str, db: DB, service: ServiceDep, user: User):
    path = example_image(service.storage, J.load_job(db, user, job_id), name)
    if path is None:
        raise ServiceError(404, f"Job {job_id} has no example image {name!r}.")
    return FileResponse(path, media_type="image/png")


@router.get(
    "/{job_id}/leaderboard",
    response_model=LeaderboardOut,
    summary="Runs of the same dataset (same content hash), best ALC first",
    description="Your runs of the job's dataset; every user's for an administrator.",
)
def leaderboard(job_id: RowId, db: DB, service: ServiceDep, user: User):
    return leaderboard_json(db, service.storage, user, J.load_job(db, user, job_id))


@router.get(
    "/{job_id}/log",
    response_class=PlainTextResponse,
    summary="The engine's log (its end, up to 200 kB)",
)
def log(job_id: RowId, db: DB, service: ServiceDep, user: User):
    return log_tail(service.storage, J.load_job(db, user, job_id))


@router.get(
    "/{job_id}/download/{name}",
    summary="Download: predictions.csv, predictions.predict, results.zip, report.html, learning-curve.png, scores.json, curves.json, engine.log",
    response_class=FileResponse,
)
def download(job_id: RowId, name: str, db: DB, service: ServiceDep, user: User):
    job = J.load_job(db, user, job_id)
    if name not in DOWNLOADS:
        raise ServiceError(404, f"No download called {name!r}.", "One of: " + ", ".join(DOWNLOADS))
    path = download_path(service.storage, job, name)
    if path is None:
        raise ServiceError(404, *why_missing(job, name))
    media = DOWNLOADS[name][1]
    filename = {
        "predictions.predict": f"{job.dataset_name}.predict",
        "results.zip": f"{job.dataset_name}-job{job.id}-results.zip",
    }.get(name, name)
    inline = name in ("report.html", "learning-curve.png")
    headers = {}
    if name == "report.html":
        # The report shows names from the upload: sandbox it away from the site's origin.
        headers["Content-Security-Policy"] = (
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"
        )
    return FileResponse(
        path,
        media_type=media,
        filename=filename,
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )

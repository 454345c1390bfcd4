"""A run's model and predictions on new data: download the model, submit data, read and
download prediction jobs (`autodl.service.predictions` underneath)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from autodl.service import jobs as J
from autodl.service.api.schemas import ErrorOut, upload_body
from autodl.service.deps import DB, RowId, ServiceDep, ServiceError, User
from autodl.service.models import Job
from autodl.service.predictions import (
    PREDICTIONS_CSV,
    model_problem,
    prediction_file,
    prediction_json,
    submit_prediction,
)
from autodl.service.submissions import api_refusal
from autodl.service.uploads import UploadRefused

router = APIRouter(
    prefix="/jobs",
    tags=["predictions"],
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)


class PredictionOut(BaseModel):
    id: int
    job_id: int
    name: str
    input: str | None = None
    state: str
    rows: int | None = None
    time_budget: float
    reason: str | None = None
    fault: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    duration: float | None = None
    url: str
    #: The CSV's address once the prediction has finished, else null.
    download: str | None = None


class PredictionListOut(BaseModel):
    predictions: list[PredictionOut]


def _prediction(db, user, job_id: int, prediction_id: int) -> Job:
    parent = J.load_job(db, user, job_id)  # someone else's job: 404, as a missing one
    job = J.get_prediction(db, parent, prediction_id)
    if job is None:
        raise ServiceError(
            404,
            f"No prediction {prediction_id} under job {job_id}.",
            f"List them with GET /api/v1/jobs/{job_id}/predictions.",
        )
    return job


@router.get(
    "/{job_id}/model",
    response_class=FileResponse,
    summary="The job's model: a zip of its model/ folder (load it with autodl.load_model or autodl predict)",
)
def model(job_id: RowId, db: DB, service: ServiceDep, user: User):
    job = J.load_job(db, user, job_id)
    problem = model_problem(service.storage, job)
    if problem is not None:
        raise ServiceError(404, *problem)
    path = service.storage.model_zip(job.id)  # made for this answer, removed after it
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"{job.dataset_name}-job{job.id}-model.zip",
        background=BackgroundTask(service.storage.remove_temp, path),
    )


@router.post(
    "/{job_id}/predictions",
    status_code=201,
    response_model=PredictionOut,
    summary="Predict on new data with the job's model (multipart field 'file', or the raw body)",
    description=(
        "The zip holds an AutoDL dataset (its unlabelled part is predicted, else its test "
        "part) or raw files like those the model was trained on (images, audio, video, "
        ".txt files, or a CSV with the same columns). It is checked like a dataset upload "
        "and against the model's spec before it is queued; the prediction job runs with a "
        "budget of AUTODL_PREDICT_BUDGET seconds, counted against your quotas, and yields "
        "predictions.csv."
    ),
    responses={413: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}},
    openapi_extra={
        "requestBody": upload_body(
            file={"type": "string", "format": "binary"}, name={"type": "string"}
        )
    },
)
async def create(
    job_id: RowId, request: Request, service: ServiceDep, user: User, response: Response
):
    try:
        pid = await submit_prediction(request, service, user, job_id)
    except UploadRefused as e:
        raise api_refusal(e) from None
    response.headers["Location"] = f"/api/v1/jobs/{job_id}/predictions/{pid}"
    return await run_in_threadpool(_out, service, pid)


def _out(service, pid: int) -> dict:
    with service.db.read_session() as s:
        return prediction_json(service.storage, s.get(Job, pid))


@router.get(
    "/{job_id}/predictions",
    response_model=PredictionListOut,
    summary="The job's prediction jobs, newest first",
)
def list_predictions(job_id: RowId, db: DB, service: ServiceDep, user: User):
    parent = J.load_job(db, user, job_id)
    return {
        "predictions": [prediction_json(service.storage, p) for p in J.predictions_of(db, parent)]
    }


@router.get(
    "/{job_id}/predictions/{prediction_id}",
    response_model=PredictionOut,
    summary="One prediction job: state, and the CSV's address once finished",
)
def read(job_id: RowId, prediction_id: RowId, db: DB, service: ServiceDep, user: User):
    return prediction_json(service.storage, _prediction(db, user, job_id, prediction_id))


@router.get(
    f"/{{job_id}}/predictions/{{prediction_id}}/{PREDICTIONS_CSV}",
    response_class=FileResponse,
    summary="The predictions: one row per input, its id or file, then one column per class",
)
def download(job_id: RowId, prediction_id: RowId, db: DB, service: ServiceDep, user: User):
    job = _prediction(db, user, job_id, prediction_id)
    path = prediction_file(service.storage, job) if job.state == "finished" else None
    if path is None:
        why = {
            "failed": f"The prediction failed: {job.reason}",
            "cancelled": "The prediction was cancelled.",
        }.get(job.state, f"The prediction is {job.state}: its CSV is ready once it has finished.")
        raise ServiceError(404, why, None)
    return FileResponse(
        path,
        media_type="text/csv",
        filename=f"{job.dataset_name}-job{job_id}-predictions{job.id}.csv",
    )


@router.delete(
    "/{job_id}/predictions/{prediction_id}",
    status_code=204,
    summary="Delete a prediction job and its files (cancels it first)",
)
def remove(job_id: RowId, prediction_id: RowId, db: DB, service: ServiceDep, user: User):
    J.delete(db, _prediction(db, user, job_id, prediction_id), service.storage)
    service.dispatcher.notify(prediction_id)
    return Response(status_code=204)

"""The job page's "Predict on new data" form (without JavaScript: a plain multipart post)
and deleting a prediction job; the panel itself is `predictions.panel`, shown by
`pages.jobs.job_page`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from autodl.service import jobs as J
from autodl.service.deps import DB, RowId, ServiceDep, ServiceError, User
from autodl.service.pages.jobs import job_page
from autodl.service.predictions import submit_prediction
from autodl.service.submissions import refusal_headers
from autodl.service.uploads import UploadRefused

router = APIRouter()


@router.post("/jobs/{job_id}/predictions")
async def predict_post(job_id: RowId, request: Request, service: ServiceDep, user: User):
    try:
        await submit_prediction(request, service, user, job_id)
    except UploadRefused as e:
        if e.status == 404:
            raise ServiceError(404, e.message, e.hint) from None
        page = await run_in_threadpool(_job_page, request, service, user, job_id, e)
        page.headers.update(refusal_headers(e))
        return page
    return RedirectResponse(f"/jobs/{job_id}?done=predicting#predict", status_code=303)


def _job_page(request: Request, service, user, job_id: int, e: UploadRefused):
    """The job page again (`pages.jobs.job_page`), the refusal shown beside the form."""
    request.state.prediction_error, request.state.prediction_hint = e.message, e.hint
    with service.db.read_session() as db:
        page = job_page(request, job_id, service, db, user)
    page.status_code = e.status
    return page


@router.post("/jobs/{job_id}/predictions/{prediction_id}/delete")
def delete_prediction(job_id: RowId, prediction_id: RowId, service: ServiceDep, db: DB, user: User):
    parent = J.load_job(db, user, job_id)
    job = J.get_prediction(db, parent, prediction_id)
    if job is None:
        raise ServiceError(404, f"No prediction {prediction_id} under job {job_id}.")
    J.delete(db, job, service.storage)
    service.dispatcher.notify(prediction_id)
    return RedirectResponse(f"/jobs/{job_id}?done=prediction_deleted#predict", status_code=303)

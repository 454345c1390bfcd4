"""My jobs, the upload page, a job's page, cancel and delete, and the compare view."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from autodl.service import jobs as J
from autodl.service.deps import DB, RowId, ServiceDep, ServiceError, User
from autodl.service.examples import examples_json
from autodl.service.leaderboard import count_same_dataset, leaderboard_json
from autodl.service.listing import DEFAULT_LIMIT, SORTS, count_jobs, page
from autodl.service.pages.render import render
from autodl.service.predictions import panel
from autodl.service.present import job_json
from autodl.service.quotas import usage
from autodl.service.submissions import current_usage, refusal_headers, submit
from autodl.service.uploads import UploadRefused

router = APIRouter()
DONE = {
    "cancelled": "The job was cancelled.",
    "deleted": "The job, its dataset and its results were deleted.",
    "predicting": "The new data was checked against the model and queued for prediction.",
    "prediction_deleted": "The prediction and its files were deleted.",
}


@router.get("/jobs")
def my_jobs(
    request: Request,
    service: ServiceDep,
    db: DB,
    user: User,
    sort: str = "-created",
    all: bool = False,
    done: str | None = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    page_number: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
):
    """One page of jobs (`DEFAULT_LIMIT`); "Next page" carries the cursor, and ``page``
    only numbers the page for the reader."""
    if sort.lstrip("-") not in SORTS:
        sort = "-created"
    everyone = all and user.is_admin
    rows, next_cursor = page(db, user, sort, everyone, DEFAULT_LIMIT, cursor)
    return render(
        request,
        "jobs.html",
        jobs=[job_json(db, service.storage, j, detail=False, summary=t) for j, t in rows],
        sort=sort,
        everyone=everyone,
        usage=usage(db, user, service.settings),
        message=DONE.get(done or ""),
        next_cursor=next_cursor,
        page_number=page_number if cursor else 1,
        page_size=DEFAULT_LIMIT,
        total=count_jobs(db, user, everyone=everyone),
    )


@router.get("/jobs/new")
def new_job(request: Request, service: ServiceDep, db: DB, user: User):
    return render(request, "new.html", usage=usage(db, user, service.settings))


@router.post("/jobs/new")
async def new_job_post(request: Request, service: ServiceDep, user: User):
    """The upload form without JavaScript (the page's script posts to the API instead)."""
    try:
        job_id = await submit(request, service, user)
    except UploadRefused as e:
        u = await run_in_threadpool(current_usage, service, user)
        page = render(
            request,
            "new.html",
            status=e.status,
            usage=u,
            error=e.message,
            hint=e.hint,
            problems=e.problems,
        )
        page.headers.update(refusal_headers(e))
        return page
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}")
def job_page(
    request: Request,
    job_id: RowId,
    service: ServiceDep,
    db: DB,
    user: User,
    done: str | None = None,
):
    job = J.load_job(db, user, job_id)
    data = job_json(db, service.storage, job)
    return render(
        request,
        "job.html",
        job=data,
        job_data=json.dumps(data),
        message=DONE.get(done or ""),
        **panel(db, service.storage, job),  # the model and its predictions
        examples=examples_json(service.storage, job),
        same_runs=count_same_dataset(db, user, job),
    )


@router.get("/jobs/{job_id}/leaderboard")
def leaderboard_page(request: Request, job_id: RowId, service: ServiceDep, db: DB, user: User):
    """Runs of the job's dataset side by side, learning curves overlaid (compare.js)."""
    job = J.load_job(db, user, job_id)
    board = leaderboard_json(db, service.storage, user, job)
    return render(request, "leaderboard.html", job=job, board=board, ids=board["curves"])


@router.post("/jobs/{job_id}/cancel")
def cancel(job_id: RowId, service: ServiceDep, db: DB, user: User):
    job = J.load_job(db, user, job_id)
    if not J.cancel(db, job):
        raise ServiceError(
            409, f"This job is {job.state}; only a queued or running job can be cancelled."
        )
    service.dispatcher.notify(job_id)
    return RedirectResponse(f"/jobs/{job_id}?done=cancelled", status_code=303)


@router.post("/jobs/{job_id}/delete")
def delete(job_id: RowId, service: ServiceDep, db: DB, user: User):
    J.delete(db, J.load_job(db, user, job_id), service.storage)
    service.curves.pop(job_id, None)
    service.dispatcher.notify(job_id)
    return RedirectResponse("/jobs?done=deleted", status_code=303)


@router.get("/compare")
def compare(
    request: Request,
    service: ServiceDep,
    db: DB,
    user: User,
    ids: Annotated[list[int] | None, Query()] = None,
):
    ids = ids or []
    jobs = [
        job_json(db, service.storage, J.load_job(db, user, i), detail=False)
        for i in dict.fromkeys(ids)
    ]
    return render(request, "compare.html", jobs=jobs, ids=[j["id"] for j in jobs])

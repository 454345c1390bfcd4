"""Submitting a dataset: the one flow behind the upload page and ``POST /api/v1/jobs``.

quota check (before reading anything) → compute-time check (as soon as the budget
is known: the query string, or a form field before the file) → stream to disk →
compute-time check (a budget field after the file) → archive checks → extract →
validate (in a confined child process: `autodl.service.confine`; a zip of raw data —
a table, class folders of images, audio, video or text — is converted there first,
the form's ``label`` naming a table's label column) → create the queued job → tell the dispatcher. A refusal at
any step leaves no file and no job behind, and costs no quota; one made before the
body was read to its end is marked ``unread`` (its answer closes the connection).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from autodl.service.deps import Service, ServiceError
from autodl.service.jobs import create_job
from autodl.service.leaderboard import dataset_hash
from autodl.service.models import User
from autodl.service.quotas import Usage, check_can_submit, check_compute, usage
from autodl.service.uploads import (
    BeforeFile,
    Received,
    UploadRefused,
    human_bytes,
    prepare,
    receive,
)
from autodl.settings import Settings


def parse_budget(raw: str | None, settings: Settings) -> float:
    default = min(settings.time_budget, settings.max_time_budget)
    if raw is None or not str(raw).strip():
        return default
    try:
        budget = float(raw)
    except ValueError:
        raise UploadRefused(f"The time budget {raw!r} is not a number of seconds.", 422) from None
    if not 1 <= budget <= settings.max_time_budget:
        raise UploadRefused(
            f"The time budget must be between 1 and {settings.max_time_budget:g} seconds; got {budget:g}.",
            422,
        )
    return budget


async def submit(request: Request, service: Service, user: User) -> int:
    """Receive, check and queue an upload for ``user``; the new job's id. UploadRefused otherwise."""
    settings = service.settings
    # Database work runs in the thread pool, never on the event loop: a write waiting
    # for SQLite's lock must not stall the loop that would let the holder finish.
    u = await run_in_threadpool(current_usage, service, user)
    try:
        check_can_submit(u)
    except UploadRefused as e:
        e.unread = True  # not a byte of the body was read: none will be
        raise

    def before_file(fields: dict[str, str], final: bool) -> None:
        """The compute time, once the budget is known: before the file is read."""
        if "time_budget" in fields or final:
            check_compute(u, parse_budget(fields.get("time_budget"), settings))

    work = service.storage.temp_dir("upload-")
    try:
        received = await receive_within_quota(
            request, work / "upload.zip", u, settings, before_file
        )
        if received.path is None or received.size == 0:
            raise UploadRefused(
                "No dataset was sent.",
                422,
                "Send the zip as the form field 'file' (multipart), or as the request body.",
            )
        budget = parse_budget(received.fields.get("time_budget"), settings)
        check_compute(u, budget)  # before the dataset is extracted and validated
        name = (received.fields.get("name") or "").strip()[:200]
        extracted_limit = min(settings.max_extracted_bytes, u.storage_left)
        label = (received.fields.get("label") or "").strip() or None
        folder, report, size = await run_in_threadpool(
            lambda: prepare(
                received.path,
                work,
                settings,
                extracted_limit,
                label=label,
                name=_dataset_name(received.filename),
            )
        )
        digest = await run_in_threadpool(dataset_hash, folder)
        job_id = await run_in_threadpool(
            _queue,
            service,
            user,
            name or report.get("name") or "dataset",
            budget,
            report,
            size,
            folder,
            digest,
        )
        # Celery's dispatcher talks to the broker and the database: not on the event loop.
        await run_in_threadpool(service.dispatcher.notify, job_id)
        return job_id
    finally:
        shutil.rmtree(work, ignore_errors=True)


async def receive_within_quota(
    request: Request,
    dest: Path,
    u: Usage,
    settings: Settings,
    before_file: BeforeFile | None = None,
) -> Received:
    """``receive`` capped at the upload limit and the storage ``u`` has left. A refusal is
    marked unread; a 413 caused by the quota (not the upload limit) says so."""
    limit = min(settings.max_upload_bytes, u.storage_left)
    try:
        return await receive(request, dest, limit, before_file)
    except UploadRefused as e:
        e.unread = True  # refused while streaming: what is left of the body stays unread
        if e.status == 413 and limit < settings.max_upload_bytes:
            e.message = f"The upload does not fit in your storage quota ({human_bytes(u.storage_left)} left)."
            e.hint = "Delete jobs you no longer need to free space."
        raise


def refusal_headers(refused: UploadRefused) -> dict[str, str]:
    """Headers of the answer to a refused upload: ``Connection: close`` when the body was
    not read to its end. The server then reads no more of it (it would otherwise read and
    drop the rest, however large, to keep the connection); a client that sends
    ``Expect: 100-continue`` (curl does, for large uploads) sends none of it at all."""
    return {"Connection": "close"} if refused.unread else {}


def api_refusal(refused: UploadRefused) -> ServiceError:
    """The JSON API's answer to a refused upload (its API wording where it has one)."""
    return ServiceError(
        refused.status,
        refused.api_message or refused.message,
        refused.api_hint or refused.hint,
        headers=refusal_headers(refused),
        problems=refused.problems or None,
        **refused.extra,
    )


def _dataset_name(filename: str | None) -> str | None:
    """The name a zip of class folders gets: its file's ("Shapes v2.zip" -> "shapes_v2")."""
    from autodl.formats.convert.options import default_name

    return default_name(Path(filename)) if filename else None


def current_usage(service: Service, user: User):
    with service.db.session() as s:
        return usage(s, s.merge(user), service.settings)


def _queue(service: Service, user: User, name, budget, report, size, folder, digest=None) -> int:
    with service.db.session() as s:
        owner = s.merge(user)
        now = usage(s, owner, service.settings)  # again: a parallel upload may have won
        check_can_submit(now)
        check_compute(now, budget)
        job = create_job(s, owner, name=name, time_budget=budget, report=report, stored_bytes=size)
        job.dataset_hash = digest  # runs of the same data: `leaderboard`
        converted = report.get("converted")
        if converted:  # the job's history says what the upload became
            job.events[-1].message = f"Submitted, {converted['note']}, and validated."
        service.storage.adopt_dataset(job.id, folder)
        return job.id

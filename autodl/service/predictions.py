"""Predicting on new data with a finished run's model: the service's side of `autodl predict`.

A run saves its model in ``results/model/`` (`Storage.model_dir`). The job page and
the API offer it as a zip (`Storage.model_zip`) and take new data to apply it to:

upload (an AutoDL zip, or a zip of raw files) → the same checks as a dataset upload
(quota before reading, size cap while streaming, archive checks, extraction counted)
→ `autodl.model.check_input` against the model's spec, in a confined child process
(`autodl.service.predictproc`, started by `confine.check_in_child` under the
validation limits) → a job of kind "predict" (`jobs.create_prediction_job`) with a
time budget of AUTODL_PREDICT_BUDGET, counted against the user's quotas like any job
→ the dispatcher runs it like any job (embedded or Celery, `jobs.runner`), and the job
process calls `run_prediction`: `autodl.model.predict_to_csv` in a confined child
under the job limits → ``results/predictions.csv``.

A refusal at any step leaves no file and no job, and costs no quota. Prediction jobs
are rows of the ``jobs`` table (``kind`` "predict", ``parent_id`` the run): listed
under their run, never in "My jobs"; deleting the run deletes them (`jobs.delete`).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from autodl.service.deps import Service
from autodl.service.jobs import TERMINAL, create_prediction_job, get_job
from autodl.service.models import Job, User
from autodl.service.present import iso
from autodl.service.quotas import check_can_submit, check_compute, usage
from autodl.service.storage import Storage
from autodl.service.submissions import receive_within_quota
from autodl.service.uploads import UploadRefused, check_archive, extract
from autodl.settings import Settings

#: The file a prediction job writes in its results folder, and offers for download.
PREDICTIONS_CSV = "predictions.csv"
#: The child process's module (check and prediction alike).
CHILD = "autodl.service.predictproc"


# ------------------------------------------------------------------ the model


def model_problem(storage: Storage, job: Job) -> tuple[str, str] | None:
    """Why ``job`` has no model to download or predict with (message, hint); None if it has one.

    A model is offered once its run has ended (finished, or cancelled after a prediction)
    and ``model/model.json`` exists: a run that failed before its first prediction, or
    ran with ``--no-model``, has none.
    """
    if job.kind != "run":
        return f"Job {job.id} is a prediction job: it has no model.", "Use its run's model."
    if job.state not in TERMINAL:
        return (
            f"Job {job.id} is still {job.state}: its model is offered once it has ended.",
            "Wait for the job to finish.",
        )
    if job.state == "failed":
        return (
            f"Job {job.id} failed, so it has no model.",
            "Submit the dataset again; a run that makes a prediction saves its model.",
        )
    if storage.find_job_file(job.id, "results", "model", "model.json") is None:
        return (
            f"Job {job.id} saved no model (it made no prediction, or ran without saving one).",
            "Submit the dataset again to get a model.",
        )
    return None


def has_model(storage: Storage, job: Job) -> bool:
    return model_problem(storage, job) is None


# ------------------------------------------------------------------ submitting


def _refused_no_model(storage: Storage, job: Job | None, job_id: int) -> UploadRefused:
    if job is None:
        return UploadRefused(
            f"No job {job_id} among your jobs.", 404, "List yours with GET /api/v1/jobs."
        )
    message, hint = model_problem(storage, job)  # type: ignore[misc]
    return UploadRefused(message, 404, hint)


async def submit_prediction(request: Request, service: Service, user: User, job_id: int) -> int:
    """Receive, check and queue new data for job ``job_id``'s model; the prediction job's id.

    UploadRefused otherwise (404: no such job of yours, or it has no model)."""
    settings, storage = service.settings, service.storage
    budget = settings.predict_budget

    def before():
        with service.db.read_session() as s:
            me = s.get(User, user.id)  # a read: merge() would mark it changed
            parent = get_job(s, me, job_id)
            if parent is None or not has_model(storage, parent):
                raise _refused_no_model(storage, parent, job_id)
            return usage(s, me, settings)

    try:
        u = await run_in_threadpool(before)
        check_can_submit(u)
        check_compute(u, budget)
    except UploadRefused as e:
        e.unread = True
        raise
    work = storage.temp_dir("upload-")
    try:
        received = await receive_within_quota(request, work / "upload.zip", u, settings)
        if received.path is None or received.size == 0:
            raise UploadRefused(
                "No data was sent.",
                422,
                "Send a zip (an AutoDL dataset, or raw files the model can read) as the "
                "form field 'file' (multipart), or as the request body.",
            )
        name = (received.fields.get("name") or "").strip()[:200] or received.filename or ""
        model = storage.job_file(job_id, "results", "model")  # resolved: inside the job
        limit = min(settings.max_extracted_bytes, u.storage_left)
        folder, size = await run_in_threadpool(
            prepare_input, received.path, work, settings, limit, model, received.filename
        )
        pid = await run_in_threadpool(
            _queue, service, user, job_id, name, budget, size, folder, received.filename
        )
        await run_in_threadpool(service.dispatcher.notify, pid)
        return pid
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _task(model: Path, filename: str | None) -> dict:
    """The child's task for ``model``; ``name``: the upload's file name (its last part,
    at most 100 characters) for the model's messages, instead of "the upload"."""
    name = Path(str(filename or "").replace("\\", "/")).name[:100]
    return {"model": str(model), **({"name": name} if name else {})}


def prepare_input(
    upload: Path,
    workdir: Path,
    settings: Settings,
    max_bytes: int,
    model: Path,
    filename: str | None = None,
) -> tuple[Path, int]:
    """Check and extract an uploaded zip and check it against ``model``: (folder, bytes);
    ``filename``: the upload's name, which the model's messages name (`_task`).

    The archive checks and extraction are a dataset upload's (`uploads.check_archive`,
    `uploads.extract`); the data is checked by `autodl.model.check_input` in a confined
    child (`confine.check_in_child` with `CHILD`): a refusal is a 422 in the model's words.
    """
    from autodl.service.confine import LimitBroken, check_in_child

    members = check_archive(upload, settings, _INPUT_HINT + " Zip one file (a CSV) too.")
    folder = workdir / "input"
    folder.mkdir()
    try:
        size = extract(upload, members, folder, max_bytes)
        if not any(folder.iterdir()):
            raise UploadRefused("The zip holds no files.", 422, _INPUT_HINT)
        try:
            task = _task(model, filename)
            answer = check_in_child(folder, workdir, settings, task, CHILD)
        except LimitBroken as e:
            raise UploadRefused(
                f"{e.message} Nothing was queued and your quota is unchanged.", e.status, e.hint
            ) from None
        if "refused" in answer:
            refused = answer["refused"]
            if refused.get("kind") == "model":
                raise UploadRefused(
                    f"This job's model cannot be used: {refused['message']}",
                    409,
                    "Submit the dataset again to train a model this server can load.",
                )
            raise UploadRefused(
                f"The data does not fit this model: {refused['message']}",
                422,
                refused.get("hint") or _INPUT_HINT,
            )
        if not answer.get("ok"):
            raise UploadRefused(
                "The data could not be checked against the model.", 422, _INPUT_HINT
            )
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, size


_INPUT_HINT = (
    "Upload a zip of an AutoDL dataset (its test or unlabelled part is predicted), or of "
    "raw files like the ones the model was trained on (images, audio, video, .txt files, "
    "or a CSV with the same columns)."
)


def _queue(
    service: Service,
    user: User,
    job_id: int,
    name: str,
    budget: float,
    size: int,
    folder: Path,
    filename,
) -> int:
    with service.db.session() as s:
        owner = s.merge(user)
        parent = get_job(s, owner, job_id)
        if parent is None or not has_model(service.storage, parent):  # deleted meanwhile
            raise _refused_no_model(service.storage, parent, job_id)
        now = usage(s, owner, service.settings)  # again: a parallel upload may have won
        check_can_submit(now)
        check_compute(now, budget)
        # The job is the caller's (whose quota it uses), listed under the run: an
        # administrator may predict with anyone's model.
        job = create_prediction_job(
            s, owner, parent, name=name, time_budget=budget, stored_bytes=size
        )
        job.dataset_info = json.dumps({"input": filename})
        service.storage.adopt_dataset(job.id, folder)
        return job.id


# ------------------------------------------------------------------ running


def run_prediction(
    job_id: int,
    parent_id: int,
    budget: float,
    settings: Settings,
    storage: Storage,
    transition: Callable[..., bool],
    info: dict | None = None,
) -> None:
    """The job process's part (`jobs.runner`): predict in a confined child, then record the end.

    The child (`CHILD`) runs under the job limits (`autodl._confine.job_limits`) with a
    scrubbed environment, in this process's group (a cancel or a delete kills it with
    the job), and is killed at ``budget`` seconds. ``transition(state, **values)``
    changes the job's state (compare-and-set on the attempt); ``info``: the row's
    ``dataset_info`` (the upload's name), kept with the count of rows.
    """
    from autodl import _confine
    from autodl._checkproc import EXIT_MEMORY

    results = storage.results_dir(job_id)
    results.mkdir(parents=True, exist_ok=True)
    out, log = results / "predict.json", storage.job_dir(job_id) / "predict.log"
    limits = _confine.job_limits(settings)
    cgroup = _confine.MemoryCgroup.create("autodl-predict", limits.memory_bytes)
    model = storage.job_file(parent_id, "results", "model")  # resolved: inside the run's folder
    task = {**_task(model, (info or {}).get("input")), "predict": str(results / PREDICTIONS_CSV)}
    cmd = [sys.executable, "-m", CHILD, str(storage.dataset_dir(job_id)), str(out)]
    cmd += [json.dumps(limits.to_json()), str(cgroup.path) if cgroup else "", json.dumps(task)]
    start = time.monotonic()
    timed_out = False
    try:
        with open(log, "ab") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=_confine.scrubbed_environ(settings.child_environ()),
            )
            try:
                code = proc.wait(timeout=budget)
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.kill()
                code = proc.wait()
        oom = cgroup is not None and cgroup.oom_killed()
    finally:
        if cgroup is not None:
            cgroup.remove()
    duration = round(time.monotonic() - start, 3)
    answer = {}
    if code == 0 and out.exists():
        try:
            answer = json.loads(out.read_text(encoding="utf-8"))
        except ValueError:
            answer = {}
    out.unlink(missing_ok=True)
    values = {"duration": duration}
    from autodl.service.jobs.state import CHARGED, PLATFORM

    if timed_out:
        transition(
            "failed",
            message=f"The prediction took longer than its budget of {budget:g} s "
            f"(AUTODL_PREDICT_BUDGET) and was stopped. Upload fewer examples at a time. {CHARGED}",
            fault="data",
            **values,
        )
    elif code == EXIT_MEMORY or oom or code == -signal.SIGKILL:  # ours, or the OOM killer
        transition(
            "failed",
            message="The prediction needed more memory than one job may use "
            f"(AUTODL_JOB_MEMORY_BYTES). Upload fewer or smaller examples at a time. {CHARGED}",
            fault="data",
            **values,
        )
    elif "rows" in answer:
        rows = int(answer["rows"])
        transition(
            "finished",
            message=f"Finished: {rows} row(s) predicted.",
            note=f"{rows} row(s) predicted.",
            dataset_info=json.dumps({**(info or {}), "rows": rows}),
            **values,
        )
    elif answer.get("refused", {}).get("kind") == "model":
        transition(
            "failed",
            message=f"The model could not be used: {answer['refused']['message']} {PLATFORM}",
            fault="platform",
            **values,
        )
    elif "refused" in answer:
        transition(
            "failed",
            message=f"The data could not be predicted: {answer['refused']['message']} {CHARGED}",
            fault="data",
            **values,
        )
    else:
        print(f"prediction child of job {job_id} ended with {code}", file=sys.stderr, flush=True)
        transition(
            "failed",
            message=f"The prediction process stopped unexpectedly (exit code {code}). {PLATFORM}",
            fault="platform",
            **values,
        )


# ------------------------------------------------------------------ presenting


def prediction_json(storage: Storage, job: Job) -> dict:
    """A prediction job as the API and the job page give it."""
    try:
        info = json.loads(job.dataset_info or "{}")
    except ValueError:
        info = {}
    base = f"/api/v1/jobs/{job.parent_id}/predictions/{job.id}"
    ready = job.state == "finished" and prediction_file(storage, job) is not None
    return {
        "id": job.id,
        "job_id": job.parent_id,
        "name": job.name,
        "input": info.get("input"),
        "state": job.state,
        "rows": info.get("rows"),
        "time_budget": job.time_budget,
        "reason": job.reason,
        "fault": job.fault,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "duration": job.duration,
        "url": base,
        "download": f"{base}/{PREDICTIONS_CSV}" if ready else None,
    }


def prediction_file(storage: Storage, job: Job) -> Path | None:
    return storage.find_job_file(job.id, "results", PREDICTIONS_CSV)


def panel(db: Session, storage: Storage, job: Job) -> dict:
    """What the job page shows of the model: ``model`` (offered or not, and why) and
    ``predictions`` (the run's prediction jobs, newest first)."""
    from autodl.service.jobs import predictions_of

    problem = model_problem(storage, job)
    return {
        "model": {"available": problem is None, "why": problem[0] if problem else None},
        "prediction_jobs": [prediction_json(storage, p) for p in predictions_of(db, job)],
    }

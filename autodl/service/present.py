"""What a job looks like to its user: one dict for the API and the pages alike.

The live learning curve is scored here while the job runs, from the prediction
files ingestion writes atomically (``predictions/start.txt`` and
``<task>.predict_<k>``), with an incremental `Scorer` cached per job so that a
poll only scores the predictions that are new. A finished job's curve comes from
its scores.json.

Every file is found with `Storage.find_job_file`, which resolves the path and
refuses whatever lies outside the job's folder (``..`` in a stored name, a link).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from autodl.service.jobinfo import dataset_details, dataset_summary, is_whole_summary
from autodl.service.jobs import TERMINAL, queue_position, running_count
from autodl.service.models import Job
from autodl.service.storage import OutsideJob, Storage

DOWNLOADS = {
    "predictions.csv": ("unlabelled/predictions.csv", "text/csv"),
    "predictions.predict": ("unlabelled/<task>.predict", "text/plain"),
    "results.zip": (None, "application/zip"),
    "report.html": ("report.html", "text/html"),
    "learning-curve.png": ("learning-curve.png", "image/png"),
    "scores.json": ("scores.json", "application/json"),
    "curves.json": ("curves.json", "application/json"),
    "engine.log": ("engine.log", "text/plain"),
}


def iso(dt) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def download_path(storage: Storage, job: Job, name: str) -> Path | None:
    """The file behind a download name, or None when the job has none (yet)."""
    if name not in DOWNLOADS:
        return None
    if name == "results.zip":
        if job.state != "finished" or not _results_folder(storage, job):
            return None
        storage.results_zip(job.id)
        return storage.find_job_file(job.id, "results.zip")
    if job.state not in TERMINAL and name != "engine.log":
        return None  # half-way files belong to the run, not to the user yet
    rel = DOWNLOADS[name][0].replace("<task>", job.dataset_name).split("/")
    return storage.find_job_file(job.id, "results", *rel)


def why_missing(job: Job, name: str) -> tuple[str, str]:
    """Why ``job`` has no download ``name``: the detail and hint of its 404.

    "Downloads appear when the job has finished" is said of an unfinished job only;
    an ended job's answer names the cause (no unlabelled part, no prediction, …).
    """
    head, listed = f"Job {job.id} has no {name}", f"GET /api/v1/jobs/{job.id} lists its downloads."
    if job.state not in TERMINAL:
        if name == "engine.log":
            return f"{head} yet (it is {job.state}).", "The engine's log appears once it starts."
        return f"{head} yet (it is {job.state}).", "Downloads appear when the job has finished."
    ended = "was cancelled" if job.state == "cancelled" else job.state
    unlabelled = (dataset_summary(job.dataset_info).get("unlabelled") or {}).get("count")
    if name in ("predictions.csv", "predictions.predict") and not unlabelled:
        return (
            f"{head}: its dataset has no unlabelled part, so there are no predictions to hand back.",
            "Include an unlabelled part (<name>.data/unlabelled/) in the dataset and submit it "
            "again: see /help/predictions.",
        )
    if name == "results.zip" and job.state != "finished":
        return f"{head}: only a finished job has one (this one {ended}).", listed
    if name == "engine.log":
        return f"{head}: the job {ended} before its engine started.", listed
    if name != "report.html" and not job.n_predictions:
        return f"{head}: the engine made no prediction before the job {ended}.", listed
    if job.state != "finished":
        return f"{head}: the job {ended} before it was written.", listed
    return f"{head}: the run did not write it.", listed


def _results_folder(storage: Storage, job: Job) -> bool:
    try:
        return storage.job_file(job.id, "results").is_dir()
    except (OutsideJob, OSError, RuntimeError):  # a link out, or a link loop
        return False


def running_fields(state: str, running: int) -> dict:
    """``jobs_running`` (for a queued job) and ``other_jobs`` (for a running one: the
    others sharing the machines now, a reason two runs of one dataset score apart) from
    the count of active jobs; None where they do not apply."""
    return {
        "jobs_running": running if state == "queued" else None,
        "other_jobs": max(0, running - 1) if state == "running" else None,
    }


def job_json(
    db: Session, storage: Storage, job: Job, *, detail: bool = True, summary: str | None = None
) -> dict:
    """The job as the API gives it.

    ``detail=False`` (listings) reads no file and only the fixed-size summary line of
    the check report, so a row costs the same for every dataset; ``summary`` is that
    line as `listing.page_of_jobs` read it (else it is read from ``job``).
    """
    if not (detail is False and is_whole_summary(summary)):
        summary = job.dataset_info  # (an old one-object row is read whole)
    info = dataset_summary(summary)
    out = {
        "id": job.id,
        "name": job.name,
        "owner": job.user.name if job.user is not None else None,
        "dataset": {
            "name": job.dataset_name,
            "domain": info.get("domain"),
            "classes": info.get("output_dim"),
            "label_names": None,
            "train": (info.get("train") or {}).get("count"),
            "test": (info.get("test") or {}).get("count"),
            "unlabelled": (info.get("unlabelled") or {}).get("count"),
            "shape": info.get("shape"),
        },
        "time_budget": job.time_budget,
        "state": job.state,
        "reason": job.reason,
        "fault": job.fault,
        "note": job.note,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "ended_at": iso(job.ended_at),
        "duration": job.duration,
        "alc": job.alc,
        "final_nauc": job.final_nauc,
        "final_accuracy": job.final_accuracy,
        "n_predictions": job.n_predictions,
        "quota_refunded": job.quota_refunded,
        "url": f"/api/v1/jobs/{job.id}",
        "page": f"/jobs/{job.id}",
    }
    if detail:
        details = dataset_details(job.dataset_info)
        out["dataset"].update(
            label_names=details["label_names"],
            problems=details["problems"],
            problems_total=info.get("problems_total", len(details["problems"])),
        )
        out["queue_position"] = queue_position(db, job)
        counted = job.state in ("queued", "running")
        out.update(running_fields(job.state, running_count(db) if counted else 0))
        out["events"] = [
            {"state": e.state, "at": iso(e.at), "message": e.message} for e in job.events
        ]
        out["downloads"] = {
            name: f"/api/v1/jobs/{job.id}/download/{name}"
            for name in DOWNLOADS
            if download_path_exists(storage, job, name)
        }
    return out


def download_path_exists(storage: Storage, job: Job, name: str) -> bool:
    if name == "results.zip":
        return job.state == "finished" and _results_folder(storage, job)
    return download_path(storage, job, name) is not None


# ------------------------------------------------------------------- curve


@dataclass
class _Live:
    attempt: int
    scorer: object | None
    n: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _predictions_table(path: Path | None) -> list[dict]:
    rows = []
    if path is None:
        return rows
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # the line being written
        if event.get("event") == "prediction":
            rows.append(
                {
                    "index": event.get("index"),
                    "elapsed": event.get("elapsed"),
                    "learner": event.get("learner"),
                    "valid_score": event.get("valid_score"),
                }
            )
    return rows


def curve_json(cache: dict, storage: Storage, job: Job) -> dict:
    """The learning curve so far: points (t, NAUC, accuracy, learner), ALC, per-class AUC."""
    table = _predictions_table(storage.find_job_file(job.id, "results", "run.jsonl"))
    result = None
    scores = storage.find_job_file(job.id, "results", "scores.json")
    if job.state in TERMINAL and scores is not None:
        from autodl.scoring import ScoreResult

        result = ScoreResult.from_json(json.loads(scores.read_text()))
    elif job.state in ("running", "scoring") or (job.state in TERMINAL and scores is None):
        result = _live_result(cache, storage, job)
    out = {
        "id": job.id,
        "name": job.name,
        "state": job.state,
        "time_budget": job.time_budget,
        "t0": 60.0,
        "points": [],
        "alc": None,
        "final_nauc": None,
        "final_accuracy": None,
        "auc_per_class": [],
        "ignored_classes": [],
    }
    if result is None:
        return out
    learners = {row["index"]: row for row in table}
    for i, (t, s) in enumerate(zip(result.timestamps, result.nauc, strict=True)):
        row = learners.get(i, {})
        acc = result.accuracy[i] if result.accuracy else None
        out["points"].append(
            {
                "index": i,
                "t": t,
                "nauc": s,
                "accuracy": acc,
                "learner": row.get("learner"),
                "valid_score": row.get("valid_score"),
                "late": i in result.late,
            }
        )
    data = result.to_json()
    out.update(
        alc=data["alc"],
        final_nauc=data["final_nauc"],
        final_accuracy=data["final_accuracy"],
        t0=data["t0"],
        ignored_classes=data["ignored_class_names"] or data["ignored_classes"],
    )
    out["auc_per_class"] = [
        {"label": result.class_name(i), "auc": a} for i, a in enumerate(result.auc_per_class)
    ]
    return out


def _live_result(cache: dict, storage: Storage, job: Job):
    from autodl.errors import AutoDLError
    from autodl.formats.dataset import open_dataset
    from autodl.scoring import Scorer
    from autodl.scoring.curve import read_prediction_folder

    if storage.find_job_file(job.id, "results", "predictions", "start.txt") is None:
        return None
    folder = storage.job_file(job.id, "results", "predictions")
    live = cache.get(job.id)
    if live is None or live.attempt != job.attempts:
        scorer = None
        try:
            ds = open_dataset(storage.job_file(job.id, "dataset"))
            if ds.solution is not None:
                scorer = Scorer(
                    ds.solution, job.time_budget, label_names=ds.spec.label_names, task=ds.name
                )
        except (AutoDLError, OutsideJob):
            scorer = None
        live = cache[job.id] = _Live(job.attempts, scorer)
    if live.scorer is None:
        return None
    with live.lock:
        try:
            pf = read_prediction_folder(folder, job.dataset_name)
        except AutoDLError:
            return live.scorer.result(diagnose=False) if live.n else None
        for k in range(live.n, len(pf.files)):
            path = storage.find_job_file(job.id, "results", "predictions", pf.files[k].name)
            if path is None:
                break
            try:
                live.scorer.add(np.loadtxt(path, ndmin=2), pf.timestamps[k])
            except (OSError, ValueError, AutoDLError):
                break
            live.n = k + 1
        return live.scorer.result(diagnose=False) if live.n else None


def log_tail(storage: Storage, job: Job, max_bytes: int = 200_000) -> str:
    path = storage.find_job_file(job.id, "results", "engine.log")
    if path is None:
        return ""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - max_bytes))
        text = f.read().decode("utf-8", "replace")
    return text if size <= max_bytes else "…\n" + text.split("\n", 1)[-1]

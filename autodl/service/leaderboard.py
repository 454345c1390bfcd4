"""Runs of one dataset side by side, and the content hash that says which runs those are.

A job's ``dataset_hash`` is computed once, when its upload has been checked
(`dataset_hash`): the SHA-256 of the SHA-256 of each file of the dataset, sorted, so
that the same data uploaded twice (under another zip or dataset name, its files in
another order) gets the same hash and a single changed byte another. The leaderboard
(`leaderboard_json`) lists the runs a user may see with the same hash: their own, every
user's for an administrator (`jobs.visible_jobs`). Each row is read from the database
and the run's small ``run.json`` (seed, time of the first prediction), never from the
dataset; the learning curves come from the curve endpoint of each job.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from autodl.service.jobs import visible_jobs
from autodl.service.models import Job, User
from autodl.service.storage import Storage

#: Rows of a leaderboard (the best by ALC), and curves drawn over each other on its page.
MAX_ROWS = 100
MAX_CURVES = 12
_RUN_JSON_BYTES = 1 << 20  # a run.json larger than this is not read (its seed shows as —)
_CHUNK = 1 << 20


def dataset_hash(folder: Path) -> str:
    """The content hash of a dataset folder (hex SHA-256; see the module's docstring).

    Files are read in 1 MiB chunks: memory stays flat whatever the dataset's size.
    Hidden files and links are left out.
    """
    digests = []
    for dirpath, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(dirpath, name)
            if name.startswith(".") or path.is_symlink():
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
            digests.append(h.hexdigest())
    return hashlib.sha256("\n".join(sorted(digests)).encode("ascii")).hexdigest()


def _run_facts(storage: Storage, job: Job) -> dict:
    """Seed and time of the first prediction, from the run's run.json (None when absent)."""
    path = storage.find_job_file(job.id, "results", "run.json")
    if path is None or path.stat().st_size > _RUN_JSON_BYTES:
        return {"seed": None, "first_prediction": None}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"seed": None, "first_prediction": None}
    predictions = data.get("predictions") or []
    first = predictions[0].get("elapsed") if predictions else None
    return {"seed": data.get("seed"), "first_prediction": first}


def same_dataset(db: Session, user: User, job: Job) -> list[Job]:
    """The runs ``user`` may see of ``job``'s dataset (``job`` alone when it has no hash),
    best ALC first (runs without a score last, newest first among them)."""
    if not job.dataset_hash:
        return [job]
    query = (
        visible_jobs(user)
        .where(Job.dataset_hash == job.dataset_hash)
        .order_by(Job.alc.is_(None), Job.alc.desc(), Job.id.desc())
        .limit(MAX_ROWS)
    )
    return list(db.scalars(query))


def leaderboard_json(db: Session, storage: Storage, user: User, job: Job) -> dict:
    """The leaderboard of ``job``'s dataset as the API and the page give it."""
    runs = same_dataset(db, user, job)
    rows = []
    for rank, run in enumerate(runs, 1):
        rows.append(
            {
                "rank": rank if run.alc is not None else None,
                "id": run.id,
                "name": run.name,
                "owner": run.user.name if run.user is not None else None,
                "state": run.state,
                "time_budget": run.time_budget,
                **_run_facts(storage, run),
                "alc": run.alc,
                "final_nauc": run.final_nauc,
                "final_accuracy": run.final_accuracy,
                "n_predictions": run.n_predictions,
                "created_at": run.created_at.isoformat().replace("+00:00", "Z")
                if run.created_at
                else None,
                "this": run.id == job.id,
                "url": f"/api/v1/jobs/{run.id}",
                "page": f"/jobs/{run.id}",
                "curve": f"/api/v1/jobs/{run.id}/curve",
            }
        )
    return {
        "job": job.id,
        "dataset": {"name": job.dataset_name, "hash": job.dataset_hash},
        "everyone": bool(user.is_admin),
        "runs": rows,
        "curves": [r["id"] for r in rows if r["n_predictions"]][:MAX_CURVES],
        "truncated": len(runs) >= MAX_ROWS,
    }


def count_same_dataset(db: Session, user: User, job: Job) -> int:
    """How many runs ``user`` may see of ``job``'s dataset (the job included)."""
    if not job.dataset_hash:
        return 1

    sub = visible_jobs(user).where(Job.dataset_hash == job.dataset_hash).subquery()
    return int(db.scalar(select(func.count()).select_from(sub)) or 0)

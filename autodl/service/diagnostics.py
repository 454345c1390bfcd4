"""Where a finished run fails, as its job stored it: scores.json's diagnostics and curves.json.

The job's scoring wrote them (`autodl.scoring.diagnostics`); the server only reads the
two files through `Storage.find_job_file` and recomputes nothing per request.
"""

from __future__ import annotations

import json

from autodl.scoring.diagnostics import MATRIX_MAX_CLASSES
from autodl.service.jobs import TERMINAL
from autodl.service.models import Job
from autodl.service.storage import Storage

_MAX_BYTES = 64 << 20  # a scores.json or curves.json larger than this is not read
KEYS = (
    "diagnosed_prediction",
    "label_names",
    "confusion_matrix",
    "top_confusions",
    "per_class",
    "label_confusion",
    "error_cooccurrence",
)


def _read(storage: Storage, job: Job, name: str) -> dict | None:
    path = storage.find_job_file(job.id, "results", name)
    if path is None or path.stat().st_size > _MAX_BYTES:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def diagnostics_json(storage: Storage, job: Job) -> dict | None:
    """The stored confusion matrix, per-class table and curves of an ended job, or None
    when it has none (not ended, no solution, no prediction within the budget, or a run
    scored before they existed)."""
    if job.state not in TERMINAL:
        return None
    scores = _read(storage, job, "scores.json")
    if not scores or not scores.get("per_class"):
        return None
    out = {"id": job.id, "state": job.state}
    out.update({key: scores.get(key) for key in KEYS})
    out["task"] = "multi-class" if scores.get("confusion_matrix") is not None else "multi-label"
    out["matrix_max_classes"] = MATRIX_MAX_CLASSES
    out["curves"] = _read(storage, job, "curves.json")
    return out

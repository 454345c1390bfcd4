"""The examples a run gets most wrong, as the job stored them (``results/examples/``).

The job's process made them (`autodl._examples`: only the records shown were read);
the server reads the small ``index.json`` and serves the PNGs as files, through
`Storage.find_job_file`, and never opens a dataset for them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from autodl.service.jobs import TERMINAL
from autodl.service.models import Job
from autodl.service.storage import Storage

#: The names of the images an index may point to ("00.png" …): nothing else is served.
IMAGE_NAME = re.compile(r"^[0-9]{2,3}\.png$")
_MAX_INDEX_BYTES = 1 << 20


def examples_json(storage: Storage, job: Job) -> dict | None:
    """The stored index with each image's URL (``image_url``), or None when the run has
    none (not ended, no solution, no prediction, or an older run)."""
    if job.state not in TERMINAL:
        return None
    path = storage.find_job_file(job.id, "results", "examples", "index.json")
    if path is None or path.stat().st_size > _MAX_INDEX_BYTES:
        return None
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or not isinstance(index.get("examples"), list):
        return None
    for e in index["examples"]:
        name = e.get("image")
        ok = isinstance(name, str) and IMAGE_NAME.match(name)
        e["image_url"] = f"/api/v1/jobs/{job.id}/examples/{name}" if ok else None
    return index


def example_image(storage: Storage, job: Job, name: str) -> Path | None:
    """The stored PNG ``name`` of the job's examples, or None."""
    if job.state not in TERMINAL or not IMAGE_NAME.match(name):
        return None
    return storage.find_job_file(job.id, "results", "examples", name)

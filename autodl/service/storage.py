"""Where files live: one folder per job under the data directory.

    <data>/jobs/<id>/dataset/      the extracted upload (the dataset as submitted)
    <data>/jobs/<id>/results/      what `autodl run` writes (pipeline.run's output folder)
    <data>/jobs/<id>/results.zip   the results as one download, made on first request
    <data>/jobs/<id>/worker.log    the job process's own output (for operators)
    <data>/tmp/                    uploads being received and checked
    <data>/cache/                  files made on demand (the sample dataset)

Files that others read are written under a temporary name and renamed into place,
so a half-written file is never served. Every path comes from a job id (an
integer), never from a user's string.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

RESULT_ZIP_EXCLUDE = {".tmp"}


class Storage:
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        for sub in ("jobs", "tmp", "cache"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------- paths
    def job_dir(self, job_id: int) -> Path:
        return self.root / "jobs" / str(int(job_id))

    def dataset_dir(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "dataset"

    def results_dir(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "results"

    def worker_log(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "worker.log"

    def temp_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    def cache_path(self, name: str) -> Path:
        return self.root / "cache" / name

    # ------------------------------------------------------------ operations
    def adopt_dataset(self, job_id: int, extracted: Path) -> Path:
        """Move a checked, extracted upload into the job's folder (a rename: same disk)."""
        target = self.dataset_dir(job_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(extracted, target)
        return target

    def delete_job(self, job_id: int) -> None:
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def job_bytes(self, job_id: int) -> int:
        return tree_size(self.job_dir(job_id))

    def results_zip(self, job_id: int) -> Path:
        """The results folder as one zip (same files as `autodl run` writes), cached."""
        target = self.job_dir(job_id) / "results.zip"
        results = self.results_dir(job_id)
        if target.exists() and target.stat().st_mtime >= _newest_mtime(results):
            return target
        tmp = target.with_name(f".results-{_unique()}.zip.tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in sorted(results.rglob("*")):
                if path.is_file() and not path.name.startswith("."):
                    zf.write(path, path.relative_to(results).as_posix())
        os.replace(tmp, target)
        return target


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _newest_mtime(path: Path) -> float:
    newest = 0.0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return newest


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{_unique()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _unique() -> str:
    """A temporary-name part no other process writes: several machines share the storage."""
    import socket
    import threading

    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}"

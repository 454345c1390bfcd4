"""Where files live: one folder per job under the data directory.

    <data>/jobs/<id>/dataset/      the extracted upload (the dataset as submitted)
    <data>/jobs/<id>/results/      what `autodl run` writes (pipeline.run's output folder)
    <data>/jobs/<id>/results.zip   the results as one download, made on first request
    <data>/jobs/<id>/worker.log    the job process's own output (for operators)
    <data>/tmp/                    uploads being received and checked; a model zip being sent
    <data>/cache/                  files made on demand (the sample dataset)

Files that others read are written under a temporary name and renamed into place,
so a half-written file is never served. Every path comes from a job id (an
integer), never from a user's string, and every file the service reads or serves
for a job goes through `Storage.job_file`: the path is resolved (links followed)
and refused unless it lies inside that job's folder. A link that the job's
process left in its results, or a dataset name that climbs out with ``..``,
therefore reads nothing of another job.

``<data>/tmp/upload-*`` folders belong to uploads being received or checked; a
refused upload removes its own at once. ``<data>/tmp/download-*`` folders hold a model
zip being sent (`Storage.model_zip`), removed once it is. A server that died mid-upload leaves one
behind: `Storage.sweep_tmp` (run when the app starts) removes those untouched
for `TMP_MAX_AGE` seconds. It cannot remove younger ones, because several
server processes may share the data directory and one of them may be receiving.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from autodl.formats.archive import zip_folder

#: Seconds an upload's temporary folder may go untouched before `sweep_tmp` removes it:
#: above the longest validation (AUTODL_VALIDATE_WALL_SECONDS defaults to 600), during
#: which nothing in the folder is written.
TMP_MAX_AGE = 1800.0


class OutsideJob(ValueError):
    """A path that does not lie inside the job's folder once resolved (``..`` or a link)."""


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

    def model_dir(self, job_id: int) -> Path:
        """The model a run saved (``model.json`` beside its parameter files)."""
        return self.results_dir(job_id) / "model"

    def worker_log(self, job_id: int) -> Path:
        return self.job_dir(job_id) / "worker.log"

    def temp_dir(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root / "tmp"))

    def cache_path(self, name: str) -> Path:
        return self.root / "cache" / name

    def job_file(self, job_id: int, *parts: str) -> Path:
        """The resolved path of ``parts`` under the job's folder; `OutsideJob` if it leaves it.

        Links are followed before the check, so a link to another job's file (or to
        anywhere else) is refused like a ``..``. The file need not exist.

        >>> Storage(tmp).job_file(7, "results", "..", "..", "6")  # doctest: +SKIP
        OutsideJob: ...
        """
        base = self.job_dir(job_id)  # the root is resolved: this path holds no link of ours
        path = base.joinpath(*parts).resolve()
        if path != base and base not in path.parents:
            raise OutsideJob(f"{'/'.join(parts)!r} is not inside job {int(job_id)}'s folder")
        return path

    def find_job_file(self, job_id: int, *parts: str) -> Path | None:
        """`job_file` when it names a regular file inside the job's folder, else None."""
        try:
            path = self.job_file(job_id, *parts)
        except (OutsideJob, OSError, RuntimeError):  # RuntimeError: a link loop (3.11)
            return None
        return path if path.is_file() else None

    def sweep_tmp(self, max_age: float = TMP_MAX_AGE) -> list[str]:
        """Remove ``tmp/upload-*`` and ``tmp/download-*`` folders untouched for ``max_age``
        seconds; their names."""
        removed = []
        cutoff = time.time() - max_age
        entries = [*(self.root / "tmp").glob("upload-*"), *(self.root / "tmp").glob("download-*")]
        for entry in entries:
            if _newest_mtime(entry, lstat=True) < cutoff:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed.append(entry.name)
        return removed

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
        if target.is_symlink():  # never ours: made by something else in the folder
            target.unlink()
        if target.exists() and target.stat().st_mtime >= _newest_mtime(results):
            return target

        def include(rel: str) -> bool:
            # No hidden names; and checked again: a folder could have been swapped for
            # a link since it was listed.
            parts = rel.split("/")
            hidden = any(part.startswith(".") for part in parts)
            return not hidden and self.find_job_file(job_id, "results", *parts) is not None

        return zip_folder(results, target, compresslevel=6, include=include)

    def model_zip(self, job_id: int) -> Path:
        """The run's ``model/`` folder as one zip (``model/...`` inside), made for one
        download in a fresh ``tmp/download-*`` folder: the caller removes that folder
        once the zip is sent (`remove_temp`). It is not kept beside the job, where it would
        take disk space that the user's storage quota does not count (stranger 16, item
        8); a download that dies half-way leaves the folder to `sweep_tmp`. Written file
        by file (`zip_folder`), so memory stays bounded."""
        legacy = self.job_dir(job_id) / "model.zip"  # cached there by earlier versions
        if legacy.is_file() or legacy.is_symlink():
            legacy.unlink(missing_ok=True)
        target = self.temp_dir("download-") / "model.zip"
        model = self.model_dir(job_id)

        def include(rel: str) -> bool:
            parts = rel.split("/")
            hidden = any(part.startswith(".") for part in parts)
            return not hidden and self.find_job_file(job_id, "results", "model", *parts) is not None

        # Weights hardly compress: a light level keeps the download quick.
        try:
            return zip_folder(model, target, prefix="model/", compresslevel=1, include=include)
        except BaseException:
            self.remove_temp(target)
            raise

    def remove_temp(self, path: Path) -> None:
        """Remove the ``tmp/`` folder that holds ``path`` (a download made for one answer)."""
        folder = Path(path).parent
        if folder.parent == self.root / "tmp":
            shutil.rmtree(folder, ignore_errors=True)


def tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


def _newest_mtime(path: Path, *, lstat: bool = False) -> float:
    """The newest modification time of ``path`` and everything under it (0 if none)."""
    stat = os.lstat if lstat else os.stat
    try:
        newest = stat(path).st_mtime if lstat else 0.0
    except OSError:
        return 0.0
    for dirpath, dirs, files in os.walk(path):
        for name in files + (dirs if lstat else []):
            try:
                newest = max(newest, stat(os.path.join(dirpath, name)).st_mtime)
            except OSError:
                pass
    return newest

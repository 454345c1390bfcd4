"""Validation of an upload in a process of its own, under limits the server sets.

`check_in_child` runs ``python -m autodl._checkproc`` on the extracted folder with
AUTODL_VALIDATE_MEMORY_BYTES of memory (RLIMIT_AS, and a cgroup v2 ``memory.max`` where
one can be made), AUTODL_VALIDATE_CPU_SECONDS of CPU time, ``oom_score_adj`` 1000 and an
environment without secrets, and kills it after AUTODL_VALIDATE_WALL_SECONDS. The
server reads back only the child's JSON report (at most `MAX_REPORT_BYTES`), so a
hostile dataset can cost the server nothing but the wait. A broken limit is a
`LimitBroken` naming it; the caller answers 422.

At most `CONCURRENT_CHECKS` validations run at once, so that uploads in parallel cannot
add up their memory limits; the others wait for a turn (within the wall-clock limit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from autodl import _confine
from autodl._checkproc import EXIT_MEMORY
from autodl._units import human_bytes
from autodl.settings import Settings

CONCURRENT_CHECKS = 2
MAX_REPORT_BYTES = 16 * 1024 * 1024
_TURNS = threading.BoundedSemaphore(CONCURRENT_CHECKS)


class LimitBroken(Exception):
    """Validation broke one of its limits (``limit`` is the setting's variable); or crashed."""

    def __init__(self, message: str, hint: str, limit: str | None = None, status: int = 422):
        super().__init__(message)
        self.message, self.hint, self.limit, self.status = message, hint, limit, status


def check_limits(settings: Settings) -> _confine.Limits:
    return _confine.Limits(
        memory_bytes=settings.validate_memory_bytes,
        cpu_seconds=settings.validate_cpu_seconds,
        # Raw data is converted in that process too: its files may be as large as an upload.
        file_bytes=max(MAX_REPORT_BYTES * 2, settings.max_extracted_bytes),
        address_space=True,  # the readers use no GPU
    )


def child_environ(settings: Settings) -> dict[str, str]:
    """Our environment and the settings (the readers' caps), less every secret."""
    env = _confine.scrubbed_environ({**os.environ, **settings.to_env()})
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"  # BLAS thread buffers are address space the check does not need
    return env


def check_in_child(
    folder: Path,
    workdir: Path,
    settings: Settings,
    task: dict | None = None,
    module: str = "autodl._checkproc",
) -> dict:
    """`check_dataset(folder)` in a confined child: {"report", "errors", "problems_total"}.

    ``task`` ``{"convert": DIR, "label": COLUMN | None}``: raw data in ``folder`` is
    converted into DIR in that child first (`autodl._checkproc`). ``module``: the
    child's module (same arguments, same limits): `autodl.service.predictproc` checks
    a prediction upload against a model."""
    wall = settings.validate_wall_seconds
    start = time.monotonic()
    if not _TURNS.acquire(timeout=wall):
        raise LimitBroken(
            "The server is busy validating other uploads.",
            "Upload it again in a few minutes.",
            status=503,
        )
    try:
        return _run(folder, workdir, settings, wall - (time.monotonic() - start), task, module)
    finally:
        _TURNS.release()


def _run(
    folder: Path,
    workdir: Path,
    settings: Settings,
    wall: float,
    task: dict | None = None,
    module: str = "autodl._checkproc",
) -> dict:
    out, log = workdir / "check.json", workdir / "check.log"
    limits = check_limits(settings)
    cgroup = _confine.MemoryCgroup.create("autodl-check", limits.memory_bytes)
    cmd = [sys.executable, "-m", module, str(folder), str(out)]
    cmd += [json.dumps(limits.to_json()), str(cgroup.path) if cgroup else ""]
    cmd += [json.dumps(task)] if task else []
    try:
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
                env=child_environ(settings),
                start_new_session=True,
            )
            try:
                code = proc.wait(timeout=max(0.1, wall))
            except subprocess.TimeoutExpired:
                _kill(proc)
                raise LimitBroken(
                    f"Validating this dataset took longer than {settings.validate_wall_seconds:g} s "
                    "(AUTODL_VALIDATE_WALL_SECONDS), so it was stopped.",
                    _HINT,
                    "AUTODL_VALIDATE_WALL_SECONDS",
                ) from None
        oom = cgroup is not None and cgroup.oom_killed()
    finally:
        if cgroup is not None:
            cgroup.remove()
    if code == EXIT_MEMORY or oom or code == -signal.SIGKILL:
        # SIGKILL that we did not send: the kernel's OOM killer (oom_score_adj 1000 makes
        # this process its first choice).
        raise LimitBroken(
            f"Validating this dataset needs more than "
            f"{human_bytes(settings.validate_memory_bytes)} of memory "
            "(AUTODL_VALIDATE_MEMORY_BYTES).",
            _HINT,
            "AUTODL_VALIDATE_MEMORY_BYTES",
        )
    if code == -signal.SIGXCPU:
        raise LimitBroken(
            f"Validating this dataset needs more than {settings.validate_cpu_seconds:g} s of "
            "CPU time (AUTODL_VALIDATE_CPU_SECONDS).",
            _HINT,
            "AUTODL_VALIDATE_CPU_SECONDS",
        )
    if code != 0 or not out.exists():
        what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        # The log may name the server's paths: the operator's log gets it, the user does not.
        print(f"dataset check of {folder} failed ({what}): {_tail(log)}", file=sys.stderr)
        raise LimitBroken(
            f"The dataset check stopped unexpectedly ({what}).",
            "Run `autodl check` on the dataset locally; if it passes there, tell the operator.",
        )
    if out.stat().st_size > MAX_REPORT_BYTES:
        raise LimitBroken("The dataset check's report is too large.", _HINT)
    return json.loads(out.read_text(encoding="utf-8"))


_HINT = (
    "Make the dataset smaller (fewer classes, records or frames, smaller images), "
    "or ask the operator to raise the limit."
)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(10)


def _tail(log: Path, limit: int = 300) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(max(0, log.stat().st_size - limit))
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:limit] if lines else ""

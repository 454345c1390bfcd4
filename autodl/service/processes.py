"""Job processes, seen from outside: spawn one, watch it, kill its process group, find it.

A job runs as ``python -m autodl.service.jobs.runner JOB_ID`` (`RUNNER`) in a process
group of its own, so that one ``killpg`` takes the engine down with it. Both
dispatchers use `spawn_job_process` and `watch_child` (the embedded supervisor in
the server, each `autodl worker` task on its machine); the job process itself uses
`kill_rest_of_group` when it hands its job back.

Finding processes reads Linux's ``/proc`` in one place (`process_table`): a worker
that stops forwards SIGTERM to the job processes under it (`job_processes`), a job
process kills the rest of its group, a restarted server kills the job process a
crashed one left behind (`kill_stale_job_process`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from autodl.service.jobs.state import process_ended
from autodl.service.models import Job
from autodl.service.storage import Storage
from autodl.settings import Settings

#: The job process's module: what `spawn_job_process` starts and /proc lookups match.
RUNNER = "autodl.service.jobs.runner"


@dataclass
class JobProcess:
    """A started job process, its deadline (monotonic) and why we killed it, if we did."""

    job_id: int
    proc: subprocess.Popen
    deadline: float
    killed_because: str | None = None


def spawn_job_process(job: Job, settings: Settings, storage: Storage) -> JobProcess:
    """``python -m autodl.service.jobs.runner ID`` in a process group of its own, with its deadline."""
    log = storage.worker_log(job.id)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", RUNNER, str(job.id)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=settings.child_environ(),
            start_new_session=True,  # its own process group: killed as one
            cwd=os.getcwd(),
        )
    deadline = time.monotonic() + job.time_budget + settings.grace_seconds
    return JobProcess(job.id, proc, deadline + settings.job_margin_seconds)


def watch_child(s: Session, child: JobProcess, settings: Settings, storage: Storage) -> bool:
    """Kill ``child`` if its job was cancelled or ran out of time; True once it has ended.

    Once it has ended, `autodl.service.jobs.state.process_ended` fails a job it left
    unfinished, with a reason.
    """
    job = s.get(Job, child.job_id)
    if job is not None:
        s.refresh(job)
    code = child.proc.poll()
    if code is None:
        if job is None or job.deleted_at is not None or job.state == "cancelled":
            child.killed_because = "cancelled"
            kill_group(child.proc.pid)
        elif time.monotonic() > child.deadline:
            child.killed_because = "timeout"
            kill_group(child.proc.pid)
        return False
    kill_group(child.proc.pid)  # the engine, if the job process left it behind
    if job is None:
        storage.delete_job(child.job_id)  # its account was deleted; it may have written since
        return True
    if job.deleted_at is not None:
        storage.delete_job(job.id)  # it may have written after the delete
        return True
    limit = None
    if child.killed_because == "timeout":
        limit = job.time_budget + settings.grace_seconds + settings.job_margin_seconds
    process_ended(s, job, pid=child.proc.pid, code=code, time_limit=limit)
    return True


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by ``pid`` (a job process and its engine)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ------------------------------------------------------------------ /proc


def process_table() -> dict[int, tuple[int, int]] | None:
    """``{pid: (parent pid, process group)}`` of every process; None without /proc (not Linux)."""
    try:
        entries = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return None
    table = {}
    for entry in entries:
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
        except (OSError, ValueError, IndexError):
            pass  # it ended meanwhile
    return table


def is_job_process(pid: int) -> bool:
    """Whether process ``pid`` runs `RUNNER` (its command line names the module)."""
    try:
        return RUNNER.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def job_processes(root: int) -> list[int]:
    """Pids of the job processes (`RUNNER`) under process ``root`` (Linux)."""
    table = process_table() or {}
    below, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in table.items() if ppid in frontier} - below
        below |= frontier
    return [pid for pid in sorted(below) if is_job_process(pid)]


def kill_rest_of_group() -> None:
    """SIGKILL every other process of our group (the engine and its children)."""
    me, group = os.getpid(), os.getpgid(0)
    table = process_table()
    if table is None:  # no /proc: the group, ourselves included
        os.killpg(group, signal.SIGKILL)
        return
    for pid, (_, pgrp) in table.items():
        if pgrp == group and pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def kill_stale_job_process(worker: str | None) -> None:
    """Kill the process group of a job process a crashed server left behind (this host only).

    ``worker`` is the job's ``host:pid``; the pid is killed only if it still runs `RUNNER`.
    """
    if not worker or ":" not in worker:
        return
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return
    if is_job_process(int(pid)):
        kill_group(int(pid))

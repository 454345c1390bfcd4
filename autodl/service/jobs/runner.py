"""The job process: ``python -m autodl.service.worker JOB_ID`` (embedded supervisor and
`autodl worker` alike).

It runs in its own process group (the supervisor kills the whole group, engine
included, at the time limit or on cancel) and kills that group itself if its
parent — the server or the Celery pool process — goes away, so a crashed parent
leaves no job running unobserved. Settings come from the AUTODL_* environment the
parent gives it; the engine it starts (`autodl.ingestion`) runs confined, with an
environment without the secret key, the database URL and the broker URL, and
``oom_score_adj`` 1000 (this process: `JOB_OOM_SCORE_ADJ`).

SIGTERM means "your worker is being stopped": the job is handed back to the queue
(`jobs.hand_back`, from a thread, since the main thread may be inside a database
transaction), the engine is killed and the process exits with `HANDED_BACK`, which
tells the parent to send the job again rather than fail it. A job already scoring
finishes instead (seconds).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from autodl._confine import set_oom_score_adj
from autodl.service.jobs import HANDED_BACK, STOPPING, hand_back, run_job
from autodl.settings import Settings

#: How long a hand-back may take before the parent watch kills the group anyway.
HAND_BACK_SECONDS = 15.0
#: This process's out-of-memory priority: below its engine's 1000, far above the server's 0.
JOB_OOM_SCORE_ADJ = 900


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            if STOPPING.is_set():
                time.sleep(HAND_BACK_SECONDS)  # the hand-back ends the process itself
            os.killpg(os.getpgid(0), signal.SIGKILL)


def _kill_rest_of_group() -> None:
    """SIGKILL every other process of our group (the engine and its children)."""
    me, group = os.getpid(), os.getpgid(0)
    try:
        entries = [p for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:  # no /proc (not Linux): the group, ourselves included
        os.killpg(group, signal.SIGKILL)
        return
    for entry in entries:
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == group and int(entry.name) != me:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ValueError, IndexError):
            pass


def _hand_back(job_id: int, settings: Settings) -> None:
    from autodl.service.db import Database

    who = f"The worker {settings.worker_name}" if settings.worker_name else "The server"
    db = Database(settings.sqlalchemy_url)
    try:
        state = hand_back(db, job_id, who)
    except Exception:  # noqa: BLE001 - the reaper re-queues it once the heartbeat stops
        import traceback

        traceback.print_exc()
        state = "queued"
    if state == "scoring":
        return  # the main thread finishes it and the process ends as usual
    print(f"job {job_id}: handed back ({state}) on SIGTERM", flush=True)
    _kill_rest_of_group()
    os._exit(HANDED_BACK if state == "queued" else 0)


def main(argv: list[str]) -> int:
    job_id = int(argv[1])
    settings = Settings.from_env()
    me = os.getpid()
    # When memory runs out the kernel kills the engine (1000) first, then this process,
    # never the server (0). This process keeps the database URL; the engine's process
    # gets an environment without it (`autodl._confine`).
    set_oom_score_adj(JOB_OOM_SCORE_ADJ)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    def on_sigterm(_sig, _frame) -> None:
        if os.getpid() != me or STOPPING.is_set():
            return
        STOPPING.set()
        threading.Thread(target=_hand_back, args=(job_id, settings), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    state = run_job(job_id, settings)
    print(f"job {job_id}: {state}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The job process the embedded supervisor starts: ``python -m autodl.service.worker JOB_ID``.

It runs in its own process group (the supervisor kills the whole group, engine
included, at the time limit or on cancel) and kills that group itself if its
parent — the server — goes away, so a crashed server leaves no job running
unobserved. Settings come from the AUTODL_* environment the supervisor gives it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from autodl.service.jobs import run_job
from autodl.settings import Settings


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os.killpg(os.getpgid(0), signal.SIGKILL)


def main(argv: list[str]) -> int:
    job_id = int(argv[1])
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    state = run_job(job_id, Settings.from_env())
    print(f"job {job_id}: {state}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The job lifecycle, in one place: states, the one writer of state, queries, the runner.

* `state`: the closed set of states (``queued → running → scoring → finished | failed |
  cancelled``), `set_state` — the one function that changes a job's state
  (compare-and-set, time stamp, `JobEvent`) — and the named transitions built on it.
* `queries`: who may see which job, queue positions, what a dispatcher runs next.
* `runner`: the job process, ``python -m autodl.service.jobs.runner JOB_ID``, and
  `run_job`: it claims the job and moves it along from the pipeline's typed signals
  (a stage callback, the ingestion result's `Outcome`).
* `heartbeat`: `Heartbeat`, how a job process (and an `autodl worker`) says it lives.
* `reaper`: running jobs whose heartbeat stopped go back to the queue once, then fail.

Who writes a job's state: its runner (the child process), while it lives — the claim,
``scoring``, the outcome, and the hand-back on SIGTERM. The others write only what
the runner no longer can: the dispatcher that watched its process when that process
died (`process_ended`), the server's recovery and reaper when a runner was lost
(`requeue_or_fail`), the user through `cancel` and `delete`. All of them go through
`set_state`, compare-and-set on the state they read (and the attempt or owner), so a
late writer loses instead of overwriting. `runner` is not imported here: ``python -m``
runs it as the job process's main module (import `run_job` from it).
"""

from __future__ import annotations

from autodl.service.jobs.heartbeat import Heartbeat
from autodl.service.jobs.queries import (
    get_job,
    get_prediction,
    load_job,
    predictions_of,
    queue_position,
    queue_positions,
    running_count,
    stale_before,
    visible_jobs,
)
from autodl.service.jobs.reaper import reap
from autodl.service.jobs.state import (
    ACTIVE,
    HANDED_BACK,
    TERMINAL,
    TOMBSTONE,
    InvalidTransition,
    cancel,
    create_job,
    create_prediction_job,
    delete,
    record_redispatch,
    requeue_or_fail,
    set_state,
)

__all__ = [
    "ACTIVE", "HANDED_BACK", "TERMINAL", "TOMBSTONE", "Heartbeat", "InvalidTransition",
    "cancel", "create_job", "create_prediction_job", "delete", "get_job", "get_prediction",
    "load_job", "predictions_of", "queue_position", "queue_positions",
    "reap", "record_redispatch", "requeue_or_fail", "running_count", "set_state",
    "stale_before", "visible_jobs",
]  # fmt: skip

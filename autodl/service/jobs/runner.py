"""The job process: ``python -m autodl.service.jobs.runner JOB_ID``, and `run_job`, the one
way a job is run (embedded supervisor and `autodl worker` alike).

`run_job(job_id)` is idempotent: it claims the job only while it is queued, so a
second call (or a redelivered message, with Celery) returns without running it. It
then runs `autodl.pipeline.run` and moves the job along from the pipeline's typed
signals: to ``scoring`` from its stage callback (`Stage.SCORING`), to ``finished`` or
``failed`` from the ingestion result's `Outcome` and ``failure`` kind — never from
log text or progress-display events, which only feed the heartbeat and the count of
predictions.

The process runs in its own process group (the dispatcher kills the whole group,
engine included, at the time limit or on cancel) and kills that group itself if its
parent — the server or the Celery pool process — goes away, so a crashed parent
leaves no job running unobserved. Settings come from the AUTODL_* environment the
parent gives it; the engine it starts (`autodl.ingestion`) runs confined, with an
environment without the secret key, the database URL and the broker URL, and
``oom_score_adj`` 1000 (this process: `JOB_OOM_SCORE_ADJ`).

SIGTERM means "your worker is being stopped": the job is handed back to the queue
(`state.hand_back`, from a thread, since the main thread may be inside a database
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

from sqlalchemy import update

from autodl._confine import set_oom_score_adj
from autodl.errors import AutoDLError, FormatError
from autodl.service.db import Database
from autodl.service.jobs.heartbeat import Heartbeat
from autodl.service.jobs.queries import others_running
from autodl.service.jobs.reaper import is_stale, lost_worker_reason
from autodl.service.jobs.state import (
    ACTIVE,
    CHARGED,
    CLAIM,
    HANDED_BACK,
    PLATFORM,
    STOPPING,
    TRANSITIONS,
    hand_back,
    requeue_or_fail,
    set_state,
    worker_id,
)
from autodl.service.models import Job, utcnow
from autodl.service.processes import kill_rest_of_group
from autodl.service.storage import Storage
from autodl.settings import Settings

#: How often progress events may write the prediction count (with a beat).
HEARTBEAT_SECONDS = 5.0
#: How long a hand-back may take before the parent watch kills the group anyway.
HAND_BACK_SECONDS = 15.0
#: This process's out-of-memory priority: below its engine's 1000, far above the server's 0.
JOB_OOM_SCORE_ADJ = 900


def run_job(job_id: int, settings: Settings, db: Database | None = None) -> str:
    """Run a queued job to the end; return its final state. Safe to call twice."""
    own_db = db is None
    db = db or Database(settings.sqlalchemy_url)
    storage = Storage(settings.data_dir)
    try:
        with CLAIM, db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.deleted_at is not None:
                return "missing"
            if STOPPING.is_set():
                return job.state  # this process is being stopped: leave the job queued
            if job.state in ACTIVE and is_stale(job, settings):
                # Redelivered after its worker died, before the reaper saw it.
                why = lost_worker_reason(job)
                requeue_or_fail(s, job, why, why_twice=why + " twice")
            if job.state != "queued":
                return job.state  # finished, or running elsewhere with a live heartbeat
            now = utcnow()
            if not set_state(
                s,
                job,
                "running",
                worker=worker_id(),
                node=settings.worker_name or None,
                heartbeat_at=now,
                attempts=Job.attempts + 1,
            ):
                return job.state
            attempt, budget = job.attempts, job.time_budget
            kind, parent_id, info = job.kind, job.parent_id, job.dataset_info
        row = update(Job).where(Job.id == job_id, Job.state.in_(ACTIVE), Job.attempts == attempt)
        beat = Heartbeat(db, row, settings.heartbeat_seconds).start()
        try:
            if kind == "predict":
                return _predict(job_id, attempt, parent_id, budget, info, settings, db, storage)
            return _run(job_id, attempt, budget, settings, db, storage, beat)
        finally:
            beat.stop()
    finally:
        if own_db:
            db.dispose()


def _run(
    job_id: int,
    attempt: int,
    budget: float,
    settings: Settings,
    db: Database,
    storage: Storage,
    beat: Heartbeat,
) -> str:
    from autodl import pipeline

    seen = {"predictions": 0, "beat": time.monotonic()}

    transition = _transition(db, job_id, attempt)

    def on_progress(p) -> None:
        # A display event: it feeds the heartbeat and the prediction count, nothing more.
        seen["predictions"] = p.n_predictions
        if time.monotonic() - seen["beat"] > HEARTBEAT_SECONDS:
            seen["beat"] = time.monotonic()
            beat.beat(n_predictions=p.n_predictions)

    def on_stage(stage) -> None:
        if stage == pipeline.Stage.SCORING:
            n = seen["predictions"]
            transition("scoring", message=f"{n} prediction(s) made; scoring.")

    try:
        report = pipeline.run(
            storage.dataset_dir(job_id),
            storage.results_dir(job_id),
            budget,
            engine=settings.engine,
            force=True,
            settings=settings,
            on_progress=on_progress,
            on_stage=on_stage,
            other_jobs=lambda: others_running(db, job_id),
        )
    except FormatError as e:
        transition("failed", message=f"Your dataset could not be read: {e.message}", fault="data")
    except AutoDLError as e:
        transition(
            "failed",
            message=f"The engine could not be run: {e.message}. {PLATFORM}",
            fault="platform",
        )
    except Exception as e:  # noqa: BLE001 - the user gets a reason, the operator the log
        _failed_internally(transition, e, "job")
    else:
        _finish(report, transition)
    return _settled(db, storage, job_id)


def _transition(db, job_id: int, attempt: int):
    """A job's state change, made only where `TRANSITIONS` allows it and while
    ``attempt`` is still the job's (a job requeued meanwhile is another attempt's)."""

    def transition(new: str, **kw) -> bool:
        with db.session() as s:
            job = s.get(Job, job_id)
            if job is None or job.state not in TRANSITIONS or new not in TRANSITIONS[job.state]:
                return False
            return set_state(s, job, new, guard={"attempts": attempt}, **kw)

    return transition


def _failed_internally(transition, e: Exception, what: str) -> None:
    """A bug stopped the job: the traceback to the operator's log, a reason to the user."""
    import traceback

    traceback.print_exc()
    transition(
        "failed",
        message=f"An internal error stopped the {what} ({type(e).__name__}). {PLATFORM}",
        fault="platform",
    )


def _settled(db, storage, job_id: int) -> str:
    """The job's state once its work has ended ("missing": deleted meanwhile), its stored
    bytes counted again (the results it wrote)."""
    with db.session() as s:
        job = s.get(Job, job_id)
        if job is not None and job.deleted_at is None:
            job.stored_bytes = storage.job_bytes(job_id)
        return job.state if job is not None else "missing"


def _predict(job_id, attempt, parent_id, budget, info, settings, db, storage) -> str:
    """A prediction job (kind "predict"): the run ``parent_id``'s model applied to the
    job's upload (`autodl.service.predictions.run_prediction`), no scoring."""
    import json

    from autodl.service.predictions import run_prediction

    transition = _transition(db, job_id, attempt)

    try:
        run_prediction(
            job_id, parent_id, budget, settings, storage, transition, json.loads(info or "{}")
        )
    except Exception as e:  # noqa: BLE001 - the user gets a reason, the operator the log
        _failed_internally(transition, e, "prediction")
    return _settled(db, storage, job_id)


def _finish(report, transition) -> None:
    """Record the run's end from ingestion's typed `Outcome` and ``failure`` kind.

    Any prediction made counts: the job finishes, with a note when the engine stopped
    early (memory limit included). Without one, the failure was caused by the data — a
    time-out with no prediction, the memory or file-size limit, the engine failing on
    it — and costs quota (fault "data"); only the platform's faults are given back
    (`_run`'s exceptions, lost workers, restarts).
    """
    from autodl import ingestion as I

    ing, score = report.ingestion, report.score
    values = {
        "n_predictions": len(ing.predictions),
        "duration": round(ing.duration, 3),
        "alc": score.alc if score is not None else None,
        "final_nauc": score.final_nauc if score is not None else None,
        "final_accuracy": score.final_accuracy if score is not None else None,
    }
    outcome = ing.outcome
    if outcome != I.Outcome.FAILED:
        notes = []
        if outcome == I.Outcome.STOPPED_EARLY:
            notes.append(
                f"The engine stopped early ({_why(ing)}); the scores count the {len(ing.predictions)} prediction(s) it made before."
            )
        elif outcome == I.Outcome.CONVERGED:  # the engine ended by itself before the deadline
            notes.append(
                f"Finished early: converged at {ing.converged_at:.1f} s of {ing.time_budget:g} s "
                "(nothing left could raise the hold-out score; the score holds to the deadline)."
            )
        if ing.load is not None:  # so that runs compared later are compared fairly
            notes.append(f"Machine during the run: {ing.load.text()}.")
        note = " ".join(notes) or None
        transition("finished", message="Finished.", note=note, **values)
        return
    if ing.failure in (I.TIMEOUT, I.NO_PREDICTION):
        message = f"The model made no prediction within the time budget of {ing.time_budget:g} s. A larger dataset needs more time: submit it again with a larger budget."
    elif ing.failure == I.MEMORY:
        message = f"{_why(ing)[0].upper()}{_why(ing)[1:]} before its first prediction. Make the dataset smaller (fewer or smaller records, fewer classes), or ask the operator for more memory per job."
    elif ing.failure == I.FILE_SIZE:
        message = f"{ing.error[0].upper()}{ing.error[1:]} before its first prediction."
    else:  # ERROR, CRASH, INVALID: the engine failed on this data
        message = f"The engine stopped with an error before its first prediction: {ing.error}."
    transition("failed", message=f"{message} {CHARGED}", fault="data", **values)


def _why(ing) -> str:
    """The run's error, with the memory limit's setting named (the user's hint to ask for more)."""
    from autodl import ingestion as I

    if ing.failure == I.MEMORY and ing.memory_limit:
        return f"{ing.error} (the memory limit of one job, AUTODL_JOB_MEMORY_BYTES)"
    return ing.error or "no reason given"


# ------------------------------------------------------------------ the process


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            if STOPPING.is_set():
                time.sleep(HAND_BACK_SECONDS)  # the hand-back ends the process itself
            os.killpg(os.getpgid(0), signal.SIGKILL)


def _hand_back(job_id: int, settings: Settings) -> None:
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
    kill_rest_of_group()
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

"""Run an engine on a dataset under a hard deadline and record its predictions.

The engine runs in a child process (a fresh interpreter, exec'd: a crash, a hang or
a memory blow-up cannot take the caller down) and talks to this process over a
socket pair. The child is confined (`autodl._confine`, from ``limits``): a memory
limit (a cgroup where one can be made, else RLIMIT_AS unless CUDA is visible), a
file-size limit, ``oom_score_adj`` 1000, and an environment without the secret key,
the database or broker URL. Messages are JSON plus raw array bytes, never pickle, and
bounded in size: the caller (the service's job process holds the database URL) does
not run what a process working on untrusted data sends. The protocol, one message at
a time:

    child  -> ("ready",)                        engine imported (not timed)
    parent -> ("go", start_time, time_budget)   the clock has started
    child  -> ("log", message)                  any number of times
    child  -> ("prediction", test, unlabelled, learner, valid_score, note)
    child  -> ("done",) | ("error", message, traceback, kind)

A run that ends without success has a typed ``failure`` (`MEMORY` from a MemoryError,
an OOM kill in the cgroup or a SIGKILL we did not send; `ERROR`, `CRASH`, `TIMEOUT`…):
callers decide from it, never from the message's text.

As in the official AutoDL ingestion program, the clock starts after the engine
is constructed and before any data is read; construction includes the engine
module's ``warm_up(spec)`` when it has one (it sees the dataset's metadata, as the
official ``Model(metadata)`` does, and no data). The *parent* time-stamps each
prediction when it arrives and writes it, atomically (temp file + rename), in
the official layout so that the official scorer can re-score the folder:

    predictions/start.txt             ingestion_pid, task_name, time_budget, start_time, "k: t"
    predictions/<task>.predict_<k>    one row per test record, space-separated scores
    predictions/end.txt               ingestion_duration, ingestion_success, end_time

plus ``run.jsonl`` (one JSON object per event), ``engine.log`` and ``model/``, the
model of the last counted prediction (``save_model``; `autodl.model` loads it). At the
deadline the child gets SIGTERM, then SIGKILL after ``grace`` seconds; what
arrives after the deadline is not counted. ``ingestion_pid`` in start.txt is
written as 0: the official scorer kills the process named there when it thinks
the budget is over, and a real pid could name an unrelated process by the time
the folder is re-scored.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autodl._confine import Limits, MemoryCgroup
from autodl._engine_process import (  # noqa: F401 - the failure kinds are part of this API
    CRASH,
    ERROR,
    FILE_SIZE,
    INVALID,
    LOAD,
    MEMORY,
    NO_PREDICTION,
    TIMEOUT,
    _Channel,
    _spawn,
)
from autodl._load import LoadMeter, MachineLoad
from autodl._recorder import Recorder, check_prediction
from autodl._units import human_bytes
from autodl.engine.protocol import DEFAULT_ENGINE
from autodl.errors import IngestionError

if TYPE_CHECKING:  # pragma: no cover
    from autodl.formats.dataset import Dataset

# How long the child may take to import the engine before we give up (not timed
# against the budget, but a hang here must not hang the caller forever).
STARTUP_TIMEOUT = 300.0
# "done" this long before the deadline is an early end (converged), not the budget's end
EARLY = 1.0
MODEL_DIR = "model"  # the saved model of the last counted prediction, in the output folder
MODELS_STAGING = ".models"  # where the engine's process writes each prediction's model


@dataclass
class PredictionRecord:
    """One counted prediction."""

    index: int
    timestamp: float  # absolute (time.time())
    elapsed: float  # seconds after the start
    learner: str
    valid_score: float | None
    note: str
    path: Path


class Outcome(StrEnum):
    """How a run ended, typed: what callers act on (the service ends a job from it)."""

    FINISHED = "finished"  # ran to the deadline; its predictions count
    CONVERGED = "converged"  # the engine ended by itself before the deadline (`EARLY`)
    STOPPED_EARLY = "stopped_early"  # the engine failed after a prediction: those count
    FAILED = "failed"  # no prediction: ``failure`` says why


@dataclass
class IngestionResult:
    """What happened during one run."""

    output_dir: Path
    task: str
    time_budget: float
    start_time: float
    end_time: float = 0.0
    success: bool = False
    error: str | None = None
    error_traceback: str | None = None
    predictions: list[PredictionRecord] = field(default_factory=list)
    late: int = 0  # predictions that arrived after the deadline (not counted)
    killed: bool = False  # the engine was still running at the deadline
    unlabelled: np.ndarray | None = None
    #: Why it did not succeed: one of ERROR, MEMORY, FILE_SIZE, CRASH, INVALID, TIMEOUT,
    #: NO_PREDICTION (None on success).
    failure: str | None = None
    #: The engine's memory limit in bytes (0: none); the MEMORY failure names it.
    memory_limit: int = 0
    #: The engine ended by itself (it sent "done": every learner had converged, see
    #: `autodl.engine.loop` step 7) more than `EARLY` seconds before the deadline; the
    #: worker was freed that much earlier. ``converged_at``: seconds into the run.
    converged: bool = False
    converged_at: float | None = None
    #: How busy the machine was during the run (`autodl._load`); None if it never started.
    load: MachineLoad | None = None
    #: The saved model of the last counted prediction (``output_dir/model``), or None:
    #: not asked for (``save_model=False``), or it could not be saved (the log says why).
    model: Path | None = None

    @property
    def outcome(self) -> Outcome:
        """How the run ended (`Outcome`), from the typed fields, never from ``error``'s text."""
        if not self.predictions:
            return Outcome.FAILED
        if not self.success:
            return Outcome.STOPPED_EARLY
        return Outcome.CONVERGED if self.converged else Outcome.FINISHED

    @property
    def predictions_dir(self) -> Path:
        return self.output_dir / "predictions"

    @property
    def duration(self) -> float:
        return self.end_time - self.start_time


@dataclass
class Progress:
    """A snapshot for live displays, passed to ``on_progress``."""

    elapsed: float
    remaining: float
    n_predictions: int
    last: PredictionRecord | None
    event: str  # "tick" | "prediction" | "log" | "end"
    message: str = ""


# -------------------------------------------------------------------- parent


def ingest(
    dataset: Dataset | str | os.PathLike,
    output_dir: str | os.PathLike,
    time_budget: float,
    *,
    engine: str = DEFAULT_ENGINE,
    seed: int = 0,
    threads: int = 0,
    grace: float = 5.0,
    on_progress: Callable[[Progress], None] | None = None,
    tick: float = 0.5,
    limits: Limits | None = None,
    on_ready: Callable[[], None] | None = None,
    other_jobs: Callable[[], int] | None = None,
    save_model: bool = True,
) -> IngestionResult:
    """Run ``engine`` on ``dataset`` (an open `Dataset`, or its path) for at most
    ``time_budget`` seconds. Here the dataset gives the names, sizes and unlabelled ids;
    the engine's process opens it again from its path (it is another process).

    Returns an `IngestionResult`; an engine that crashes or overruns is not an
    exception here: its predictions so far are kept, ``end.txt`` says
    ``ingestion_success: 0``, ``result.error`` says why and ``result.failure`` is the
    typed reason.

    ``limits`` confine the engine's process (`autodl._confine`: memory, file size,
    ``oom_score_adj``, an environment without secrets); None means `Limits()`: no memory
    or file-size limit, but the secrets still stay out and the kernel still kills the
    engine first. ``autodl run`` and the service pass `job_limits(settings)`.

    ``engine`` names a function that follows `autodl.engine.protocol.Engine`; ``threads``
    (0: every core) reaches it as its ``threads`` argument.

    ``on_ready`` is called once the engine has started, before the clock and before
    anything is written (`pipeline.run` clears an earlier run there, so a run that
    cannot start leaves the earlier one in place). ``other_jobs``, when given, counts
    the other jobs running beside this one (the service's job process asks its
    database); the run's `MachineLoad` keeps the most it saw.

    ``save_model``: the engine's process writes the model of each prediction it sends
    (`autodl._engine_process._ModelWriter`) into ``output_dir/.models/<k>/``; at the end
    the one of the last counted prediction becomes ``output_dir/model/`` (waiting up
    to ``grace`` seconds for it to be written) and the others go.
    """
    from autodl.formats.dataset import Dataset, open_dataset

    if time_budget <= 0:
        raise IngestionError(f"the time budget must be positive, got {time_budget:g} s")
    if not isinstance(dataset, Dataset):  # metadata and validation only; the child reads the data
        dataset = open_dataset(dataset)
    task, spec = dataset.name, dataset.spec
    n_test = len(dataset.test)
    n_unlabelled = len(dataset.unlabelled) if dataset.unlabelled is not None else 0
    label_names = spec.label_names or [f"class_{i}" for i in range(spec.output_dim)]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    limits = limits or Limits()
    # The largest message the engine may send: its two predictions as float64, plus slack.
    max_message = 8 * (n_test + n_unlabelled) * max(1, spec.output_dim) + 4 * 1024 * 1024
    staging = output_dir / MODELS_STAGING
    if save_model:
        shutil.rmtree(staging, ignore_errors=True)
    model_dir = staging if save_model else None
    proc, parent_conn, cgroup = _spawn(dataset.path, engine, seed, threads, limits, model_dir)
    try:
        if not parent_conn.poll(STARTUP_TIMEOUT):
            raise IngestionError(f"the engine did not start within {STARTUP_TIMEOUT:g} s")
        first = parent_conn.recv(max_message)
    except (EOFError, OSError, ValueError) as e:
        _stop(proc, 0, cgroup)
        code = proc.returncode
        why = str(e) or (
            f"exit code {code}" if code is not None and code >= 0 else f"signal {-(code or 0)}"
        )
        raise IngestionError(
            f"the engine process died while starting ({why})",
            "Its error, if it printed one, is just above on standard error.",
        ) from None
    if first[0] == "error":
        _stop(proc, 0, cgroup)
        raise IngestionError(first[1], "See the traceback in the log.")

    if on_ready is not None:
        try:
            on_ready()
        except BaseException:
            _stop(proc, 0, cgroup)
            raise
    start_time = time.time()
    deadline = start_time + time_budget
    rec = Recorder(output_dir, task, time_budget, start_time)
    result = IngestionResult(output_dir, task, time_budget, start_time)
    result.memory_limit = limits.memory_bytes
    meter = LoadMeter(proc.pid, threads, others=other_jobs)
    parent_conn.send(("go", start_time, time_budget))

    def progress(event: str, message: str = "") -> None:
        if on_progress is not None:
            now = time.time()
            last = result.predictions[-1] if result.predictions else None
            on_progress(
                Progress(
                    now - start_time,
                    max(0.0, deadline - now),
                    len(result.predictions),
                    last,
                    event,
                    message,
                )
            )

    finished = False
    while not finished:
        now = time.time()
        if now >= deadline:
            result.killed = proc.poll() is None
            if result.killed:
                rec.log(f"time budget of {time_budget:g} s used up: stopping the engine")
            break
        try:
            has_msg = parent_conn.poll(min(tick, deadline - now))
        except (EOFError, OSError):
            has_msg = False
        meter.sample()
        if not has_msg:
            if proc.poll() is not None and not parent_conn.poll(0):
                _died(result, proc.returncode, cgroup)
                rec.log(result.error)
                break
            progress("tick")
            continue
        try:
            msg = parent_conn.recv(max_message)
        except EOFError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as e:
            if proc.poll() is not None and isinstance(e, OSError):
                continue  # the pipe broke as the process died: the branch above says why
            result.error, result.failure = f"the engine sent a malformed message ({e})", INVALID
            rec.log(f"error: {result.error}")
            break
        kind = msg[0]
        if kind == "log":
            rec.log(msg[1])
            progress("log", msg[1])
        elif kind == "prediction":
            stamp = time.time()
            if stamp > deadline:
                result.late += 1
                rec.event("late", learner=msg[3])
                continue
            try:
                test = check_prediction(msg[1], n_test, spec.output_dim, "test")
                unl = None
                if n_unlabelled and msg[2] is not None:
                    unl = check_prediction(msg[2], n_unlabelled, spec.output_dim, "unlabelled")
            except IngestionError as e:
                result.error, result.failure = e.message, INVALID
                rec.log(f"error: {e.message}")
                break
            k = len(result.predictions)
            path = rec.prediction(k, test, stamp)
            record = PredictionRecord(
                k, stamp, stamp - start_time, str(msg[3]), msg[4], str(msg[5] or ""), path
            )
            result.predictions.append(record)
            if unl is not None:
                result.unlabelled = unl
            rec.event(
                "prediction",
                index=k,
                elapsed=record.elapsed,
                learner=record.learner,
                valid_score=record.valid_score,
                note=record.note,
            )
            progress("prediction")
        elif kind == "done":
            finished = True
            at = time.time() - start_time
            if deadline - time.time() > EARLY:
                result.converged, result.converged_at = True, round(at, 2)
                rec.log(f"the engine finished early: converged at {at:.1f} s")
            else:
                rec.log("the engine finished")
        elif kind == "error":
            result.error, result.error_traceback = str(msg[1]), str(msg[2])
            result.failure = msg[3] if msg[3] in (MEMORY, FILE_SIZE) else ERROR
            if result.failure == MEMORY:
                result.error = _memory_error(limits.memory_bytes)
            elif result.failure == FILE_SIZE:
                result.error = (
                    f"the model wrote a file larger than {human_bytes(limits.file_bytes)}, "
                    "the limit per file"
                )
            rec.log(f"error: {msg[1]}\n{msg[2]}")
            break

    result.load = meter.finish()  # before the stop: the engine's CPU time is still readable
    if save_model and result.predictions:  # the last counted prediction's model is written
        _await(staging / str(result.predictions[-1].index), proc, grace)
    _stop(proc, grace, cgroup)
    if save_model:
        result.model = _keep_model(staging, output_dir, result, rec)
    parent_conn.close()
    result.end_time = time.time()
    if result.error is None and not result.predictions:
        result.error = "the engine made no prediction within the time budget"
        result.failure = TIMEOUT if result.killed else NO_PREDICTION
    result.success = result.error is None
    if not result.success:  # an early end without a usable run is a failure, not convergence
        result.converged, result.converged_at = False, None
    if result.unlabelled is not None:
        rec.unlabelled(result.unlabelled, label_names, _split_ids(dataset.unlabelled))
    rec.event("load", **result.load.to_json())
    rec.end(result.success, result.end_time)
    progress("end", result.error or "")
    return result


def _await(folder: Path, proc: subprocess.Popen, grace: float) -> None:
    """Wait (at most ``grace`` seconds, while the engine lives) for ``folder`` to appear."""
    end = time.monotonic() + grace
    while not folder.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)


def _keep_model(staging: Path, output_dir: Path, result: IngestionResult, rec) -> Path | None:
    """Make the last counted prediction's model ``output_dir/model``; drop the others."""
    target = output_dir / MODEL_DIR
    shutil.rmtree(target, ignore_errors=True)
    kept = None
    if result.predictions:
        k = result.predictions[-1].index
        source = staging / str(k)
        if (source / "model.json").is_file():
            source.rename(target)
            kept = target
            rec.log(f"model of prediction {k} ({result.predictions[-1].learner}) saved in {target}")
        else:
            rec.log(f"the model of prediction {k} was not saved (see the log above)")
    shutil.rmtree(staging, ignore_errors=True)
    return kept


def _split_ids(split) -> np.ndarray:
    """Record ids of a split in record order (the reader may know them without decoding)."""
    ids = getattr(split, "ids", None)
    if ids is not None:
        return np.asarray(ids() if callable(ids) else ids)
    return np.asarray([ex.id for ex in split], dtype=np.int64)


def _died(result: IngestionResult, code: int, cgroup: MemoryCgroup | None) -> None:
    """The engine's process ended without a word: why, from its exit status and cgroup."""
    if (cgroup is not None and cgroup.oom_killed()) or code == -signal.SIGKILL:
        # Not our kill (that happens only after the loop): the kernel's OOM killer, which
        # picks this process first (oom_score_adj 1000).
        result.failure = MEMORY
        result.error = _memory_error(result.memory_limit)
        return
    result.failure = CRASH
    what = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
    result.error = f"the engine process died unexpectedly ({what})"


def _memory_error(limit: int) -> str:
    if limit > 0:
        return f"the model needed more than {human_bytes(limit)} of memory"
    return "the model ran out of the machine's memory"


def _stop(proc: subprocess.Popen, grace: float, cgroup: MemoryCgroup | None = None) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass
    if cgroup is not None:
        cgroup.remove()

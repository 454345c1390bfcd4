"""Run an engine on a dataset under a hard deadline and record its predictions.

The engine runs in a child process (``spawn``: a clean interpreter, so a crash,
a hang or a memory blow-up cannot take the caller down) and talks to this
process over a pipe. The protocol, one message at a time:

    child  -> ("ready",)                        engine imported (not timed)
    parent -> ("go", start_time, time_budget)   the clock has started
    child  -> ("log", message)                  any number of times
    child  -> ("prediction", test, unlabelled, learner, valid_score, note)
    child  -> ("done",) | ("error", message, traceback)

As in the official AutoDL ingestion program, the clock starts after the engine
is constructed and before any data is read; construction includes the engine
module's ``warm_up(spec)`` when it has one (it sees the dataset's metadata, as the
official ``Model(metadata)`` does, and no data). The *parent* time-stamps each
prediction when it arrives and writes it, atomically (temp file + rename), in
the official layout so that the official scorer can re-score the folder:

    predictions/start.txt             ingestion_pid, task_name, time_budget, start_time, "k: t"
    predictions/<task>.predict_<k>    one row per test record, space-separated scores
    predictions/end.txt               ingestion_duration, ingestion_success, end_time

plus ``run.jsonl`` (one JSON object per event) and ``engine.log``. At the
deadline the child gets SIGTERM, then SIGKILL after ``grace`` seconds; what
arrives after the deadline is not counted. ``ingestion_pid`` in start.txt is
written as 0: the official scorer kills the process named there when it thinks
the budget is over, and a real pid could name an unrelated process by the time
the folder is re-scored.
"""

from __future__ import annotations

import importlib
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autodl.errors import IngestionError

DEFAULT_ENGINE = "autodl.engine:run"
# How long the child may take to import the engine before we give up (not timed
# against the budget, but a hang here must not hang the caller forever).
STARTUP_TIMEOUT = 300.0


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


# --------------------------------------------------------------------- child


def _load_engine(spec: str) -> tuple[Callable, Callable | None]:
    """The engine's run function, and its module's ``warm_up(spec)`` if it has one."""
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr or "run"), getattr(module, "warm_up", None)


def _child(conn, dataset_path: str, engine_spec: str, seed: int, threads: int) -> None:
    """Entry point of the engine process."""
    # The engine's libraries may print (LightGBM's C++ warnings write to fd 1); the
    # caller's standard output is its own (`autodl run --json`), so send theirs to stderr.
    sys.stdout.flush()
    os.dup2(2, 1)
    if threads > 0:
        # Set before numpy/torch/BLAS load so every library sees it.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
    try:
        engine_run, warm_up = _load_engine(engine_spec)
        from autodl.engine.budget import Budget
        from autodl.formats.dataset import open_dataset
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"the engine could not be loaded: {e}", traceback.format_exc()))
        return
    warm_note = None
    if warm_up is not None:  # construction, untimed: it sees the metadata, no data
        try:
            warm_note = warm_up(open_dataset(dataset_path).spec, seed=seed)
        except Exception as e:  # noqa: BLE001 - the timed run reports a bad dataset
            warm_note = f"warm-up skipped ({type(e).__name__}: {e})"
    conn.send(("ready",))
    msg = conn.recv()
    if msg[0] != "go":
        return
    _, start_time, time_budget = msg

    def log(message: str) -> None:
        conn.send(("log", str(message)))

    if warm_note:
        log(warm_note)
    try:
        budget = Budget(max(0.0, time_budget - (time.time() - start_time)))
        dataset = open_dataset(dataset_path)
        for p in engine_run(
            dataset.train, dataset.test, dataset.unlabelled, budget, seed=seed, log=log
        ):
            conn.send(("prediction", p.test, p.unlabelled, p.learner, p.valid_score, p.note))
        conn.send(("done",))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        conn.send(("error", message, traceback.format_exc()))


# -------------------------------------------------------------------- parent


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def format_prediction(array: np.ndarray) -> str:
    """Rows of space-separated scores, 9 significant digits (float32 round-trips).

    The official ingestion prints 6 digits ('{0:g}'); we keep more so that close
    scores do not become artificial ties, which would change the AUC.
    """
    return "".join(" ".join(f"{v:.9g}" for v in row) + "\n" for row in array.tolist())


class _Recorder:
    """Writes the official prediction folder and the run log as events arrive."""

    def __init__(self, output_dir: Path, task: str, time_budget: float, start_time: float):
        self.dir = output_dir / "predictions"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.output_dir = output_dir
        self.task = task
        self.time_budget = time_budget
        self.start_time = start_time
        self.start_lines = [
            "ingestion_pid: 0",
            f"task_name: {task}",
            f"time_budget: {time_budget:g}",
            f"start_time: {start_time!r}",
        ]
        self._write_start()
        self.log_file = open(output_dir / "engine.log", "a", encoding="utf-8")  # noqa: SIM115
        self.events = open(output_dir / "run.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self.event("start", time_budget=time_budget, start_time=start_time)

    def _write_start(self) -> None:
        _atomic_write(self.dir / "start.txt", "\n".join(self.start_lines) + "\n")

    def event(self, kind: str, **fields) -> None:
        record = {"t": round(time.time() - self.start_time, 4), "event": kind, **fields}
        self.events.write(json.dumps(record) + "\n")
        self.events.flush()

    def log(self, message: str) -> None:
        elapsed = time.time() - self.start_time
        for line in message.splitlines() or [""]:
            self.log_file.write(f"[{elapsed:8.2f}s] {line}\n")
        self.log_file.flush()
        self.event("log", message=message)

    def prediction(self, k: int, test: np.ndarray, timestamp: float) -> Path:
        path = self.dir / f"{self.task}.predict_{k}"
        _atomic_write(path, format_prediction(test))
        self.start_lines.append(f"{k}: {timestamp!r}")
        self._write_start()
        return path

    def unlabelled(self, array: np.ndarray, label_names: list[str], ids: np.ndarray) -> None:
        """The last unlabelled prediction: the official-style .predict and a CSV with ids."""
        folder = self.output_dir / "unlabelled"
        folder.mkdir(exist_ok=True)
        _atomic_write(folder / f"{self.task}.predict", format_prediction(array))
        header = "id," + ",".join(_csv_field(n) for n in label_names) + "\n"
        rows = (
            f"{i}," + ",".join(f"{v:.6g}" for v in row) + "\n"
            for i, row in zip(ids.tolist(), array.tolist(), strict=True)
        )
        _atomic_write(folder / "predictions.csv", header + "".join(rows))

    def end(self, success: bool, end_time: float) -> None:
        text = (
            f"ingestion_duration: {end_time - self.start_time!r}\n"
            f"ingestion_success: {1 if success else 0}\n"
            f"end_time: {end_time!r}\n"
        )
        _atomic_write(self.dir / "end.txt", text)
        self.event("end", success=success)
        self.log_file.close()
        self.events.close()


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _check_prediction(array, n_rows: int, n_cols: int, what: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1 and n_cols == 1:
        array = array.reshape(-1, 1)
    if array.shape != (n_rows, n_cols):
        raise IngestionError(
            f"the engine gave a {what} prediction of shape {array.shape}, expected ({n_rows}, {n_cols})",
            "One row per record and one column per class.",
        )
    if not np.all(np.isfinite(array)):
        raise IngestionError(f"the engine gave a {what} prediction containing NaN or infinity")
    return array


def ingest(
    dataset_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    time_budget: float,
    *,
    engine: str = DEFAULT_ENGINE,
    seed: int = 0,
    threads: int = 0,
    grace: float = 5.0,
    on_progress: Callable[[Progress], None] | None = None,
    tick: float = 0.5,
) -> IngestionResult:
    """Run ``engine`` on the dataset for at most ``time_budget`` seconds.

    Returns an `IngestionResult`; an engine that crashes or overruns is not an
    exception here: its predictions so far are kept, ``end.txt`` says
    ``ingestion_success: 0`` and ``result.error`` says why.
    """
    from autodl.formats.dataset import open_dataset

    if time_budget <= 0:
        raise IngestionError(f"the time budget must be positive, got {time_budget:g} s")
    dataset = open_dataset(dataset_path)  # metadata and validation only; the child reads the data
    task, spec = dataset.name, dataset.spec
    n_test = len(dataset.test)
    n_unlabelled = len(dataset.unlabelled) if dataset.unlabelled is not None else 0
    label_names = spec.label_names or [f"class_{i}" for i in range(spec.output_dim)]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    ctx = mp.get_context("spawn")
    parent_conn, child_conn = ctx.Pipe()
    proc = ctx.Process(
        target=_child,
        args=(child_conn, str(Path(dataset_path).resolve()), engine, seed, threads),
        name=f"autodl-engine-{task}",
        daemon=True,
    )
    proc.start()
    child_conn.close()
    try:
        if not parent_conn.poll(STARTUP_TIMEOUT):
            raise IngestionError(f"the engine did not start within {STARTUP_TIMEOUT:g} s")
        first = parent_conn.recv()
    except (EOFError, OSError) as e:
        raise IngestionError(f"the engine process died while starting ({e})") from None
    if first[0] == "error":
        raise IngestionError(first[1], "See the traceback in the log.")

    start_time = time.time()
    deadline = start_time + time_budget
    rec = _Recorder(output_dir, task, time_budget, start_time)
    result = IngestionResult(output_dir, task, time_budget, start_time)
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
            result.killed = proc.is_alive()
            if result.killed:
                rec.log(f"time budget of {time_budget:g} s used up: stopping the engine")
            break
        try:
            has_msg = parent_conn.poll(min(tick, deadline - now))
        except (EOFError, OSError):
            has_msg = False
        if not has_msg:
            if not proc.is_alive() and not parent_conn.poll(0):
                result.error = f"the engine process died unexpectedly (exit code {proc.exitcode})"
                rec.log(result.error)
                break
            progress("tick")
            continue
        try:
            msg = parent_conn.recv()
        except (EOFError, OSError):
            continue
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
                test = _check_prediction(msg[1], n_test, spec.output_dim, "test")
                unl = None
                if n_unlabelled and msg[2] is not None:
                    unl = _check_prediction(msg[2], n_unlabelled, spec.output_dim, "unlabelled")
            except IngestionError as e:
                result.error = e.message
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
            rec.log("the engine finished")
        elif kind == "error":
            result.error, result.error_traceback = msg[1], msg[2]
            rec.log(f"error: {msg[1]}\n{msg[2]}")
            break

    _stop(proc, grace)
    parent_conn.close()
    result.end_time = time.time()
    if result.error is None and not result.predictions:
        result.error = "the engine made no prediction within the time budget"
    result.success = result.error is None
    if result.unlabelled is not None:
        rec.unlabelled(result.unlabelled, label_names, _split_ids(dataset.unlabelled))
    rec.end(result.success, result.end_time)
    progress("end", result.error or "")
    return result


def _split_ids(split) -> np.ndarray:
    """Record ids of a split in record order (the reader may know them without decoding)."""
    ids = getattr(split, "ids", None)
    if ids is not None:
        return np.asarray(ids() if callable(ids) else ids)
    return np.asarray([ex.id for ex in split], dtype=np.int64)


def _stop(proc, grace: float) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(grace)
    if proc.is_alive():
        proc.kill()
    proc.join(5)

"""The job: validate -> ingest -> score -> publish. One core for the CLI, the service and the tests.

``run()`` writes into its output folder:

    predictions/            official layout (start.txt, <task>.predict_<k>, end.txt)
    run.jsonl, engine.log   the run's events and the engine's log
    scores.json             the keys of ``autodl score --json`` (when a solution is known)
    scores.txt              the official scorer's keys
    curves.json             ROC and precision-recall curves per class and macro
    learning-curve.png      the learning curve on the log time axis
    examples/               the test examples the last prediction gets most wrong (index.json, PNGs)
    report.html             a self-contained page: curve, scores, confusion matrix, per-class
                            table, ROC and PR curves, log
    unlabelled/             <task>.predict and predictions.csv (when there is an unlabelled part)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autodl._confine import job_limits
from autodl._examples import read_images, write_examples
from autodl.engine.protocol import DEFAULT_ENGINE
from autodl.errors import AutoDLError, FormatError
from autodl.ingestion import IngestionResult, Progress, ingest
from autodl.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from autodl.formats.dataset import Dataset

RESULT_FILES = ("scores.json", "scores.txt", "curves.json", "learning-curve.png", "report.html")


class Stage(StrEnum):
    """Where `run` is, told to ``on_stage``: typed, so callers never read it from logs."""

    RUNNING = "running"  # the engine has started and the clock runs
    SCORING = "scoring"  # ingestion ended: the run is being scored and published


@dataclass
class RunReport:
    """The outcome of `run`: what ingestion did and, when a solution is known, its score."""

    output_dir: Path
    dataset: dict
    ingestion: IngestionResult
    score: object | None  # autodl.scoring.ScoreResult
    seed: int | None = None  # the engine's seed (runs of one dataset are compared by it)
    #: examples/index.json (`autodl._examples`): the mistakes shown, or None
    examples: dict | None = None

    @property
    def success(self) -> bool:
        return self.ingestion.success

    def to_json(self) -> dict:
        """The ``autodl run --json`` object: score keys (or nulls) plus the run's facts."""
        ing = self.ingestion
        data = self.score.to_json() if self.score is not None else {"alc": None, "final_nauc": None}
        data.update(
            {
                "dataset": self.dataset,
                "output_dir": str(self.output_dir),
                "success": ing.success,
                "error": ing.error,
                "time_budget": ing.time_budget,
                "seed": self.seed,
                "duration": round(ing.duration, 3),
                # the engine ended by itself before the deadline (loop step 7)
                "converged_at": ing.converged_at if ing.converged else None,
                "finished": finished_text(ing),
                # how busy the machine was (autodl._load): compare runs with it in mind
                "machine": ing.load.to_json() if ing.load is not None else None,
                "n_predictions": len(ing.predictions),
                "late_predictions": ing.late,
                "predictions": [
                    {
                        "index": p.index,
                        "elapsed": round(p.elapsed, 4),
                        "learner": p.learner,
                        "valid_score": p.valid_score,
                    }
                    for p in ing.predictions
                ],
                "unlabelled": str(self.output_dir / "unlabelled")
                if ing.unlabelled is not None
                else None,
                # the saved model of the last counted prediction (autodl predict), or None
                "model": str(ing.model) if ing.model is not None else None,
            }
        )
        return data


def finished_text(ing: IngestionResult) -> str:
    """How the run ended: "finished early: converged at X s", at the deadline, or failed."""
    if ing.converged:
        return f"finished early: converged at {ing.converged_at:.1f} s"
    return "finished at the deadline" if ing.success else "failed"


def job_threads(threads: int, workers: int, cores: int | None = None) -> int:
    """The engine's thread count: ``threads`` (AUTODL_THREADS) when set, else the job's
    share of the cores, ``cores // workers`` (AUTODL_WORKERS jobs, or ``autodl worker
    --concurrency``, run at once), at least 1; 0 (every core) for one job at a time.

    >>> job_threads(0, 1, 16), job_threads(0, 4, 16), job_threads(0, 3, 2), job_threads(6, 4, 16)
    (0, 4, 1, 6)
    """
    if threads > 0 or workers <= 1:
        return threads
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // workers)


def dataset_summary(dataset) -> dict:
    spec = dataset.spec
    return {
        "name": dataset.name,
        "domain": spec.domain,
        "output_dim": spec.output_dim,
        "label_names": spec.label_names,
        "shape": list(spec.shape),
        "format": spec.format,
        "train": len(dataset.train),
        "test": len(dataset.test),
        "unlabelled": len(dataset.unlabelled) if dataset.unlabelled is not None else None,
    }


def check_output(output_dir: Path, force: bool) -> bool:
    """Refuse to mix two runs in one folder unless ``force``; True when a run is there.

    Nothing is removed here: the caller clears the old run (`clear_output`) only once
    the new one has started.
    """
    if output_dir.exists() and not output_dir.is_dir():
        raise AutoDLError(
            f"{output_dir} is a file; a run writes a folder",
            "Choose another output folder (--output, or output_dir= in Python).",
        )
    if output_dir.exists() and any(output_dir.iterdir()):
        if not force:
            raise AutoDLError(
                f"{output_dir} already holds files; a run needs an empty output folder",
                "Choose another output folder (--output, or output_dir= in Python), or "
                "replace what is there (--force, or force=True in Python).",
            )
        return True
    return False


def clear_output(output_dir: Path) -> None:
    """Remove the files of an earlier run from ``output_dir`` (and nothing else)."""
    if output_dir.is_dir():
        for name in (
            "predictions",
            "unlabelled",
            "examples",
            "run.jsonl",
            "engine.log",
            "model",
            ".models",
            *RESULT_FILES,
        ):
            path = output_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def check_budget(time_budget: float) -> None:
    """Refuse a time budget that is not a positive number of seconds, before anything runs."""
    if not (0 < time_budget < float("inf")):
        raise AutoDLError(
            f"the time budget must be positive, got {time_budget:g} s",
            "Give a number of seconds above 0: --time-budget 300 (time_budget=300 in Python).",
        )


def check_solution(dataset: Dataset) -> None:
    """Refuse a dataset whose solution cannot score its test split (the wrong number of
    rows or columns), before the engine starts: found after the run, the whole budget
    would be spent for nothing. The words are `autodl check`'s."""
    from autodl.formats.solution import solution_misfits

    if dataset.solution is None:
        return
    file = f"{dataset.name}.solution"
    misfits = solution_misfits(dataset.solution, file, len(dataset.test), dataset.spec.output_dim)
    if misfits:
        raise FormatError(
            "; ".join(message for message, _ in misfits) + ": the run could not be scored",
            f"Re-export the solution with the test split (one row of labels per test record, "
            f"in test/'s order); `autodl check {dataset.path}` lists every problem.",
            file=file,
        )


def run(
    dataset: Dataset | str | os.PathLike,
    output_dir: str | os.PathLike,
    time_budget: float | None = None,
    *,
    engine: str = DEFAULT_ENGINE,
    seed: int | None = None,
    force: bool = False,
    settings: Settings | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_stage: Callable[[Stage], None] | None = None,
    other_jobs: Callable[[], int] | None = None,
    save_model: bool | None = None,
) -> RunReport:
    """Run the engine on a dataset, then score and publish the run.

    ``dataset`` is an open `Dataset` or its path: this process opens it once and
    passes it down (ingestion, scoring); the engine's process opens it once more.

    ``on_progress`` gets display snapshots (ticks, predictions, log lines); ``on_stage``
    gets each `Stage` as it begins (the service's job runner moves its job to
    ``scoring`` from it). ``other_jobs`` counts the jobs running beside this one (the
    service passes it): the report and ``run.json``'s ``machine`` say how many shared
    the machine. ``save_model`` (default ``AUTODL_SAVE_MODEL``, on) keeps the model of the
    last counted prediction in ``output_dir/model/`` (`autodl.load_model`), with its test
    score once scored.

    >>> report = run("digits", "out/digits", time_budget=60)   # doctest: +SKIP
    >>> report.score.alc                                        # doctest: +SKIP
    0.93...
    """
    from autodl.formats.dataset import Dataset

    settings = settings or Settings.from_env()
    budget = settings.time_budget if time_budget is None else float(time_budget)
    check_budget(budget)
    ds = dataset if isinstance(dataset, Dataset) else _open(dataset)
    try:
        check_solution(ds)
    except AutoDLError:
        if ds is not dataset:
            ds.close()
        raise
    output_dir = Path(output_dir)
    check_output(output_dir, force)
    seed = settings.seed if seed is None else seed
    result = ingest(
        ds,
        output_dir,
        budget,
        engine=engine,
        seed=seed,
        threads=job_threads(settings.threads, settings.workers),
        grace=settings.grace_seconds,
        on_progress=on_progress,
        limits=job_limits(settings),
        on_ready=lambda: _ready(output_dir, on_stage),
        other_jobs=other_jobs,
        save_model=settings.save_model if save_model is None else save_model,
    )
    if on_stage is not None:
        on_stage(Stage.SCORING)
    summary = dataset_summary(ds)
    report = RunReport(output_dir, summary, result, None, seed=seed)
    publish(report, ds)
    if result.model is not None and report.score is not None:  # the model's test score
        from autodl.engine.export import annotate

        annotate(result.model, test_score=report.score.final_nauc, alc=report.score.alc)
    return report


def _open(path: str | os.PathLike) -> Dataset:
    """The dataset at ``path``; raw data (a table, class folders) is refused with the
    Python calls that convert it first (the CLI converts it itself, see autodl.cli)."""
    from autodl.formats.convert.detect import describe_raw
    from autodl.formats.dataset import open_dataset

    try:
        return open_dataset(path)
    except FormatError:
        raw = describe_raw(path)
        if raw is None:
            raise
    hint = f"Convert it first: `{raw.python_call()}`, then `autodl.run(result.dataset, …)`"
    if raw.kind == "table":
        hint += f" (label: {'guessed from its name' if raw.label else 'the column of the classes'})"
    raise FormatError(raw.message(), hint + ".") from None


def _ready(output_dir: Path, on_stage: Callable[[Stage], None] | None) -> None:
    """The engine has started: the earlier run's files go now (not before), then the clock."""
    clear_output(output_dir)
    if on_stage is not None:
        on_stage(Stage.RUNNING)


def publish(report: RunReport, dataset) -> None:
    """Score the run (when the dataset has a solution) and write the result files."""
    from autodl import scoring
    from autodl.scoring.report import html_report, learning_curve_png

    ing = report.ingestion
    out = report.output_dir
    if dataset.solution is not None and ing.predictions:
        report.score = scoring.score(
            dataset.solution,
            ing.predictions_dir,
            ing.time_budget,
            label_names=dataset.spec.label_names,
        )
        scoring.write_scores(report.score, out)
        learning_curve_png(
            report.score, out / "learning-curve.png", title=f"Learning curve: {ing.task}"
        )
    examples_note = _write_examples(report, dataset)
    log_path = out / "engine.log"
    engine_log = log_path.read_text(encoding="utf-8") if log_path.exists() else ""
    html_report(
        report.score,
        out / "report.html",
        dataset=report.dataset,
        engine_log=engine_log,
        budget_used=ing.duration,
        error=_error_text(ing),
        predictions_table=[
            {
                "index": p.index,
                "elapsed": p.elapsed,
                "learner": p.learner,
                "valid_score": p.valid_score,
            }
            for p in ing.predictions
        ],
        time_budget=ing.time_budget,
        notes=[finished_text(ing).capitalize() + "."]
        + ([f"Machine: {ing.load.text()}."] if ing.load is not None else [])
        + ([examples_note] if examples_note else []),
        examples=report.examples,
        example_images=read_images(report.examples, out) if report.examples else None,
    )
    (out / "run.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")


def _write_examples(report: RunReport, dataset) -> str | None:
    """Write ``examples/`` for the last counted prediction (`autodl._examples`: only the
    records shown are read); None, or why they could not be made (the run stands)."""
    score = report.score
    if score is None or not score.counted:
        return None
    last = score.counted[-1]
    paths = [p.path for p in report.ingestion.predictions if p.index == last]
    if not paths:
        return None
    try:
        prediction = np.loadtxt(paths[0], ndmin=2)
        report.examples = write_examples(
            dataset, prediction, report.output_dir, prediction_index=last
        )
    except (AutoDLError, OSError, ValueError) as e:
        return f"The examples the model gets wrong could not be made: {e}"
    return None


def _error_text(ing: IngestionResult) -> str | None:
    if ing.error is None:
        return None
    return ing.error + (f"\n\n{ing.error_traceback}" if ing.error_traceback else "")

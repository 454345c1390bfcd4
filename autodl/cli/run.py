"""``autodl run`` and ``autodl score``: train under a time budget, score a prediction folder.

Both faces of `autodl.pipeline` / `autodl.scoring`: options in, live progress on
stderr, the scores (or one JSON object) on stdout, exit status 1 when the run failed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from autodl.cli.common import convert_raw, raw_data, settings

# --------------------------------------------------------------------- score


@click.command()
@click.option(
    "--solution",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The <task>.solution file (test labels).",
)
@click.option(
    "--predictions",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A prediction folder in the official layout.",
)
@click.option(
    "--time-budget",
    type=float,
    default=None,
    help="T in seconds (default: time_budget in start.txt).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def score(solution: Path, predictions: Path, time_budget: float | None, as_json: bool) -> None:
    """Score a prediction folder exactly as the official AutoDL scorer: NAUC per prediction, ALC of the run."""
    from autodl import scoring

    result = scoring.score(solution, predictions, time_budget)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
        return
    _print_score(result)


def _print_score(result) -> None:
    data = result.to_json()
    # "accuracy" is the official scorer's soft accuracy: the mean probability of the true class
    click.echo(f"{'#':>3} {'time (s)':>10} {'NAUC':>8} {'soft accuracy':>13}")
    acc = data.get("accuracy")
    late = set(data.get("late") or [])
    for i, (t, s) in enumerate(zip(data["timestamps"], data["nauc"], strict=True)):
        a = f"{acc[i]:13.4f}" if acc else f"{'-':>13}"
        flag = "  (after the budget: not counted)" if i in late else ""
        click.echo(f"{i:>3} {t:>10.2f} {s:>8.4f} {a}{flag}")
    if data.get("ignored_classes"):
        click.echo(f"classes left out (constant in the solution): {data['ignored_classes']}")
    if data["final_nauc"] is None:
        click.secho(f"ALC {data['alc']:.4f}   no prediction within the time budget", bold=True)
    else:
        click.secho(f"ALC {data['alc']:.4f}   final NAUC {data['final_nauc']:.4f}", bold=True)


# ----------------------------------------------------------------------- run


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--time-budget", type=float, default=None, help="Seconds (default: AUTODL_TIME_BUDGET, 1200)."
)
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for predictions, scores and the report.",
)
@click.option(
    "--seed", type=int, default=None, help="Random seed of the engine (default: AUTODL_SEED, 0)."
)
@click.option("--force", is_flag=True, help="Replace a previous run in the output folder.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Raw data only: the label column of a table (as `autodl format --label`).",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object at the end (progress goes to stderr).",
)
@click.option(
    "--no-model",
    "no_model",
    is_flag=True,
    help="Do not save the model in OUTPUT/model/ (default: AUTODL_SAVE_MODEL, on).",
)
def run(
    path: Path,
    time_budget: float | None,
    output: Path,
    seed: int | None,
    force: bool,
    labels: tuple[str, ...],
    as_json: bool,
    no_model: bool,
) -> None:
    """Train on a dataset under a time budget, then score it and write a report.

    PATH is an AutoDL dataset (folder or zip), or raw data that `autodl format` reads
    (a table, folders of images, audio, video or text): that is converted first, with
    `autodl format`'s defaults, into OUTPUT/formatted/.
    """
    from autodl import pipeline
    from autodl.cli.progress import LiveProgress
    from autodl.formats.dataset import open_dataset

    # refuse before saying anything (or converting raw data)
    pipeline.check_budget(settings().time_budget if time_budget is None else time_budget)
    pipeline.check_output(output, force)
    raw = raw_data(path, labels)
    if raw is not None:
        target = output / "formatted"
        path = convert_raw(
            path, raw, target, labels, command="run", where=f"into {target}/", force=force
        ).dataset
        force = True  # the output was checked above; it now holds the converted data as well
    ds = open_dataset(path)
    pipeline.check_solution(ds)
    live = LiveProgress(ds.solution, sys.stderr)
    click.echo(
        f"Running on {ds.name} ({ds.spec.domain}, {ds.spec.output_dim} classes, "
        f"{len(ds.train)} train / {len(ds.test)} test records) -> {output}",
        err=True,
    )
    # the dataset opened above is the run's: pipeline and ingestion do not open it again
    report = pipeline.run(
        ds,
        output,
        time_budget,
        seed=seed,
        force=force,
        on_progress=live,
        save_model=False if no_model else None,
    )
    live.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        _print_run(report)
    sys.exit(0 if report.success else 1)


def _print_run(report) -> None:
    ing = report.ingestion
    out = report.output_dir
    if report.score is not None:
        _print_score(report.score)
    else:
        why = "no prediction to score" if not ing.predictions else "no solution, so no score"
        click.echo(f"{len(ing.predictions)} prediction(s); {why}.")
    if ing.error:
        click.secho(f"The run failed: {ing.error}", fg="red")
    click.echo(f"Report:      {out / 'report.html'}")
    if report.score is not None:
        click.echo(f"Curve:       {out / 'learning-curve.png'}")
    click.echo(f"Predictions: {ing.predictions_dir}")
    if ing.unlabelled is not None:
        click.echo(f"Unlabelled:  {out / 'unlabelled' / 'predictions.csv'}")
    if getattr(ing, "model", None) is not None:
        click.echo(f"Model:       {ing.model}  (autodl predict {ing.model} INPUT --output FILE)")

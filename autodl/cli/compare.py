"""``autodl compare RUN_DIR...``: runs side by side, as the service's leaderboard shows them.

Each RUN_DIR is an output folder of ``autodl run`` (its ``scores.json``, and
``run.json`` for the dataset, the seed and the time of the first prediction). The
table is sorted by ALC, best first; ``--output FILE.png`` draws the learning curves
on one chart. Nothing is recomputed: the stored scores are read as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from autodl.errors import AutoDLError


def read_run(folder: Path) -> dict:
    """The facts of one run folder: its `ScoreResult` and what run.json says."""
    from autodl.scoring import ScoreResult

    scores = folder / "scores.json"
    if not scores.is_file():
        raise AutoDLError(
            f"{folder} holds no scores.json: it is not a scored run",
            "Give output folders of `autodl run` on datasets with a solution (their test "
            "labels); a run without one has no score to compare.",
        )
    try:
        result = ScoreResult.from_json(json.loads(scores.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as e:
        raise AutoDLError(
            f"{scores}: not a scores.json written by autodl ({type(e).__name__}: {e})",
            "Run `autodl run` again into a fresh folder.",
        ) from None
    run: dict = {}
    path = folder / "run.json"
    if path.is_file():
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            run = {}
    dataset = run.get("dataset") or {}
    counted = result.counted
    return {
        "run": str(folder),
        "dataset": dataset.get("name") or result.task,
        "test": dataset.get("test"),
        "time_budget": result.time_budget,
        "seed": run.get("seed"),
        "alc": result.alc,
        "final_nauc": result.final_nauc,
        "first_prediction": result.timestamps[counted[0]] if counted else None,
        "n_predictions": len(counted),
        "result": result,
    }


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


@click.command()
@click.argument(
    "run_dirs",
    metavar="RUN_DIR...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the learning curves, overlaid, to this PNG file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as one JSON object.")
def compare(run_dirs: tuple[Path, ...], output: Path | None, as_json: bool) -> None:
    """Compare runs of a dataset: budget, seed, ALC, final NAUC and time to the first prediction, best ALC first."""
    runs = [read_run(d) for d in dict.fromkeys(run_dirs)]
    runs.sort(key=lambda r: -r["alc"])
    datasets = sorted({str(r["dataset"]) for r in runs})
    if len({(r["dataset"], r["test"]) for r in runs}) > 1:
        click.secho(
            f"warning: these runs are not all of one dataset ({', '.join(datasets)}): "
            "their scores do not compare",
            fg="yellow",
            err=True,
        )
    if output is not None:
        from autodl.scoring.report import compare_curves_png

        labels = _labels([Path(r["run"]) for r in runs])
        compare_curves_png(
            [(label, r["result"]) for label, r in zip(labels, runs, strict=True)],
            output,
            title=f"Learning curves: {', '.join(datasets)}",
        )
    if as_json:
        rows = [{k: v for k, v in r.items() if k != "result"} for r in runs]
        out = {"runs": rows, "output": str(output) if output else None}
        click.echo(json.dumps(out, indent=1))
        return
    _print_table(runs)
    if output is not None:
        click.echo(f"Curves: {output}")


def _labels(folders: list[Path]) -> list[str]:
    """Each run's folder name, or its path where two names are the same."""
    names = [f.name or str(f) for f in folders]
    return [n if names.count(n) == 1 else str(f) for n, f in zip(names, folders, strict=True)]


def _print_table(runs: list[dict]) -> None:
    labels = _labels([Path(r["run"]) for r in runs])
    width = max(3, *(len(s) for s in labels))
    data_width = max(7, *(len(str(r["dataset"])) for r in runs))
    click.echo(
        f"{'#':>2}  {'run':<{width}}  {'dataset':<{data_width}}  {'budget':>8}  {'seed':>5}  "
        f"{'ALC':>6}  {'NAUC':>6}  {'first pred.':>11}  {'preds':>5}"
    )
    for rank, (label, r) in enumerate(zip(labels, runs, strict=True), 1):
        first = "-" if r["first_prediction"] is None else f"{r['first_prediction']:.1f} s"
        click.echo(
            f"{rank:>2}  {label:<{width}}  {str(r['dataset']):<{data_width}}  "
            f"{r['time_budget']:>6g} s  {_num(r['seed'], 'd'):>5}  {r['alc']:>6.4f}  "
            f"{_num(r['final_nauc'], '.4f'):>6}  {first:>11}  {r['n_predictions']:>5}"
        )

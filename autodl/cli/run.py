"""`autodl` on the command line: check, score and run, over the same core as the service.

Every user error ends in one message and a hint on stderr and exit status 1,
never a traceback (``autodl --debug …`` shows it).
"""

from __future__ import annotations

import json
import shutil
import sys
import traceback
from pathlib import Path

import click

from autodl.errors import AutoDLError


class _Group(click.Group):
    """Turns AutoDLError (and anything unexpected) into one clear message."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AutoDLError as e:
            _fail(e.message, e.hint, ctx)
        except click.UsageError as e:
            # A mistyped path or option of a command: one message, a hint, status 1 (as
            # every user error here), not click's usage block with status 2.
            _fail(e.format_message(), _usage_hint(e), ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", None, ctx)
        except Exception as e:  # noqa: BLE001 - last line of defence for users
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            _fail(
                f"unexpected error: {type(e).__name__}: {e}",
                "This is a bug in autodl; run again with `autodl --debug …` and report the traceback.",
                ctx,
            )


def _usage_hint(e: click.UsageError) -> str:
    command = e.ctx.command_path if e.ctx is not None else "autodl"
    hint = f"See `{command} --help`."
    param = getattr(e, "param", None)
    if param is not None and isinstance(param.type, click.Path):
        hint = (
            f"Check the path: a relative one starts from the current folder ({Path.cwd()}). " + hint
        )
    return hint


def _fail(message: str, hint: str | None, ctx: click.Context) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"Hint: {hint}", err=True)
    ctx.exit(1)


@click.group(cls=_Group)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="autodl-selfservice", prog_name="autodl")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """AutoDL Self-Service: automatic deep learning for classification datasets."""
    ctx.obj = {"debug": debug}


# --------------------------------------------------------------------- check


@main.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(path: Path, as_json: bool) -> None:
    """Validate an AutoDL dataset (folder or zip). Exit status 0 when valid, 1 when not."""
    from autodl.formats.check import check_dataset
    from autodl.formats.convert.detect import describe_raw

    raw = describe_raw(path)
    if raw is not None:
        raise raw.error()
    report = check_dataset(path)
    data = report.to_json()
    errors = [p for p in data["problems"] if p.get("severity", "error") == "error"]
    if as_json:
        click.echo(json.dumps(data, indent=1))
    else:
        _print_check(data, path)
    sys.exit(1 if errors else 0)


def _print_check(data: dict, path: Path) -> None:
    def count(part):
        return "-" if data[part] is None else str(data[part]["count"])

    names = data.get("label_names")
    classes = f"{data['output_dim']}" + (
        f" ({', '.join(map(str, names))})" if names else " (no label names)"
    )
    rows = [
        ("dataset", str(data.get("name"))),
        ("domain", str(data.get("domain"))),
        ("classes", classes),
        (
            "records",
            f"train {count('train')}, test {count('test')}, unlabelled {count('unlabelled')}",
        ),
        (
            "example shape",
            "(" + ", ".join(map(str, data.get("shape") or [])) + ")  (T, H, W, C; -1 = varies)",
        ),
        ("storage", str(data.get("format"))),
    ]
    for key, value in rows:
        click.echo(f"{key:>14}: {value}")
    problems = data["problems"]
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    for p in problems:
        where = ", ".join(str(x) for x in (p.get("file"), _record(p), p.get("field")) if x)
        colour = "red" if p.get("severity", "error") == "error" else "yellow"
        click.secho(f"  {p.get('severity', 'error')}: {where}: {p['message']}", fg=colour)
    if errors:
        click.secho(f"{path}: {len(errors)} problem(s) found; the dataset is not valid.", fg="red")
    else:
        click.secho(f"{path}: valid AutoDL dataset.", fg="green")


def _record(p: dict) -> str | None:
    return None if p.get("record") is None else f"record {p['record']}"


# --------------------------------------------------------------------- score


@main.command()
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
    click.echo(f"{'#':>3} {'time (s)':>10} {'NAUC':>8} {'accuracy':>9}")
    acc = data.get("accuracy")
    late = set(data.get("late") or [])
    for i, (t, s) in enumerate(zip(data["timestamps"], data["nauc"], strict=True)):
        a = f"{acc[i]:9.4f}" if acc else f"{'-':>9}"
        flag = "  (after the budget: not counted)" if i in late else ""
        click.echo(f"{i:>3} {t:>10.2f} {s:>8.4f} {a}{flag}")
    if data.get("ignored_classes"):
        click.echo(f"classes left out (constant in the solution): {data['ignored_classes']}")
    if data["final_nauc"] is None:
        click.secho(f"ALC {data['alc']:.4f}   no prediction within the time budget", bold=True)
    else:
        click.secho(f"ALC {data['alc']:.4f}   final NAUC {data['final_nauc']:.4f}", bold=True)


# ----------------------------------------------------------------------- run


@main.command()
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
def run(
    path: Path,
    time_budget: float | None,
    output: Path,
    seed: int | None,
    force: bool,
    labels: tuple[str, ...],
    as_json: bool,
) -> None:
    """Train on a dataset under a time budget, then score it and write a report.

    PATH is an AutoDL dataset (folder or zip), or raw data that `autodl format` reads
    (a table, folders of images, audio, video or text): that is converted first, with
    `autodl format`'s defaults, into OUTPUT/formatted/.
    """
    from autodl import pipeline
    from autodl.cli_progress import LiveProgress
    from autodl.formats.dataset import open_dataset

    pipeline.check_output(output, force)  # refuse before saying anything
    converted = _convert_raw(path, output / "formatted", labels, force)
    if converted is not None:
        # The output was checked above; it now holds the converted data as well.
        path, force = converted, True
    ds = open_dataset(path)
    live = LiveProgress(ds.solution, sys.stderr)
    click.echo(
        f"Running on {ds.name} ({ds.spec.domain}, {ds.spec.output_dim} classes, "
        f"{len(ds.train)} train / {len(ds.test)} test records) -> {output}",
        err=True,
    )
    report = pipeline.run(path, output, time_budget, seed=seed, force=force, on_progress=live)
    live.close()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        _print_run(report)
    sys.exit(0 if report.success else 1)


def _convert_raw(path: Path, target: Path, labels: tuple[str, ...], force: bool) -> Path | None:
    """Raw data given to `run`: converted into ``target`` (format's defaults); its dataset
    folder. None when ``path`` is not raw data."""
    from autodl.formats.convert import format_dataset
    from autodl.formats.convert.detect import describe_raw

    raw = describe_raw(path)
    if raw is None:
        if labels:
            raise AutoDLError(
                f"--label is for raw data, and {path} is an AutoDL dataset",
                "Leave --label out: the dataset names its classes.",
            )
        return None
    label = list(labels) or ([raw.label] if raw.label else [])
    if raw.kind == "table" and not label:
        raise AutoDLError(
            f"{path} is raw data: {raw.summary}; which column holds the labels?",
            f"Name it: `autodl run {path} --label COLUMN …`, or convert it first: "
            f"`{raw.command()}`.",
        )
    said = f" (label column {', '.join(map(repr, label))})" if raw.kind == "table" else ""
    click.echo(
        f"{path} is raw data, {raw.summary}: converting it first with `autodl format`'s "
        f"defaults{said} into {target}/",
        err=True,
    )
    result = format_dataset(path, target, label=label or None, progress=sys.stderr, force=force)
    for warning in result.warnings:
        click.secho(f"Warning: {warning}", fg="yellow", err=True)
    return result.dataset


def _print_run(report) -> None:
    ing = report.ingestion
    out = report.output_dir
    if report.score is not None:
        _print_score(report.score)
    else:
        click.echo(f"{len(ing.predictions)} prediction(s); no solution, so no score.")
    if ing.error:
        click.secho(f"The run failed: {ing.error}", fg="red")
    click.echo(f"Report:      {out / 'report.html'}")
    if report.score is not None:
        click.echo(f"Curve:       {out / 'learning-curve.png'}")
    click.echo(f"Predictions: {ing.predictions_dir}")
    if ing.unlabelled is not None:
        click.echo(f"Unlabelled:  {out / 'unlabelled' / 'predictions.csv'}")


# -------------------------------------------------------------------- sample

SAMPLES = {"digits": "scikit-learn's 1797 handwritten digits (8x8 grey images, 10 classes)"}


@main.command()
@click.argument("name", type=click.Choice(sorted(SAMPLES)))
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the dataset into.",
)
@click.option("--force", is_flag=True, help="Replace the sample if it is already there.")
def sample(name: str, output: Path, force: bool) -> None:
    """Write a sample dataset (made from data a dependency ships) to try autodl on."""
    from autodl.formats import samples

    root = output / name
    if root.exists() and any(root.iterdir()):
        if not force:
            raise AutoDLError(
                f"{root} already exists", "Pass --force to write it again, or use it as it is."
            )
        shutil.rmtree(root)
    path = samples.make_digits(output)
    click.echo(f"Wrote {SAMPLES[name]} to {path}")
    click.echo(f"Next: autodl run {path} --time-budget 60 --output runs/{name}")


from autodl import cli_format as _cli_format  # noqa: E402,F401 - registers format
from autodl import cli_service as _cli_service  # noqa: E402,F401 - registers serve, user, token, submit, db

if __name__ == "__main__":  # pragma: no cover
    main()

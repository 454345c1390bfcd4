"""``autodl format``, ``autodl check`` and ``autodl sample``: raw data in, a checked
AutoDL dataset out.

``format`` is a thin face over `autodl.formats.convert.format_dataset`: options in,
the progress bar on stderr, then what was done and the `autodl check` summary on
stdout. Errors are `FormatError`s, printed by the group with their hint. ``check``
validates a dataset (exit status 1 when it is not valid); ``sample`` writes one to
try autodl on.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

from autodl.errors import AutoDLError
from autodl.formats.convert.options import DOMAINS

_FILE = click.Path(exists=True, path_type=Path)

# --------------------------------------------------------------------- check


@click.command()
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
    from autodl.formats.check import problem_line

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
        colour = "red" if p.get("severity", "error") == "error" else "yellow"
        click.secho(f"  {problem_line(p)}", fg=colour)
    if errors:
        click.secho(f"{path}: {len(errors)} problem(s) found; the dataset is not valid.", fg="red")
    else:
        click.secho(f"{path}: valid AutoDL dataset.", fg="green")


# -------------------------------------------------------------------- format


@click.command("format")
@click.argument("input", type=_FILE)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write <name>/, <name>.zip and the manifests into.",
)
@click.option("--name", default=None, help="Dataset name (default: from INPUT's name).")
@click.option(
    "--domain", type=click.Choice(DOMAINS), default=None, help="Kind of data (default: detected)."
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Label column; repeat for 0/1 class columns (multi-label).",
)
@click.option(
    "--label-separator",
    default=None,
    help="Separator of several labels in one cell, e.g. '|' (multi-label).",
)
@click.option(
    "--test-size",
    type=float,
    default=0.35,
    show_default=True,
    help="Test fraction (or a count ≥ 1) of a stratified split.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the split and of the record order.",
)
@click.option(
    "--keep-order",
    is_flag=True,
    help="Keep the input's order within each split (default: train and test records shuffled with --seed).",
)
@click.option(
    "--split-column",
    default=None,
    help="Column of train/test(/unlabelled) values giving the split.",
)
@click.option(
    "--split-file",
    type=_FILE,
    default=None,
    help="File listing the test records (ITEM or ITEM,train|test|unlabelled per line).",
)
@click.option(
    "--unlabelled",
    type=_FILE,
    default=None,
    help="Data without labels to add as the unlabelled part (same kind as INPUT).",
)
@click.option(
    "--id-column",
    default=None,
    help="Table column naming each row (kept in the records manifest, not a feature).",
)
@click.option("--drop", multiple=True, help="Table column to leave out; repeatable.")
@click.option("--text-column", default=None, help="Column holding the text (default: detected).")
@click.option(
    "--language",
    default="auto",
    show_default=True,
    help="Text language: zh, ja, th … cut text into characters.",
)
@click.option(
    "--max-size",
    type=int,
    default=None,
    help="Shrink images and video frames to at most this many pixels a side.",
)
@click.option(
    "--sample-rate",
    type=int,
    default=16000,
    show_default=True,
    help="Audio sample rate (Hz) of the dataset.",
)
@click.option(
    "--fps",
    type=float,
    default=5.0,
    show_default=True,
    help="Video frames taken per second (at most).",
)
@click.option(
    "--max-frames",
    type=int,
    default=50,
    show_default=True,
    help="Video frames per clip at most (spread over the clip).",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave unreadable files and bad rows out (listed) instead of stopping.",
)
@click.option("--workers", type=int, default=None, help="Decoding processes (default: every core).")
@click.option("--force", is_flag=True, help="Replace an earlier output of the same name.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (what was written) instead of the summary.",
)
def format_command(
    input: Path, output: Path, labels: tuple[str, ...], as_json: bool, **options
) -> None:
    """Turn raw data into an AutoDL dataset: a CSV/Parquet table (tabular, text, time
    series) or a folder of images, audio, video or .txt files (one folder per class,
    or files plus labels.csv). Writes OUTPUT/<name>/ and OUTPUT/<name>.zip."""
    from autodl.formats.convert import format_dataset

    result = format_dataset(input, output, label=labels, progress=sys.stderr, **options)
    if as_json:
        data = result.to_json()
        data["check"] = result.report.to_json()
        click.echo(json.dumps(data, indent=1, ensure_ascii=False))
        return
    click.echo(f"{result.source[0].upper()}{result.source[1:]} in {result.seconds:.1f} s.")
    if result.skipped:
        click.secho(f"{len(result.skipped)} input(s) left out (--skip-bad):", fg="yellow")
        for src, why in result.skipped[:20]:
            click.echo(f"  {src}: {why}")
        if len(result.skipped) > 20:
            click.echo(f"  … and {len(result.skipped) - 20} more (all in {result.manifest.name})")
    for w in result.warnings:
        click.secho(f"Warning: {w}", fg="yellow")
    _print_check(result.report.to_json(), result.dataset)
    click.echo(f"Dataset:  {result.dataset}")
    click.echo(f"Upload:   {result.zip}")
    click.echo(f"Manifest: {result.manifest} (records: {result.records.name})")
    click.echo(f"Next: autodl run {result.dataset} --time-budget 300 --output runs/{result.name}")


# -------------------------------------------------------------------- sample

SAMPLES = {"digits": "scikit-learn's 1797 handwritten digits (8x8 grey images, 10 classes)"}


@click.command()
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

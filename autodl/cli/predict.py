"""``autodl predict``: apply a run's saved model to new data, without the service or a GPU."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click


@click.command()
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The CSV (or .predict file) to write; missing folders above it are made. "
    "Refused when it is the input, or inside the model or an input folder.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "predict"]),
    default="csv",
    show_default=True,
    help="csv: a name column, one probability column per class (and top_class); "
    "predict: the official .predict layout (the run's test scores).",
)
@click.option(
    "--split",
    type=click.Choice(["test", "unlabelled", "train"]),
    default=None,
    help="For an AutoDL dataset: the split to predict (default: unlabelled if it has "
    "records, else test).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Examples read and predicted at a time (memory). Default: 256, or 8192 for a "
    "dataset split small enough to decode in one pass.",
)
@click.option(
    "--skip-bad",
    is_flag=True,
    help="Leave out raw files that do not decode (each named on stderr, with why) "
    "instead of stopping at the first.",
)
def predict(
    model: Path,
    input_path: Path,
    output: Path,
    fmt: str,
    split: str | None,
    batch_size: int | None,
    skip_bad: bool,
) -> None:
    """Predict with a saved model (a run's OUTPUT/model folder, or a zip of it) on INPUT.

    INPUT is an AutoDL dataset (folder or zip), or raw data of the model's domain that
    `autodl format` reads: a folder, zip or file of images, audio, video or .txt files,
    or a CSV of rows (tabular: the training columns by name) or texts. It is converted
    on the fly as the training data was. Files of another kind in a folder are left
    out and named. The model's parts are pickled: load only models you trust.
    """
    from autodl.model import load_model, predict_to_csv
    from autodl.model.inputs import BadFile
    from autodl.model.predict import check_output

    check_output(model, input_path, output)  # before the model loads
    t0 = time.monotonic()
    loaded = load_model(model)
    click.echo(
        f"Model: {loaded.info.get('learner')} ({loaded.spec.domain}, "
        f"{loaded.spec.output_dim} classes), loaded in {time.monotonic() - t0:.2f}s",
        err=True,
    )
    bar = _Progress(sys.stderr)
    skipped: list[tuple[str, str]] = []

    def say(line: str) -> None:
        bar.close()
        click.echo(line, err=True)

    try:
        n = predict_to_csv(
            loaded, input_path, output, split=split, fmt=fmt, batch_size=batch_size,
            progress=bar, say=say, skip_bad=skip_bad, skipped=skipped,
        )  # fmt: skip
    except BadFile as e:
        bar.close()
        e.hint = f"{e.hint or ''} Or leave out the files that do not decode: --skip-bad."
        raise
    bar.close()
    took = time.monotonic() - t0
    left = f"; {len(skipped)} file{'' if len(skipped) == 1 else 's'} skipped" if skipped else ""
    click.echo(
        f"Wrote {n} prediction{'' if n == 1 else 's'} to {output} in {took:.1f}s{left}", err=True
    )


class _Progress:
    """``done/total`` on stderr, at most a few times a second (a line per update off a TTY)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        pct = 100.0 * done / total if total else 100.0
        line = f"predicting: {done}/{total} examples ({pct:.0f}%)"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """End the progress line (before other lines are written)."""
        if self.tty and self.shown:
            self.stream.write("\n")
            self.stream.flush()
        self.shown = False

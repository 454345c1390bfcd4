"""``autodl submit``: a client of any server, over HTTP.

Uploads a dataset (zipped here when it is a folder, converted here when it is raw
data), then follows the job and fetches its results as `autodl run` writes them.
"""

from __future__ import annotations

import re
import shlex
import tempfile
import zipfile
from pathlib import Path

import click

from autodl.cli.common import convert_raw, raw_data
from autodl.errors import AutoDLError
from autodl.formats.archive import zip_folder


def _server_options(command):
    """--server and --token, the options of every command that talks to a server."""
    command = click.option(
        "--token",
        "api_token",
        required=True,
        help="An API token (Account page, or `autodl token create`).",
    )(command)
    return click.option(
        "--server", required=True, help="The service's address, e.g. http://127.0.0.1:8000"
    )(command)


@click.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@_server_options
@click.option(
    "--time-budget", type=float, default=None, help="Seconds (default: the server's, 1200)."
)
@click.option("--name", default=None, help="Job name (default: the dataset's name).")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Raw data given as a table: the column that holds the classes (default: guessed "
    "from names such as 'label' or 'class'; repeat for 0/1 class columns).",
)
@click.option("--wait", is_flag=True, help="Follow the job until it ends.")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Download the results here (implies --wait), as `autodl run` writes them.",
)
def submit(
    dataset: Path,
    server: str,
    api_token: str,
    time_budget: float | None,
    name: str | None,
    labels: tuple[str, ...],
    wait: bool,
    output: Path | None,
) -> None:
    """Upload a dataset (folder or zip) to a server, follow the job, fetch the results.

    Raw data (a CSV, TSV or Parquet table; one folder per class of images, audio, video
    or text) is converted first with `autodl format`'s defaults into a temporary folder,
    and the zip it writes is uploaded; a zip of raw data is uploaded as it is and the
    server converts it."""
    from autodl.service.client import Client

    if output is not None and output.exists() and any(output.iterdir()):
        raise AutoDLError(f"{output} already holds files", "Choose an empty --output folder.")
    client = Client(server, api_token)
    client.check_token()  # before a conversion that may take minutes
    with tempfile.TemporaryDirectory(prefix="autodl-submit-") as tmp:
        archive, label = _submission_zip(dataset, Path(tmp), labels)
        try:
            job = client.upload(archive, name=name, time_budget=time_budget, label=label)
        except AutoDLError as e:
            raise _in_cli_words(e, dataset) from None
    click.echo(f"Job {job['id']} queued: {server.rstrip('/')}{job['page']}")
    if not (wait or output):
        return
    job = client.follow(job["id"])
    if job["state"] != "finished":
        reason = job.get("reason") or f"the job was {job['state']}"
        raise AutoDLError(f"job {job['id']} {job['state']}: {reason}")
    click.echo(f"ALC {_f(job['alc'])}   final NAUC {_f(job['final_nauc'])}")
    if output is not None:
        client.download_results(job["id"], output)
        click.echo(f"Results in {output}")


@click.command("submit-predict")
@click.argument("job_id", type=click.IntRange(min=1))
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@_server_options
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Wait for the prediction and write its CSV here (without it: queue and print its address).",
)
def submit_predict(
    job_id: int, data: Path, server: str, api_token: str, output: Path | None
) -> None:
    """Predict on new DATA with the model of the server's job JOB_ID.

    DATA is an AutoDL dataset (its unlabelled part is predicted, else its test part) or
    raw files like those the model learnt from (images, audio, video, .txt files, or a
    CSV with the same columns): a zip, uploaded as it is, or a folder or one file, zipped
    here. The
    server checks it against the model before queueing a short prediction job (its
    budget: the server's AUTODL_PREDICT_BUDGET, counted against your quota); with
    --output the command waits and writes predictions.csv there: one row per input (its
    record id, or its file's path inside DATA), then one column per class."""
    from autodl.service.client import Client

    client = Client(server, api_token)
    client.check_job(job_id)  # a wrong id: the server's 404 before DATA is zipped or sent
    with tempfile.TemporaryDirectory(prefix="autodl-submit-") as tmp:
        if data.is_dir():
            archive = zip_folder(data, Path(tmp) / f"{data.resolve().name}.zip", compresslevel=1)
        elif data.is_file() and not zipfile.is_zipfile(data):  # one CSV, image, recording…
            archive = Path(tmp) / f"{data.stem}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
                z.write(data, data.name)
        else:
            archive = data
        prediction = client.upload_prediction(job_id, archive)
    click.echo(
        f"Prediction {prediction['id']} queued: {server.rstrip('/')}{prediction['url']} "
        f"(job page: {server.rstrip('/')}/jobs/{job_id})"
    )
    if output is None:
        return
    prediction = client.follow_prediction(job_id, prediction["id"])
    if prediction["state"] != "finished" or not prediction.get("download"):
        reason = prediction.get("reason") or f"the prediction was {prediction['state']}"
        raise AutoDLError(f"prediction {prediction['id']} {prediction['state']}: {reason}")
    client.download_file(prediction["download"], output)
    click.echo(f"{prediction['rows']} row(s) predicted: {output}")


def _submission_zip(dataset: Path, tmp: Path, labels: tuple[str, ...]) -> tuple[Path, str | None]:
    """The zip to upload for DATASET and the label field to send with it."""
    from autodl.formats.convert.detect import describe_raw

    if dataset.is_file() and zipfile.is_zipfile(dataset):
        # A dataset zip, or a zip of raw data that the server converts (it takes one column).
        if len(labels) > 1:
            raise AutoDLError(
                f"{dataset} is a zip: the server takes one --label column for it",
                f"Unzip it and give the folder or table: `autodl submit FOLDER --label "
                f"{' --label '.join(labels)} …` converts it here.",
            )
        raw = describe_raw(dataset)
        if raw is not None:
            click.echo(
                f"{dataset} is raw data, {raw.summary}: the server converts it with "
                "`autodl format`'s defaults.",
                err=True,
            )
        return dataset, labels[0] if labels else None
    raw = raw_data(dataset, labels)
    if raw is None:
        if dataset.is_file():
            return dataset, None  # not a zip: the server says what is wrong with it
        return zip_dataset(dataset, tmp / f"{dataset.name}.zip"), None
    result = convert_raw(
        dataset, raw, tmp / "formatted", labels, command="submit", where="into a temporary folder"
    )
    return result.zip, None


#: How the server's hints name the label field of its upload page; here it is --label.
# The page's words and the API's (``the 'label' field``) for the label column, said here
# as the option that sets it.
_LABEL_FIELD = re.compile(
    r"the label column field( \(Label column, tables only\))?|the 'label' field"
)


def _in_cli_words(e: AutoDLError, dataset: Path) -> AutoDLError:
    """The server's refusal with the words of this command: its hints name the fields of
    the upload page ("the label column field"), which here is ``--label``. A table with
    no label column is told by the answer's ``code`` (when the client carries it) or its
    question, "which one holds the classes?"."""
    missing = getattr(e, "code", None) == "missing_label" or "which one holds the classes" in (
        e.message
    )
    if missing:
        return AutoDLError(
            e.message,
            f"Name it with --label: `autodl submit {shlex.quote(str(dataset))} --label COLUMN "
            "…` (one of the columns above).",
        )
    if not _LABEL_FIELD.search(f"{e.message} {e.hint or ''}"):
        return e
    hint = _LABEL_FIELD.sub("--label", e.hint) if e.hint else None
    return AutoDLError(_LABEL_FIELD.sub("--label", e.message), hint)


def _f(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def zip_dataset(folder: Path, target: Path) -> Path:
    """Zip a dataset folder in the submission layout: its files at the archive's root."""
    root = folder.resolve()
    if root.name.endswith(".data") and not any(p.name.endswith(".data") for p in root.iterdir()):
        root = root.parent  # given <name>.data/: take the dataset root that holds it
    if not any(p.is_dir() and p.name.endswith(".data") for p in root.iterdir()):
        raise AutoDLError(
            f"{folder} does not look like an AutoDL dataset (no <name>.data/ folder in it)",
            "Run `autodl check` on it.",
        )
    return zip_folder(root, target, compresslevel=1)

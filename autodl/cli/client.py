"""The service's commands, added to the `autodl` group: serve, worker, user, token, submit, db.

``serve``, ``user``, ``token`` and ``db`` act on this machine's service (its
settings from AUTODL_*); ``submit`` is a client of any server, over HTTP.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import zipfile
from pathlib import Path

import click

from autodl.cli import main
from autodl.errors import AutoDLError
from autodl.settings import Settings

# ---------------------------------------------------------------- serve


@main.command()
@click.option(
    "--host", default=None, help="Address to listen on (default: AUTODL_HOST, 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (default: AUTODL_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web service: pages, API and the embedded job supervisor."""
    import uvicorn

    from autodl.service.app import create_app

    settings = Settings.from_env()
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    # No key is public any more (unset, one is generated into the data directory), but
    # development cookies are not marked Secure: over plain HTTP they can be sniffed.
    if settings.development and settings.host not in ("127.0.0.1", "localhost", "::1"):
        click.secho(
            f"Warning: serving on {settings.host} with AUTODL_ENV=development: session cookies "
            "are not marked Secure. Put the server behind HTTPS and set AUTODL_ENV=production "
            "(with AUTODL_SECRET_KEY) before exposing it.",
            fg="yellow",
            err=True,
        )
    app = create_app(settings)
    click.echo(
        f"AutoDL Self-Service on http://{settings.host}:{settings.port}/  (data in {settings.data_dir.resolve()})",
        err=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


# --------------------------------------------------------------- worker


@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs run at once (one GPU each when the machine has several).",
)
def worker(concurrency: int) -> None:
    """Run jobs from the broker (AUTODL_BROKER_URL) on this machine: a Celery worker."""
    from autodl.service.scaleout import run_worker

    run_worker(Settings.from_env(), concurrency)


# ----------------------------------------------------------- user, token


def _service_db():
    from autodl.service.db import Database

    settings = Settings.from_env()
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    return db


@main.group()
def user() -> None:
    """Manage accounts of this machine's service."""


@user.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
def user_create(name: str, admin: bool) -> None:
    """Create a user; the password is asked for (or read from standard input when piped)."""
    from autodl.service import auth

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    db = _service_db()
    try:
        with db.session() as s:
            auth.create_user(s, name, password, is_admin=admin)
    except auth.AuthError as e:
        raise AutoDLError(e.message) from None
    finally:
        db.dispose()
    click.echo(f"Created {'administrator' if admin else 'user'} {name}.")


@main.group()
def token() -> None:
    """Manage API tokens of this machine's service."""


@token.command("create")
@click.argument("name")
@click.option(
    "--label", default="cli", show_default=True, help="The token's name, to tell it apart."
)
def token_create(name: str, label: str) -> None:
    """Create an API token for user NAME and print it (only this once)."""
    from sqlalchemy import select

    from autodl.service import auth
    from autodl.service.models import User

    db = _service_db()
    try:
        with db.session() as s:
            row = s.scalar(select(User).where(User.name == name))
            if row is None:
                raise AutoDLError(
                    f"no user called {name!r}", f"Create it first: autodl user create {name}"
                )
            _, secret = auth.create_token(s, row, label)
    finally:
        db.dispose()
    click.echo(secret)


# ------------------------------------------------------------------- db


@main.group()
def db() -> None:
    """The service's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema (AUTODL_DATABASE_URL) to the latest version."""
    from autodl.service.db import current_revision, upgrade

    settings = Settings.from_env()
    upgrade(settings.sqlalchemy_url)
    click.echo(f"Database at revision {current_revision(settings.sqlalchemy_url)}: up to date.")


# --------------------------------------------------------------- submit


@main.command()
@click.argument("dataset", type=click.Path(exists=True, path_type=Path))
@click.option("--server", required=True, help="The service's address, e.g. http://127.0.0.1:8000")
@click.option(
    "--token",
    "api_token",
    required=True,
    help="An API token (Account page, or `autodl token create`).",
)
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
        job = client.upload(archive, name=name, time_budget=time_budget, label=label)
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
    raw = describe_raw(dataset)
    if raw is None:
        if labels:
            raise AutoDLError(
                f"--label is for raw data, and {dataset} is an AutoDL dataset",
                "Leave --label out: the dataset names its classes.",
            )
        if dataset.is_file():
            return dataset, None  # not a zip: the server says what is wrong with it
        return zip_dataset(dataset, tmp / f"{dataset.name}.zip"), None
    return _convert(dataset, raw, tmp / "formatted", labels), None


def _convert(dataset: Path, raw, target: Path, labels: tuple[str, ...]) -> Path:
    """Raw data converted into ``target`` with `autodl format`'s defaults: the zip it wrote."""
    from autodl.formats.convert import format_dataset

    label = list(labels) or ([raw.label] if raw.label else [])
    if raw.kind == "table" and not label:
        raise AutoDLError(
            f"{dataset} is raw data, {raw.summary}: which column holds the labels?",
            f"Name it: `autodl submit {dataset} --label COLUMN …`, or convert it first: "
            f"`{raw.command()}`.",
        )
    said = f" (label column {', '.join(map(repr, label))})" if raw.kind == "table" else ""
    click.echo(
        f"{dataset} is raw data, {raw.summary}: converting it first with `autodl format`'s "
        f"defaults{said} into a temporary folder",
        err=True,
    )
    result = format_dataset(dataset, target, label=label or None, progress=sys.stderr)
    for warning in result.warnings:
        click.secho(f"Warning: {warning}", fg="yellow", err=True)
    return result.zip


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
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(root).as_posix())
    return target

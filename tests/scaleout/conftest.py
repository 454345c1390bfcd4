"""Real PostgreSQL and Redis for the scale-out tests (never skipped).

The servers named by ``AUTODL_TEST_PG`` and ``AUTODL_TEST_REDIS`` (CI's system servers),
else servers of our own started once per session from the test extra's wheels
(``tests/scaleout/servers.py``). Each test gets a database of its own (created, then
dropped) and a Redis database number of its own (flushed after), so parallel runs on
shared servers do not collide.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis

from autodl.settings import Settings
from tests.scaleout.servers import (
    ServerError,
    admin_connect,
    database_url,
    postgres_server,
    redis_server,
)
from tests.service.conftest import (  # noqa: F401 - fixtures shared with the service tests
    QUICK,
    ROOT,
    _importable_tests,
    tabular_dir,
    tabular_zip,
)


def _server(make):
    """Enter a server's context for the session; a server that fails is a test failure."""
    stack = ExitStack()
    try:
        url = stack.enter_context(make())
    except ServerError as e:
        stack.close()
        pytest.fail(str(e), pytrace=False)
    with stack:
        yield url


@pytest.fixture(scope="session")
def pg_admin():
    """The admin URL of the session's PostgreSQL server (configured, or embedded)."""
    yield from _server(postgres_server)


@pytest.fixture(scope="session")
def redis_base():
    """The URL, without a database number, of the session's Redis server."""
    yield from _server(redis_server)


def _pg_admin(admin: str):
    try:
        return admin_connect(admin)
    except ServerError as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture
def pg_url(pg_admin):
    """A fresh, empty PostgreSQL database; its SQLAlchemy URL."""
    name = f"autodl_t_{secrets.token_hex(6)}"
    with _pg_admin(pg_admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield database_url(pg_admin, name)
    with _pg_admin(pg_admin) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url(redis_base):
    """A Redis database number of its own, empty."""
    for _ in range(50):
        n = secrets.randbelow(14) + 2
        client = redis.Redis.from_url(f"{redis_base}/{n}")
        # Claim the number for this test (a key with a lifetime, in case we die).
        if client.set("autodl-test-claim", "1", nx=True, ex=900) and client.dbsize() == 1:
            break
        client.close()
    else:
        pytest.fail("no free Redis database number")
    yield f"{redis_base}/{n}"
    client.flushdb()
    client.close()


@pytest.fixture
def scale_settings(tmp_path, pg_url, redis_url) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        engine=QUICK,
        time_budget=5,
        max_time_budget=60,
        grace_seconds=1,
        job_margin_seconds=30,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        database_url=pg_url,
        broker_url=redis_url,
        heartbeat_seconds=0.5,
        heartbeat_timeout=4,
        jobs_per_day=50,
    )


class WorkerProc:
    """`autodl worker` in its own session and working directory (a separate machine)."""

    def __init__(self, settings: Settings, name: str, cwd: Path, concurrency: int = 1):
        self.name, self.cwd = name, cwd
        cwd.mkdir(parents=True, exist_ok=True)
        env = settings.child_environ()
        env["AUTODL_WORKER_NAME"] = name
        env["PYTHONPATH"] = str(ROOT)
        self.log = cwd / "worker.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autodl", "worker", "--concurrency", str(concurrency)],
            env=env,
            cwd=cwd,
            stdout=open(self.log, "ab"),  # noqa: SIM115 - closed by the OS
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill_machine(self) -> None:
        """SIGKILL the worker and every process under it, as if its machine died."""
        import psutil

        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            procs = []
        for p in procs:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill_machine()

"""Real PostgreSQL and Redis for the scale-out tests (never skipped: CI fails without them).

Each test gets a database of its own (created, then dropped) and a Redis database
number of its own (flushed before and after), so parallel runs do not collide.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis

from autodl.settings import Settings
from tests.service.conftest import (  # noqa: F401 - fixtures shared with the service tests
    QUICK,
    ROOT,
    _importable_tests,
    tabular_dir,
    tabular_zip,
)

PG_ADMIN = os.environ.get("AUTODL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("AUTODL_TEST_REDIS", "redis://127.0.0.1:6379")


def _pg_admin():
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL is not answering at {PG_ADMIN} ({e}); start it (.ci/run does)",
            pytrace=False,
        )


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL database; its SQLAlchemy URL."""
    name = f"autodl_t_{secrets.token_hex(6)}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with _pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url():
    """A Redis database number of its own, empty."""
    try:
        redis.Redis.from_url(REDIS, socket_timeout=5).ping()
    except redis.RedisError as e:
        pytest.fail(
            f"Redis is not answering at {REDIS} ({e}); start it (.ci/run does)", pytrace=False
        )
    for _ in range(50):
        n = secrets.randbelow(14) + 2
        client = redis.Redis.from_url(f"{REDIS}/{n}")
        # Claim the number for this test (a key with a lifetime, in case we die).
        if client.set("autodl-test-claim", "1", nx=True, ex=900) and client.dbsize() == 1:
            break
    else:
        pytest.fail("no free Redis database number")
    yield f"{REDIS}/{n}"
    client.flushdb()


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

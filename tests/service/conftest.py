"""Fixtures for the service: settings on a temporary data dir, apps, users, dataset zips, a live server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from autodl.formats.archive import zip_folder
from autodl.formats.samples import make_tabular
from autodl.service import auth
from autodl.service.app import create_app
from autodl.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
QUICK = "tests.ingestion.engines:quick"


class NullDispatcher:
    """Leaves jobs queued: API tests look at the queue without running anything."""

    def __init__(self):
        self.notified: list[int] = []

    def start(self):
        pass

    def stop(self):
        pass

    def notify(self, job_id):
        self.notified.append(job_id)


@pytest.fixture(autouse=True)
def _importable_tests(monkeypatch):
    # Job processes import test engines as tests.…; they inherit this environment.
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        engine=QUICK,
        time_budget=5,
        max_time_budget=60,
        grace_seconds=1,
        job_margin_seconds=30,
        jobs_per_day=5,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
    )


@pytest.fixture(scope="session")
def tabular_dir(tmp_path_factory) -> Path:
    return make_tabular(tmp_path_factory.mktemp("tab"), n_train=40, n_test=20)


@pytest.fixture(scope="session")
def tabular_zip(tabular_dir, tmp_path_factory) -> Path:
    return zip_folder(tabular_dir, tmp_path_factory.mktemp("zips") / "tinytabular.zip")


@pytest.fixture
def app_client(settings):
    app = create_app(settings, dispatcher=NullDispatcher())
    with TestClient(app) as client:
        yield client


def add_user(
    client_or_app, name: str, *, admin: bool = False, password: str = "password123"
) -> str:
    """Create a user directly in the database; return an API token for them."""
    app = getattr(client_or_app, "app", client_or_app)
    with app.state.service.db.session() as s:
        user = auth.create_user(s, name, password, is_admin=admin)
        _, secret = auth.create_token(s, user, "tests")
    return secret


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def upload(client, token: str, path: Path, **fields):
    with open(path, "rb") as f:
        return client.post(
            "/api/v1/jobs",
            headers=bearer(token),
            files={"file": (path.name, f, "application/zip")},
            data={k: str(v) for k, v in fields.items()},
        )


def wait_for(predicate, timeout: float = 30, interval: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`autodl serve` in a subprocess on a free 127.0.0.1 port."""

    def __init__(self, settings: Settings, log: Path):
        self.settings = replace(settings, port=free_port(), host="127.0.0.1")
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def env(self) -> dict:
        env = self.settings.child_environ()
        env["PYTHONPATH"] = str(ROOT)
        return env

    def cli(
        self, *args, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "autodl", *args],
            input=input,
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=ROOT,
            timeout=timeout,
        )

    def start(self) -> LiveServer:
        out = open(self.log, "ab")  # noqa: SIM115 - the server's log, closed by the OS
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autodl", "serve"],
            env=self.env(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()}")
            try:
                return httpx.get(self.url + "/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30, interval=0.2)
        return self

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@contextmanager
def serving(settings: Settings, tmp_path: Path, **changes) -> Iterator[LiveServer]:
    """A `LiveServer` on ``settings`` with ``changes``, stopped at the end."""
    server = LiveServer(replace(settings, **changes), tmp_path / "server.log").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def live_server(settings, tmp_path):
    with serving(settings, tmp_path) as server:
        yield server


def assert_not_found(client, token: str, job_id: int, routes: list[tuple[str, str]]) -> None:
    """Each (method, url) answers ``token``'s user 404, "No job ``job_id`` among your jobs."."""
    for method, url in routes:
        r = client.request(method, url, headers=bearer(token))
        assert r.status_code == 404, (method, url, r.text)
        assert r.json()["detail"] == f"No job {job_id} among your jobs.", (method, url)


def bad_zip(entries: dict[str, bytes], target: Path, links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, dest in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, dest)
    return target

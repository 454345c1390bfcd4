"""SQLite sessions on a real file: writers take the write lock at BEGIN (IMMEDIATE), readers
read a WAL snapshot (deferred BEGIN) and never wait for a writer, and a read session
refuses to write. Many readers and writers at once: no "database is locked"."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text, update

from autodl.service import jobs as J
from autodl.service.db import Database, ReadOnlyError
from autodl.service.models import Job, User, utcnow
from tests.service.conftest import add_user, bearer


@pytest.fixture
def db(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'autodl.db'}")
    db.upgrade()
    with db.session() as s:
        user = User(name="ann", password_hash="x")
        s.add(user)
        s.flush()
        for k in range(5):
            J.create_job(s, user, name=f"j{k}", time_budget=5, report={"name": "d"}, stored_bytes=0)
    yield db
    db.dispose()


def test_wal_mode_and_read_session_refuses_writes(db):
    with db.read_session() as s:
        assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    with pytest.raises(ReadOnlyError), db.read_session() as s:
        s.get(Job, 1).name = "changed"
        s.flush()
    with pytest.raises(ReadOnlyError), db.read_session() as s:
        s.execute(update(Job).values(name="changed"))
    with pytest.raises(ReadOnlyError), db.read_session() as s:
        s.add(User(name="bob", password_hash="x"))
    with db.read_session() as s:
        assert s.scalar(select(func.count()).where(Job.name == "changed")) == 0
    with db.read_session() as s:
        job = s.get(Job, 1)
    assert job.name == "j0"  # usable after the session ended


def test_a_reader_does_not_wait_for_a_writer_holding_the_lock(db):
    with db.session() as w:
        w.execute(update(Job).where(Job.id == 1).values(name="being written"))
        # The writer holds the write lock (uncommitted); a reader sees the last commit at once.
        t = time.perf_counter()
        with db.read_session() as r:
            assert r.get(Job, 1).name == "j0"
        assert time.perf_counter() - t < 1.0
    with db.read_session() as r:
        assert r.get(Job, 1).name == "being written"


@pytest.mark.slow
def test_readers_and_writers_at_once_never_see_database_is_locked(db, tmp_path):
    # Each thread has a Database (an engine and connection) of its own, as processes do.
    errors: list[BaseException] = []
    reads = [0]
    writes = [0]
    stop = time.monotonic() + 3.0
    url = db.url

    def writer(k: int) -> None:
        mine = Database(url)
        try:
            while time.monotonic() < stop:
                with mine.session() as s:  # read, then write: the pattern that needs IMMEDIATE
                    job = s.get(Job, 1 + k % 5)
                    s.execute(
                        update(Job)
                        .where(Job.id == job.id)
                        .values(heartbeat_at=utcnow(), n_predictions=job.n_predictions + 1)
                    )
                writes[0] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            mine.dispose()

    def reader() -> None:
        mine = Database(url)
        try:
            while time.monotonic() < stop:
                with mine.read_session() as s:
                    s.scalars(select(Job)).all()
                    s.scalar(select(func.count(Job.id)).where(Job.state == "queued"))
                reads[0] += 1
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            mine.dispose()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert reads[0] > 50 and writes[0] > 20, (reads, writes)
    with db.read_session() as s:
        assert s.scalar(select(func.sum(Job.n_predictions))) == writes[0]


def test_get_requests_answer_while_a_writer_holds_the_lock(app_client):
    token = add_user(app_client, "ann")
    r = app_client.get("/api/v1/jobs", headers=bearer(token))  # records the token's use
    assert r.status_code == 200
    db = app_client.app.state.service.db
    with db.session() as w:
        w.execute(update(User).values(jobs_per_day=7))  # the write lock, held
        t = time.perf_counter()
        assert app_client.get("/api/v1/me", headers=bearer(token)).status_code == 200
        assert app_client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200
        assert time.perf_counter() - t < 2.0  # before: waited for the writer (busy timeout)


@pytest.mark.slow
def test_the_page_after_a_write_sees_it_under_load(settings, tmp_path):
    """A route's writes are committed before its response is sent: the GET that a
    redirect leads to (read in a snapshot of its own) finds the new account."""
    import re
    from dataclasses import replace

    import httpx

    from tests.service.conftest import LiveServer

    # Twelve sign-ups from one address: above the default rate limit, which is not tested here.
    live_server = LiveServer(replace(settings, login_attempts=50), tmp_path / "server.log").start()

    failures = []

    def sign_up(i: int) -> None:
        with httpx.Client(base_url=live_server.url, timeout=30) as c:
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/signup").text)
            r = c.post(
                "/signup",
                data={
                    "name": f"user{i}",
                    "password": "password123",
                    "password2": "password123",
                    "csrf_token": csrf.group(1),
                },
            )
            page = c.get("/account")
            if r.status_code != 303 or page.status_code != 200:
                failures.append((i, r.status_code, page.status_code))

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        live_server.stop()
    assert not failures

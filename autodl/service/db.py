"""The database: engine, sessions and schema upgrades (Alembic, run from code).

SQLite is the default; several processes (the server and its job workers) write
to it, so it runs in WAL mode with a busy timeout. Any SQLAlchemy URL works,
PostgreSQL included, through the same models and migrations.

Two kinds of session. `Database.session` is for work that may write: on SQLite its
transaction starts with ``BEGIN IMMEDIATE`` (the write lock, taken at once, so that
two writers queue instead of failing). `Database.read_session` is for work that only
reads (GET requests, pages): a deferred ``BEGIN`` that reads one WAL snapshot and
never takes the write lock, so readers neither wait for writers nor make them wait.
It refuses to write: a flush or an INSERT/UPDATE/DELETE in it raises `ReadOnlyError`
(a stale deferred snapshot cannot be upgraded to a writer without "database is
locked", which is why writes must use `session`). On PostgreSQL both are ordinary
transactions; the read-only guard still applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")
#: Execution option of a read session's connections: a deferred BEGIN on SQLite.
READ_ONLY = "autodl_read_only"


class ReadOnlyError(RuntimeError):
    """A read session was asked to write (a programming error: use `Database.session`)."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()
            # Transactions are begun by us (below), not by the driver.
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn):  # pragma: no cover - trivial
            if conn.get_execution_options().get(READ_ONLY):
                # Readers: a shared snapshot; WAL lets them run beside one writer.
                conn.exec_driver_sql("BEGIN")
                return
            # A deferred transaction that reads and then writes fails at once with
            # "database is locked" when another process wrote in between (the busy
            # timeout cannot help a stale snapshot). Taking the write lock at BEGIN
            # makes concurrent writers wait their turn instead.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _refuse_flush(session, _context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyError("a read-only session cannot write; use Database.session()")


def _refuse_writes(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyError("a read-only session cannot write; use Database.session()")


class Database:
    """One engine and its session factories; ``with db.session() as s:`` commits on success,
    ``with db.read_session() as s:`` only reads (no write lock on SQLite)."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._read_factory = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )
        event.listen(self._read_factory, "before_flush", _refuse_flush)
        event.listen(self._read_factory, "do_orm_execute", _refuse_writes)

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._factory()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A session that only reads: a deferred transaction (SQLite), ended at the block's end.

        Objects read in it stay usable afterwards (detached, not expired).
        """
        s = self._read_factory()
        try:
            yield s
            s.commit()  # nothing to write: ends the snapshot, keeps the objects loaded
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def upgrade(self) -> None:
        upgrade(self.url)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at ``url`` to ``revision`` (creating it when empty)."""
    from alembic import command

    if url.startswith("sqlite"):
        make_engine(url).dispose()  # creates the folder of the file
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()

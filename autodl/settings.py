"""The one typed Settings object. Only this module reads `os.environ` (prefix AUTODL_).

Every setting is documented in the README (a test checks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from autodl.errors import AutoDLError

#: The secret key a fresh install has; refused outside development (see `check_secret`).
DEFAULT_SECRET_KEY = "change-me-development-only"
GIB = 1024**3


@dataclass(frozen=True)
class Settings:
    """Settings read from AUTODL_* environment variables.

    >>> Settings.from_env({}).time_budget
    1200.0
    """

    #: AUTODL_DATA_DIR: where the service keeps uploads, results and its database.
    data_dir: Path = field(default_factory=lambda: Path("autodl-data"))
    #: AUTODL_TIME_BUDGET: default time budget of a run, in seconds.
    time_budget: float = 1200.0
    #: AUTODL_GRACE_SECONDS: how long after the deadline the engine process may live
    #: before it is killed (it gets a SIGTERM at the deadline, SIGKILL after the grace).
    grace_seconds: float = 5.0
    #: AUTODL_SEED: random seed of the engine.
    seed: int = 0
    #: AUTODL_THREADS: CPU threads the engine may use (0 = all cores).
    threads: int = 0
    #: AUTODL_ENV: "development" (the default) or "production"; production refuses the
    #: default secret key and marks cookies Secure (serve it behind HTTPS).
    env: str = "development"
    #: AUTODL_SECRET_KEY: signs session cookies and CSRF tokens.
    secret_key: str = DEFAULT_SECRET_KEY
    #: AUTODL_DATABASE_URL: SQLAlchemy URL; empty = SQLite file in the data directory.
    database_url: str = ""
    #: AUTODL_HOST / AUTODL_PORT: where `autodl serve` listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: AUTODL_WORKERS: jobs the embedded supervisor runs at once.
    workers: int = 1
    #: AUTODL_ENGINE: the engine jobs run, as "module:function" (tests use a cheap one).
    engine: str = "autodl.engine:run"
    #: AUTODL_MAX_TIME_BUDGET: the largest time budget a user may choose, in seconds.
    max_time_budget: float = 3600.0
    #: AUTODL_JOB_MARGIN_SECONDS: time a job may take beyond budget + grace (engine
    #: start-up, scoring, report) before the supervisor kills it.
    job_margin_seconds: float = 300.0
    #: AUTODL_MAX_UPLOAD_BYTES: largest upload accepted (the zip as sent).
    max_upload_bytes: int = 2 * GIB
    #: AUTODL_MAX_EXTRACTED_BYTES: largest dataset once extracted from its zip.
    max_extracted_bytes: int = 8 * GIB
    #: AUTODL_MAX_ARCHIVE_ENTRIES: most files and folders a zip may hold.
    max_archive_entries: int = 200_000
    #: AUTODL_MAX_COMPRESSION_RATIO: largest extracted/compressed size ratio (zip bombs).
    max_compression_ratio: float = 200.0
    #: AUTODL_JOBS_PER_DAY: jobs a user may submit in any 24 hours (admins can change it).
    jobs_per_day: int = 5
    #: AUTODL_STORAGE_QUOTA_BYTES: bytes of datasets and results a user may keep.
    storage_quota_bytes: int = 20 * GIB
    #: AUTODL_ALLOW_SIGNUP: whether anyone may create an account on the sign-up page.
    allow_signup: bool = True
    #: AUTODL_BROKER_URL: a Celery broker (``redis://host:6379/0``); set, jobs go to
    #: `autodl worker` processes instead of the embedded supervisor.
    broker_url: str = ""
    #: AUTODL_HEARTBEAT_SECONDS: how often a running job and a worker record that they live.
    heartbeat_seconds: float = 5.0
    #: AUTODL_HEARTBEAT_TIMEOUT: a job whose heartbeat is older than this many seconds is
    #: taken for lost (its worker died): re-queued once, then failed.
    heartbeat_timeout: float = 60.0
    #: AUTODL_WORKER_NAME: the name `autodl worker` shows on the Workers page (default host-pid).
    worker_name: str = ""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str) -> str:
            return env.get(f"AUTODL_{name}", default)

        return cls(
            data_dir=Path(get("DATA_DIR", "autodl-data")),
            time_budget=float(get("TIME_BUDGET", "1200")),
            grace_seconds=float(get("GRACE_SECONDS", "5")),
            seed=int(get("SEED", "0")),
            threads=int(get("THREADS", "0")),
            env=get("ENV", "development").strip().lower(),
            secret_key=get("SECRET_KEY", DEFAULT_SECRET_KEY),
            database_url=get("DATABASE_URL", ""),
            host=get("HOST", "127.0.0.1"),
            port=int(get("PORT", "8000")),
            workers=int(get("WORKERS", "1")),
            engine=get("ENGINE", "autodl.engine:run"),
            max_time_budget=float(get("MAX_TIME_BUDGET", "3600")),
            job_margin_seconds=float(get("JOB_MARGIN_SECONDS", "300")),
            max_upload_bytes=int(get("MAX_UPLOAD_BYTES", str(2 * GIB))),
            max_extracted_bytes=int(get("MAX_EXTRACTED_BYTES", str(8 * GIB))),
            max_archive_entries=int(get("MAX_ARCHIVE_ENTRIES", "200000")),
            max_compression_ratio=float(get("MAX_COMPRESSION_RATIO", "200")),
            jobs_per_day=int(get("JOBS_PER_DAY", "5")),
            storage_quota_bytes=int(get("STORAGE_QUOTA_BYTES", str(20 * GIB))),
            allow_signup=get("ALLOW_SIGNUP", "1").strip().lower() not in ("0", "false", "no"),
            broker_url=get("BROKER_URL", ""),
            heartbeat_seconds=float(get("HEARTBEAT_SECONDS", "5")),
            heartbeat_timeout=float(get("HEARTBEAT_TIMEOUT", "60")),
            worker_name=get("WORKER_NAME", ""),
        )

    def to_env(self) -> dict[str, str]:
        """Every setting as AUTODL_* strings (`from_env` reads them back unchanged)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                value = "1" if value else "0"
            out[f"AUTODL_{f.name.upper()}"] = str(value)
        return out

    def child_environ(self) -> dict[str, str]:
        """The environment of a child process: ours, with these settings written over it."""
        return {**os.environ, **self.to_env()}

    @property
    def sqlalchemy_url(self) -> str:
        """``database_url``, or a SQLite file in the data directory when it is empty."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'autodl.db').resolve()}"

    @property
    def longest_job_seconds(self) -> float:
        """The most a job may take: the largest budget + grace + margin."""
        return self.max_time_budget + self.grace_seconds + self.job_margin_seconds

    @property
    def development(self) -> bool:
        return self.env == "development"

    def check_secret(self) -> None:
        """Refuse a default or short secret key outside development."""
        if self.development:
            return
        if self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < 32:
            raise AutoDLError(
                f"AUTODL_SECRET_KEY is {'left at its default' if self.secret_key == DEFAULT_SECRET_KEY else 'shorter than 32 characters'} "
                f"while AUTODL_ENV is {self.env!r}: anyone could forge sessions",
                'Set AUTODL_SECRET_KEY to a long random value, e.g. the output of `python -c "import secrets; print(secrets.token_urlsafe(48))"`, '
                "or AUTODL_ENV=development on a machine only you can reach.",
            )

    @classmethod
    def variable_names(cls) -> list[str]:
        """The environment variable of every setting, e.g. ``AUTODL_DATA_DIR``."""
        return [f"AUTODL_{f.name.upper()}" for f in fields(cls)]

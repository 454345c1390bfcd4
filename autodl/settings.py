"""The one typed Settings object. Only this module reads `os.environ` (prefix AUTODL_).

Every setting is documented in docs/settings.md (tests/test_docs.py checks it); what
each accepts is declared once, as data, in `RULES`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from autodl.errors import AutoDLError, SettingError

#: The engine everything runs unless told otherwise, named once: here, with the defaults
#: (this foundation module may not import the engine); `autodl.engine.protocol`, the
#: engine contract, re-exports it for ingestion, the pipeline and the service.
DEFAULT_ENGINE = "autodl.engine:run"

#: The shortest secret key accepted (an explicit AUTODL_SECRET_KEY, in any mode).
MIN_SECRET_KEY = 32
MIB = 1024**2
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
    #: AUTODL_SAVE_MODEL: keep the model of a run's last counted prediction in its
    #: output folder (``model/``, for `autodl predict`); off, runs save none.
    save_model: bool = True
    #: AUTODL_SEED: random seed of the engine.
    seed: int = 0
    #: AUTODL_THREADS: CPU threads the engine may use (0 = all cores, or a job's share,
    #: cores // AUTODL_WORKERS, when several jobs run at once: `pipeline.job_threads`).
    threads: int = 0
    #: AUTODL_ENV: "development" (the default) or "production"; production demands an
    #: explicit AUTODL_SECRET_KEY and marks cookies Secure (serve it behind HTTPS).
    env: str = "development"
    #: AUTODL_SECRET_KEY: signs session cookies and CSRF tokens; at least 32 characters.
    #: Empty (the default, development only): a random key is generated on first start
    #: and kept in ``<data>/secret_key`` (mode 0600).
    secret_key: str = ""
    #: AUTODL_DATABASE_URL: SQLAlchemy URL; empty = SQLite file in the data directory.
    database_url: str = ""
    #: AUTODL_HOST / AUTODL_PORT: where `autodl serve` listens.
    host: str = "127.0.0.1"
    port: int = 8000
    #: AUTODL_WORKERS: jobs the embedded supervisor runs at once.
    workers: int = 1
    #: AUTODL_ENGINE: the engine jobs run, as "module:function" (tests use a cheap one).
    engine: str = DEFAULT_ENGINE
    #: AUTODL_MAX_TIME_BUDGET: the largest time budget a user may choose, in seconds.
    max_time_budget: float = 3600.0
    #: AUTODL_PREDICT_BUDGET: seconds a prediction job (the service's "Predict on new data")
    #: may run; counted against the user's compute time like a run's budget.
    predict_budget: float = 300.0
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

    # ---- limits of the dataset readers, whoever calls them (CLI, jobs, validation)
    #: AUTODL_MAX_CLASSES: most classes (``output_dim``) a dataset may declare.
    max_classes: int = 10_000
    #: AUTODL_MAX_RECORDS: most records one split may hold.
    max_records: int = 10_000_000
    #: AUTODL_MAX_RECORD_BYTES: largest serialized record (TFRecord framing: 2 GiB at most).
    max_record_bytes: int = 256 * MIB
    #: AUTODL_MAX_FRAMES: most frames (time steps) one record may hold.
    max_frames: int = 1_000_000
    #: AUTODL_MAX_FRAME_PIXELS: most pixels of one decoded image frame (read from its
    #: header before decoding).
    max_frame_pixels: int = 25_000_000
    #: AUTODL_MAX_DECODED_BYTES: largest record once decoded (its float32 frames x height x
    #: width x channels), checked from the metadata and image headers before decoding.
    max_decoded_bytes: int = 1 * GIB
    #: AUTODL_MAX_SOLUTION_BYTES: largest ``.solution`` file.
    max_solution_bytes: int = 1 * GIB
    #: AUTODL_MAX_METADATA_BYTES: largest ``metadata.textproto``.
    max_metadata_bytes: int = 64 * MIB
    # ---- confinement of the processes that touch user data
    #: AUTODL_VALIDATE_MEMORY_BYTES: memory (address space) of the process that checks an upload.
    validate_memory_bytes: int = 2 * GIB
    #: AUTODL_VALIDATE_CPU_SECONDS: CPU time that process may use.
    validate_cpu_seconds: float = 300.0
    #: AUTODL_VALIDATE_WALL_SECONDS: wall-clock time that process may take.
    validate_wall_seconds: float = 600.0
    #: AUTODL_JOB_MEMORY_BYTES: memory of one job's engine; 0 = 80 % of the machine's
    #: memory divided by its worker slots (AUTODL_WORKERS, or ``autodl worker --concurrency``).
    job_memory_bytes: int = 0
    #: AUTODL_JOB_FILE_BYTES: largest file a job's engine may write.
    job_file_bytes: int = 16 * GIB
    # ---- fairness and abuse
    #: AUTODL_MAX_RUNNING_PER_USER: jobs of one user that may run at once while others
    #: wait (0 = no limit; users still take turns).
    max_running_per_user: int = 1
    #: AUTODL_COMPUTE_SECONDS_PER_DAY: seconds of time budget a user may use in any 24 hours
    #: (a job reserves its budget; once ended it keeps the time it ran).
    compute_seconds_per_day: float = 4 * 3600.0
    #: AUTODL_LOGIN_ATTEMPTS: failed sign-ins (and sign-ups) allowed per client address and
    #: per account name within AUTODL_LOGIN_WINDOW_SECONDS.
    login_attempts: int = 10
    #: AUTODL_LOGIN_WINDOW_SECONDS: the window of that limit.
    login_window_seconds: float = 300.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Each field from ``AUTODL_<NAME>`` when set, parsed by its type and checked
        against its rule in `RULES`; else its default.

        A value that does not parse or breaks its rule is a `SettingError` naming the
        variable, the value and what is expected:

        >>> Settings.from_env({"AUTODL_WORKERS": "-3"})
        Traceback (most recent call last):
        ...
        autodl.errors.SettingError: AUTODL_WORKERS='-3' is not valid: expected an integer of at least 1
        Hint: Set AUTODL_WORKERS to an integer of at least 1, or unset it to use the default (1).
        """
        env = os.environ if environ is None else environ
        kinds = _kinds()
        values = {}
        for f in fields(cls):
            raw = env.get(f"AUTODL_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _read(f.name, kinds[f.name], raw)
        return cls(**values)

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
        """Refuse a short explicit secret key, and a missing one in production.

        There is no default key: with AUTODL_SECRET_KEY empty in development, the
        service generates one in the data directory (`autodl.service.auth.secret_key`),
        so nobody can sign a cookie with a key published in the code.
        """
        if not self.secret_key:
            if self.development:
                return
            raise AutoDLError(
                f"AUTODL_SECRET_KEY is not set while AUTODL_ENV is {self.env!r}",
                f"Set AUTODL_SECRET_KEY to a random value of {MIN_SECRET_KEY} characters or more, "
                'e.g. the output of `python -c "import secrets; print(secrets.token_urlsafe(48))"` '
                "(the same value on every server of the service).",
            )
        if len(self.secret_key) < MIN_SECRET_KEY:
            raise AutoDLError(
                f"AUTODL_SECRET_KEY is shorter than {MIN_SECRET_KEY} characters: "
                "anyone could guess it and forge sessions",
                'Set it to a long random value, e.g. the output of `python -c "import secrets; '
                'print(secrets.token_urlsafe(48))"`, or unset it in development to have one '
                "generated in the data directory.",
            )

    @classmethod
    def variable_names(cls) -> list[str]:
        """The environment variable of every setting, e.g. ``AUTODL_DATA_DIR``."""
        return [f"AUTODL_{f.name.upper()}" for f in fields(cls)]


class Rule:
    """What one setting accepts: ``ok(value)`` for a parsed value, and the words
    ``expected`` that finish the message "expected <type> <expected>". ``normalize``
    is applied to the raw text before it is parsed."""

    def __init__(
        self,
        expected: str,
        ok: Callable[[Any], bool],
        normalize: Callable[[str], str] | None = None,
    ):
        self.expected = expected
        self.ok = ok
        self.normalize = normalize


def _at_least(low: float) -> Rule:
    return Rule(f"of at least {low:g}", lambda v: v >= low)


def _above(low: float) -> Rule:
    return Rule(f"above {low:g}", lambda v: v > low)


def _between(low: int, high: int) -> Rule:
    return Rule(f"from {low} to {high}", lambda v: low <= v <= high)


def _one_of(*choices: str) -> Rule:
    """One of ``choices``, whatever the case and surrounding spaces."""
    words = " or ".join(repr(c) for c in choices)
    return Rule(words, lambda v: v in choices, normalize=lambda raw: raw.strip().lower())


_POSITIVE = _at_least(1)
#: The rule of every setting that has one, as data: `from_env` checks each value read
#: from the environment against it and reports a broken rule with one message template
#: (`_invalid`). A setting not listed takes any value of its type; every float must
#: also be finite. Settings built in code (tests, benchmarks) are not checked: they
#: are the programmer's, not the user's.
RULES: dict[str, Rule] = {
    "time_budget": _above(0),
    "grace_seconds": _at_least(0),
    "seed": _between(0, 2**32 - 1),  # numpy's RandomState takes no other
    "threads": _at_least(0),
    "env": _one_of("development", "production"),
    "port": _between(0, 65535),
    "workers": _POSITIVE,
    "engine": Rule(
        '"module:function" (or "module", whose function run is used)',
        lambda v: re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", v) is not None,
    ),
    "max_time_budget": _above(0),
    "predict_budget": _above(0),
    "job_margin_seconds": _at_least(0),
    "max_upload_bytes": _POSITIVE,
    "max_extracted_bytes": _POSITIVE,
    "max_archive_entries": _POSITIVE,
    "max_compression_ratio": _at_least(1),
    "jobs_per_day": _at_least(0),
    "storage_quota_bytes": _at_least(0),
    "heartbeat_seconds": _above(0),
    "heartbeat_timeout": _above(0),
    "max_classes": _POSITIVE,
    "max_records": _POSITIVE,
    "max_record_bytes": _POSITIVE,
    "max_frames": _POSITIVE,
    "max_frame_pixels": _POSITIVE,
    "max_decoded_bytes": _POSITIVE,
    "max_solution_bytes": _POSITIVE,
    "max_metadata_bytes": _POSITIVE,
    "validate_memory_bytes": _at_least(0),  # 0: no limit
    "validate_cpu_seconds": _at_least(0),
    "validate_wall_seconds": _above(0),
    "job_memory_bytes": _at_least(0),  # 0: a share of the machine
    "job_file_bytes": _at_least(0),
    "max_running_per_user": _at_least(0),  # 0: no limit
    "compute_seconds_per_day": _at_least(0),
    "login_attempts": _POSITIVE,
    "login_window_seconds": _above(0),
}

#: How each type is named in messages.
_TYPE_WORDS = {
    int: "an integer",
    float: "a finite number",
    bool: "a boolean (1, 0, true, false, yes, no, on or off)",
    Path: "a path",
    str: "a text",
}


def _kinds() -> dict[str, type]:
    """The type of every field, from its annotation (strings under PEP 563)."""
    return get_type_hints(Settings, {"Path": Path})


def _read(name: str, kind: type, raw: str):
    """``raw`` parsed as ``kind`` and checked against the field's rule; SettingError if not."""
    rule = RULES.get(name)
    try:
        value = _parse(kind, rule.normalize(raw) if rule and rule.normalize else raw)
    except ValueError:
        raise _invalid(name, kind, raw, rule) from None
    if (kind is float and not math.isfinite(value)) or (rule is not None and not rule.ok(value)):
        raise _invalid(name, kind, raw, rule)
    return value


def _invalid(name: str, kind: type, raw: str, rule: Rule | None) -> SettingError:
    """The one message of a bad value: the variable, the value and what is expected."""
    var = f"AUTODL_{name.upper()}"
    if rule is None or kind is str:  # a rule of text says it all: "'a' or 'b'"
        expected = rule.expected if rule else _TYPE_WORDS[kind]
    else:
        expected = f"{_TYPE_WORDS[kind]} {rule.expected}"
    default = Settings().to_env()[var] or "empty"
    return SettingError(
        f"{var}={raw!r} is not valid: expected {expected}",
        f"Set {var} to {expected}, or unset it to use the default ({default}).",
        variable=var,
        value=raw,
        expected=expected,
    )


def _parse(kind: type, raw: str):
    if kind is bool:
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(raw)
    if kind is int:
        return int(raw.strip().replace("_", ""))
    if kind is float:
        return float(raw.strip())
    return kind(raw)

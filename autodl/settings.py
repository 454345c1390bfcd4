"""The one typed Settings object. Only this module reads `os.environ` (prefix AUTODL_).

Every setting is documented in the README (a test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"AUTODL_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Settings read from AUTODL_* environment variables.

    >>> Settings.from_env().time_budget
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

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            data_dir=Path(_env("DATA_DIR", "autodl-data")),
            time_budget=float(_env("TIME_BUDGET", "1200")),
            grace_seconds=float(_env("GRACE_SECONDS", "5")),
            seed=int(_env("SEED", "0")),
            threads=int(_env("THREADS", "0")),
        )

    @classmethod
    def variable_names(cls) -> list[str]:
        """The environment variable of every setting, e.g. ``AUTODL_DATA_DIR``."""
        return [f"AUTODL_{f.name.upper()}" for f in fields(cls)]

"""Engines for service tests (imported by the engine child process)."""

from __future__ import annotations

import time

from autodl.engine.loop import Prediction
from tests.ingestion.engines import _prior


def steady(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """A prediction every 0.4 s until the budget runs out: a job that lasts its budget."""
    k = 0
    while budget.remaining() > 0.5:
        t, u = _prior(train, test, unlabelled, noise=0.05, seed=k)
        log(f"steady prediction {k}")
        yield Prediction(t, u, f"steady-{k}", None)
        k += 1
        time.sleep(0.4)

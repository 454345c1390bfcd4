"""Engines with known behaviour, for testing ingestion (imported by the engine child process).

Each follows the engine contract ``run(train, test, unlabelled, budget, *, seed, log)``.
"""

from __future__ import annotations

import time

import numpy as np

from autodl.engine.loop import Prediction


def _prior(train, test, unlabelled, noise=0.0, seed=0):
    """Class frequencies of the training labels for every record (plus optional noise)."""
    y = train.load().labels
    prior = y.mean(axis=0) if len(y) else np.full(train.spec.output_dim, 1.0)
    rng = np.random.default_rng(seed)

    def make(n):
        return np.clip(np.tile(prior, (n, 1)) + noise * rng.random((n, len(prior))), 0, 1)

    return make(len(test)), (make(len(unlabelled)) if unlabelled is not None else None)


def quick(train, test, unlabelled, budget, *, seed=0, log=None):
    """Two predictions right away, then stops."""
    for k in range(2):
        t, u = _prior(train, test, unlabelled, noise=0.1 * (k + 1), seed=k)
        log(f"quick prediction {k}")
        yield Prediction(t, u, f"quick-{k}", 0.1 * k)


def crash_after_one(train, test, unlabelled, budget, *, seed=0, log=None):
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    raise RuntimeError("learner exploded on purpose")


def hang_after_one(train, test, unlabelled, budget, *, seed=0, log=None):
    """Ignores its budget: ingestion must kill it at the deadline."""
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    while True:
        time.sleep(0.05)


def late_prediction(train, test, unlabelled, budget, *, seed=0, log=None):
    """One prediction in time, then one after the deadline (the kill must keep it out)."""
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "in-time", None)
    time.sleep(budget.remaining() + 0.5)
    yield Prediction(t, u, "too-late", None)


def wrong_shape(train, test, unlabelled, budget, *, seed=0, log=None):
    yield Prediction(np.zeros((len(test) + 1, train.spec.output_dim)), None, "bad", None)


def never_predicts(train, test, unlabelled, budget, *, seed=0, log=None):
    return
    yield  # pragma: no cover


def chatty(train, test, unlabelled, budget, *, seed=0, log=None):
    """Prints to standard output from Python and from the C level (as LightGBM does)."""
    import os
    import sys

    print("python chatter")
    sys.stdout.flush()
    os.write(1, b"C-level chatter\n")
    yield from quick(train, test, unlabelled, budget, seed=seed, log=log)

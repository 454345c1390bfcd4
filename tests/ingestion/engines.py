"""Engines with known behaviour, for testing ingestion (imported by the engine child process).

Each follows the engine contract, `autodl.engine.protocol.Engine`:
``run(train, test, unlabelled, budget, *, seed, log, threads)`` (tests/engine/test_protocol.py).
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


def quick(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Two predictions right away, then stops."""
    for k in range(2):
        t, u = _prior(train, test, unlabelled, noise=0.1 * (k + 1), seed=k)
        log(f"quick prediction {k}")
        yield Prediction(t, u, f"quick-{k}", 0.1 * k)


def brief(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """`quick`, ending 0.3 s later: a run long enough for the load meter's CPU figure
    (``/proc/stat`` counts in clock ticks; a run of a few ms may see none pass)."""
    yield from quick(train, test, unlabelled, budget, seed=seed, log=log, threads=threads)
    time.sleep(0.3)


def report_threads(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Logs the ``threads`` argument it got and what sizes its process's native pools."""
    import os

    log(f"THREADS {threads} {os.environ.get('OMP_NUM_THREADS')}")
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)


def crash_after_one(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    raise RuntimeError("learner exploded on purpose")


def hang_after_one(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Ignores its budget: ingestion must kill it at the deadline."""
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    while True:
        time.sleep(0.05)


def late_prediction(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """One prediction in time, then one after the deadline (the kill must keep it out)."""
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "in-time", None)
    time.sleep(budget.remaining() + 0.5)
    yield Prediction(t, u, "too-late", None)


def wrong_shape(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    yield Prediction(np.zeros((len(test) + 1, train.spec.output_dim)), None, "bad", None)


def never_predicts(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    return
    yield  # pragma: no cover


def chatty(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Prints to standard output from Python and from the C level (as LightGBM does)."""
    import os
    import sys

    print("python chatter")
    sys.stdout.flush()
    os.write(1, b"C-level chatter\n")
    yield from quick(train, test, unlabelled, budget, seed=seed, log=log)


def report_confinement(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Logs what its process may do (environment, /proc/self/environ, oom_score_adj,
    rlimits) as one JSON line, then makes one prediction."""
    import json
    import os
    import resource

    with open("/proc/self/environ", "rb") as f:
        raw = [e.split(b"=", 1)[0].decode() for e in f.read().split(b"\0") if e]
    with open("/proc/self/oom_score_adj") as f:
        oom = int(f.read())
    facts = {
        "environ": sorted(os.environ),
        "proc_environ": sorted(raw),
        "oom_score_adj": oom,
        "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        "as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "pid": os.getpid(),
        "parent_oom_score_adj": int(open(f"/proc/{os.getppid()}/oom_score_adj").read()),
    }
    log("CONFINEMENT " + json.dumps(facts))
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)


def predict_then_hog(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """One prediction, then takes memory 64 MB at a time (touching it) until it is refused."""
    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    hoard = []
    while True:
        hoard.append(bytearray(64 * 1024 * 1024))


def hog_before_predicting(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Asks for more memory than any limit before its first prediction."""
    hoard = np.ones((1 << 40) // 8)  # 1 TB: refused at once under RLIMIT_AS
    yield Prediction(hoard[:1], None, "never", None)  # pragma: no cover


def predict_then_write_big_file(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """One prediction, then writes a file past any small RLIMIT_FSIZE."""
    import tempfile

    t, u = _prior(train, test, unlabelled)
    yield Prediction(t, u, "prior", None)
    with tempfile.TemporaryFile() as f:
        for _ in range(64):
            f.write(b"\0" * (1024 * 1024))
    yield Prediction(t, u, "after-write", None)


def crash_at_once(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Fails on the data before any prediction (as an engine that cannot handle it would)."""
    raise ValueError("this data breaks the engine on purpose")
    yield  # pragma: no cover


def hang_without_predicting(train, test, unlabelled, budget, *, seed=0, log=None, threads=None):
    """Never predicts and ignores its budget: stopped at the deadline with nothing."""
    while True:
        time.sleep(0.05)
    yield  # pragma: no cover

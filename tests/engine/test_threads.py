"""Thread counts of the native pools, and the bounded ordered map over the cores."""

from __future__ import annotations

import threading
import time

import numpy as np

from autodl.engine import _threads


def test_inside_the_limits_only_numpys_blas_keeps_several_threads():
    limits = _threads.ThreadLimits(2)
    libs = _threads.controller().lib_controllers
    before = {lib.filepath: lib.num_threads for lib in libs}
    with limits():
        inside = {lib.filepath: lib.num_threads for lib in libs}
    after = {lib.filepath: lib.num_threads for lib in libs}
    assert after == before  # restored
    blas = [lib for lib in libs if lib.user_api == "blas"]
    numpy_blas = [lib for lib in blas if "numpy" in lib.filepath]
    assert numpy_blas, [lib.filepath for lib in blas]
    for lib in blas:
        want = min(2, before[lib.filepath]) if lib in numpy_blas else 1
        assert inside[lib.filepath] <= max(want, 1)
        if lib not in numpy_blas:
            assert inside[lib.filepath] == 1
    assert limits.counts()[numpy_blas[0].filepath] == 2


def test_ordered_map_keeps_the_order_and_bounds_what_is_in_flight():
    running, most, pulled = 0, 0, []
    lock = threading.Lock()

    def work(i):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 * (5 - i % 5))  # later items finish first
        with lock:
            running -= 1
        return i * i

    def items():
        for i in range(12):
            pulled.append(i)
            yield i

    out = []
    for value in _threads.ordered_map(work, items()):
        out.append(value)
        # never more than one item per core pulled ahead of what was handed back
        assert len(pulled) - len(out) <= _threads.cores()
    assert out == [i * i for i in range(12)]
    assert most <= _threads.cores()


def test_ordered_map_gives_the_same_features_as_one_thread():
    from autodl.engine import speech

    rng = np.random.default_rng(0)
    x = [rng.standard_normal((n, 1, 1, 1)).astype(np.float32) for n in (300, 5000, 120_000) * 4]
    many = speech.spectral(x)
    one = np.vstack([speech.spectral([e]) for e in x])
    np.testing.assert_allclose(many, one, rtol=1e-5, atol=1e-5)

"""Thread counts of the native libraries the engine drives (BLAS, OpenMP, torch).

`ThreadLimits(n)` is a reusable context manager: inside it OpenMP (LightGBM,
scikit-learn) and numpy's BLAS use ``n`` threads, and every *other* BLAS library
loaded in the process uses one. Outside it the libraries keep what they had.

Why one thread for the others: pip wheels bundle one OpenBLAS in numpy and another in
scipy. L-BFGS (scikit-learn's logistic regression) alternates numpy matrix products
with scipy's BLAS, and two OpenBLAS pools of busy-waiting threads on the same cores
stall each other. Measured on this project's 2-core machine, logistic regression with
max_iter=100 (both pools at 2 threads -> scipy's at 1, numpy's at 2):
1000x66, 10 classes 0.263 -> 0.048 s; 4000x1280 0.542 -> 0.220 s; 30000x1000
3.46 -> 1.54 s (all BLAS at 1 thread: 0.022, 0.199, 2.10 s). Numpy's own products
keep every thread (a 2000x2000 product: 0.42 s on one thread, 0.22 s on two).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def controller() -> ThreadpoolController:
    """The native thread pools loaded in this process, found once (scanning the loaded
    libraries costs ~25 ms, so the loop finds them at import, before the clock runs)."""
    return ThreadpoolController()


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0))


class ThreadLimits:
    """``with limits:`` runs its body with the thread counts of the module doc."""

    def __init__(self, n: int):
        self.n = max(1, n)
        self._libs = controller().lib_controllers
        blas = [lib for lib in self._libs if lib.user_api == "blas"]
        numpy_dir = os.path.dirname(os.path.dirname(np.__file__))
        own = [lib for lib in blas if lib.filepath.startswith(os.path.join(numpy_dir, "numpy"))]
        self._main = own[0] if own else (blas[0] if blas else None)

    def counts(self) -> dict[str, int]:
        """The count each library gets inside the context, by file path."""
        return {
            lib.filepath: (1 if lib.user_api == "blas" and lib is not self._main else self.n)
            for lib in self._libs
        }

    @contextmanager
    def __call__(self) -> Iterator[None]:
        saved = [(lib, lib.num_threads) for lib in self._libs]
        want = self.counts()
        for lib in self._libs:
            lib.set_num_threads(want[lib.filepath])
        try:
            yield
        finally:
            for lib, k in saved:
                lib.set_num_threads(k)


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=cores(), thread_name_prefix="autodl-features")


def ordered_map(fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
    """``map(fn, items)`` on one thread per core, in order, with at most that many
    items in flight (``items`` may be a generator of large chunks: memory stays bounded).

    For numpy-heavy ``fn`` (FFTs, sorts, large products release the GIL): spectral
    features of spokendigits' 160 clips took 0.08-0.14 s on two threads against
    0.11-0.21 s on one. One core, or one item: plain ``map``."""
    workers = cores()
    if workers == 1:
        yield from map(fn, items)
        return
    pending: deque[Future] = deque()
    # the threads are the parallelism: BLAS inside them on one thread (nested pools
    # oversubscribe; spokendigits' features, BLAS at 2 -> 1: 0.13-0.22 -> 0.10 s)
    with controller().limit(limits=1, user_api="blas"):
        for item in items:
            pending.append(_pool().submit(fn, item))
            if len(pending) >= workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

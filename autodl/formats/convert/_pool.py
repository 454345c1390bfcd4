"""Decode files on every core, in order, with bounded memory; and a progress bar.

`ordered_map` sends chunks of work to a process pool and yields the results
in input order. At most ``window`` chunks are in flight, so a slow writer (or a
huge input) never piles decoded data up in memory. Decoding images, audio and
video is CPU work that holds the GIL in places (Pillow's Python side,
resampling), hence processes, not threads. A fork-based pool is used where it
is safe (no other thread alive that could hold a lock), else a spawn-based one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TextIO, TypeVar

T = TypeVar("T")
R = TypeVar("R")

INLINE_BELOW = 12  # items: fewer than this are decoded here (a pool costs ~50-500 ms to start)


def default_workers() -> int:
    """Every core the process may use (both on a 2-core machine)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _run_chunk(fn: Callable[[Any], Any], chunk: list[Any]) -> list[Any]:
    return [fn(a) for a in chunk]


def _quiet_worker() -> None:
    """Ctrl-C is the parent's to handle (it cleans up and says "interrupted");
    a worker that took it too would print its own traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool(workers: int) -> ProcessPoolExecutor:
    safe_fork = "fork" in mp.get_all_start_methods() and threading.active_count() == 1
    ctx = mp.get_context("fork" if safe_fork else "spawn")
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=_quiet_worker)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    total: int,
    chunk: int = 4,
    window: int = 4,
) -> Iterator[R]:
    """``map(fn, items)`` on ``workers`` processes, results in input order.

    ``fn`` must be a module-level function (it is pickled). ``window`` chunks
    per worker are in flight at most.
    """
    if workers <= 1 or total < INLINE_BELOW:
        for item in items:
            yield fn(item)
        return
    pending: deque[Future] = deque()
    it = iter(items)
    with _pool(workers) as pool:
        try:
            while True:
                while len(pending) < workers * window:
                    batch = [x for _, x in zip(range(chunk), it, strict=False)]
                    if not batch:
                        break
                    pending.append(pool.submit(_run_chunk, fn, batch))
                if not pending:
                    return
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


class ProgressBar:
    """A one-line bar on a terminal (redrawn at most 10 times a second), or a plain
    counter when the total is unknown (``total=None``: a table's first pass). On a
    pipe or file only the closing line, so logs stay readable."""

    def __init__(self, total: int | None, stream: TextIO | None, label: str):
        self.total = total
        self.stream = stream
        self.label = label
        self.done = 0
        self.start = time.monotonic()
        self._drawn = 0.0
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._drawn > 0.1 or self.done == self.total:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.start, 1e-9)
        if self.total is None:
            text = f"\r  {self.label}: {self.done}  {rate:.0f}/s "
        else:
            width = 30
            frac = min(self.done / self.total, 1.0) if self.total else 1.0
            filled = int(width * frac)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            text = (
                f"\r  {self.label} [{'#' * filled}{'.' * (width - filled)}] "
                f"{self.done}/{self.total}  {rate:.0f}/s  {eta:.0f}s left "
            )
        assert self.stream is not None
        self.stream.write(text)
        self.stream.flush()

    def close(self) -> None:
        if self.stream is None:
            return
        secs = time.monotonic() - self.start
        rate = self.done / secs if secs > 0 else 0.0
        end = "\r" + " " * 79 + "\r" if self.tty else ""
        self.stream.write(f"{end}  {self.label}: {self.done} in {secs:.1f} s ({rate:.0f}/s)\n")
        self.stream.flush()

"""Budget: a deadline the engine checks between steps.

A `Budget` is a start time plus a number of seconds on a monotonic clock. The
engine never sleeps on it; it asks `remaining()` before starting a step so that no
single step can take more than what is left.

>>> clock = iter([0.0, 0.0, 4.0]).__next__
>>> b = Budget(10, clock=clock)
>>> b.remaining()
10.0
>>> b.remaining()  # 4 s later
6.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class Budget:
    """``seconds`` from ``start`` (now when None) on ``clock`` (``time.monotonic``)."""

    def __init__(
        self,
        seconds: float,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        seconds = float(seconds)
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"Budget: seconds must be a number >= 0, got {seconds!r}.")
        self.seconds = seconds
        self._clock = clock
        self.start = clock() if start is None else float(start)

    @property
    def deadline(self) -> float:
        """The clock reading at which the budget is spent."""
        return self.start + self.seconds

    def elapsed(self) -> float:
        """Seconds since the start (never negative)."""
        return max(0.0, self._clock() - self.start)

    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        return max(0.0, self.deadline - self._clock())

    def __repr__(self) -> str:
        return f"Budget(seconds={self.seconds:g}, remaining={self.remaining():.3f})"

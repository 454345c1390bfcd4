"""Budget: a deadline the engine checks between steps.

A `Budget` is a start time plus a number of seconds on a monotonic clock. The
engine never sleeps on it; it asks `remaining()` before starting a step and gives
each learner a `slice` so that no single step can take more than what is left.

>>> clock = iter([0.0, 0.0, 4.0, 4.0]).__next__
>>> b = Budget(10, clock=clock)
>>> b.remaining()
10.0
>>> b.slice(30).seconds  # capped by the parent's remaining time (10 - 4)
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

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def fraction_used(self) -> float:
        """Elapsed time as a fraction of the budget, in [0, 1]."""
        if self.seconds == 0 or math.isinf(self.seconds):
            return 1.0 if self.seconds == 0 else 0.0
        return min(1.0, self.elapsed() / self.seconds)

    def slice(self, seconds: float) -> Budget:
        """A child budget of ``seconds`` starting now, capped by this one's remaining time."""
        now = self._clock()
        left = max(0.0, self.deadline - now)
        return Budget(min(max(0.0, float(seconds)), left), start=now, clock=self._clock)

    def __repr__(self) -> str:
        return f"Budget(seconds={self.seconds:g}, remaining={self.remaining():.3f})"

"""Live progress of `autodl run` in a terminal.

On a terminal one status line is redrawn every tick (elapsed, remaining,
predictions, latest score) and each prediction leaves a permanent line; when
the output is a file or a pipe only the permanent lines are written.
"""

from __future__ import annotations

from typing import TextIO

import numpy as np

from autodl.ingestion import Progress


class LiveProgress:
    """A callable for ``pipeline.run(on_progress=...)``."""

    def __init__(self, solution: np.ndarray | None, stream: TextIO):
        self.solution = solution
        self.stream = stream
        self.tty = stream.isatty()
        self.last_score: float | None = None
        self._status_len = 0

    def __call__(self, p: Progress) -> None:
        if p.event == "prediction" and p.last is not None:
            self.last_score = self._score(p.last.path)
            score = (
                f"test NAUC {self.last_score:.4f}"
                if self.last_score is not None
                else "no solution to score"
            )
            valid = (
                f", validation {p.last.valid_score:.4f}" if p.last.valid_score is not None else ""
            )
            self._line(
                f"  prediction {p.last.index} at {p.last.elapsed:7.2f}s  {score}  ({p.last.learner}{valid})"
            )
        elif p.event == "end":
            self._clear()
        if self.tty and p.event != "end":
            self._status(p)

    def _score(self, path) -> float | None:
        if self.solution is None:
            return None
        from autodl.scoring.metrics import nauc, read_array

        try:
            return float(nauc(self.solution, read_array(path)))
        except Exception:  # noqa: BLE001 - a display must never break the run
            return None

    def _status(self, p: Progress) -> None:
        score = f" | latest test NAUC {self.last_score:.4f}" if self.last_score is not None else ""
        text = f"  {p.elapsed:7.1f}s elapsed | {p.remaining:7.1f}s left | {p.n_predictions} prediction(s){score}"
        self.stream.write("\r" + text.ljust(self._status_len))
        self._status_len = len(text)
        self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self._status_len:
            self.stream.write("\r" + " " * self._status_len + "\r")
            self._status_len = 0
            self.stream.flush()

    def _line(self, text: str) -> None:
        self._clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._clear()

"""Reading the splits for the engine: a side cap for images, a memory bound, and the
rest of a large training split read in the background.

- **Side cap.** Image and video frames are read at most `max_side` pixels per side
  (128 on CPU, 224 on CUDA: the largest input any learner takes, the pretrained
  network's), shrunk by area averaging while decoding (`TFRecordSplit.load`), so
  the full-resolution pixels of only one chunk of records are ever held.
- **Memory bound.** The decoded train, test and unlabelled arrays must fit in
  ``memory`` bytes (`memory_budget`: a quarter of the machine's RAM, which leaves
  room for features, networks and copies). `plan_reading` estimates the bytes per
  example from the metadata, or from the first `PROBE_ROWS` records when a size is
  variable; for images it lowers the side (96, 64, 48, 32 px) until everything fits,
  and when even that is too much it reads only the first training rows that fit
  (the test and unlabelled splits are always read whole: they must be predicted).
- **Background.** `Background` reads a split in a thread while the loop trains on a
  prefix (protobuf parsing holds the GIL, but decoding and training mostly do not).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from autodl.formats.images import shrunk_size
from autodl.formats.types import Arrays, DatasetSpec, Split

PROBE_ROWS = 32
SIDES = (224, 160, 128, 96, 64, 48, 32)
MEMORY_SHARE = 0.25
MIN_TRAIN_ROWS = 500  # read at least this many training rows, whatever the bound says


def max_side(spec: DatasetSpec) -> int | None:
    """The side cap for image and video data on this device; None for other domains."""
    if spec.domain not in ("image", "video"):
        return None
    from autodl.engine import pretrained  # lazy: a saved model loads without torch
    from autodl.engine._torch import DEVICE

    sizes = pretrained.CUDA_SIZES if DEVICE.type == "cuda" else pretrained.CPU_SIZES
    return max(sizes)


def memory_budget() -> int:
    """Bytes the decoded splits may take: MEMORY_SHARE of the physical memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume 8 GiB
        total = 8 << 30
    return int(MEMORY_SHARE * total)


@dataclass
class Reading:
    """How to read the training split: ``rows`` (None: all) at ``side`` (None: as
    stored), and a line for the run log when something was given up."""

    rows: int | None
    side: int | None
    note: str | None = None


def _shapes(split: Split, spec: DatasetSpec, side: int | None) -> list[tuple[int, ...]]:
    """(T, H, W, C) of the examples: the metadata's, or those of the first records."""
    if all(d > 0 for d in spec.shape):
        t, h, w, c = spec.shape
        return [(t, *shrunk_size(h, w, side), c)]
    x = split.load(limit=PROBE_ROWS, max_side=side).x
    return [tuple(np.shape(e)) for e in x] or [(1, 1, 1, 1)]


def _row_bytes(shapes: list[tuple[int, ...]], side: int | None) -> float:
    """Mean float32 bytes of an example with its planes shrunk to ``side``."""
    sizes = [t * np.prod(shrunk_size(h, w, side)) * c * 4 for t, h, w, c in shapes]
    return float(np.mean(sizes))


def plan_reading(
    train: Split, n_train: int, n_other: int, spec: DatasetSpec, memory: int
) -> Reading:
    """The rows and side to read ``train`` with, given ``n_other`` test and
    unlabelled examples that are read whole (module doc)."""
    top = max_side(spec)
    shapes = _shapes(train, spec, top)
    sides = [s for s in SIDES if s <= top] if top is not None else [None]
    for side in sides:
        per = _row_bytes(shapes, side)
        if per * (n_train + n_other) <= memory:
            note = None
            if side != sides[0] and any(max(h, w) > side for _, h, w, _ in shapes):
                note = f"memory: images read at {side} px (the splits fit in {_gib(memory)})"
            return Reading(None, side, note)
    side = sides[-1]
    per = _row_bytes(shapes, side)
    rows = int(min(n_train, max(MIN_TRAIN_ROWS, (memory - per * n_other) // per)))
    if rows >= n_train:
        return Reading(None, side)
    where = f" at {side} px" if side is not None else ""
    note = f"memory: reading the first {rows} of {n_train} training rows{where} ({_gib(memory)})"
    return Reading(rows, side, note)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


class Background:
    """``split.load(**kwargs)`` in a daemon thread; `done` says whether it has ended,
    `result` waits for it and returns the `Arrays` (or raises what it raised).

    With ``start=False`` the thread starts at `start` (or at `result`): the loop
    starts it once the first prediction is out, because the reader holds the GIL
    for most of its work and, running beside the first fit, delayed the first
    prediction on 218,904 + 117,872 rows by 1.4 s (issue 14)."""

    def __init__(self, split: Split, *, start: bool = True, **kwargs):
        self._result: Arrays | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(split, kwargs), name="autodl-read", daemon=True
        )
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Start reading (once; later calls do nothing)."""
        if not self._started:
            self._started = True
            self._thread.start()

    def _run(self, split: Split, kwargs: dict) -> None:
        try:
            self._result = split.load(**kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the caller in `result`
            self._error = e

    def done(self) -> bool:
        return self._started and not self._thread.is_alive()

    def result(self) -> Arrays:
        self.start()
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

"""Warm the first steps of a domain's plan before the clock starts.

The first call of a code path pays for lazy imports, numpy and scipy dispatch set-up
and the allocator: on spokendigits the envelope features took 0.088 s on their first
call and 0.020 s on the next ones, so a cold engine spent a third of its time to the
first prediction warming up. As in the official ingestion program, where the
engine's constructor (``Model(metadata)``) sees the dataset's metadata before the
clock starts, ingestion calls `warm_up(spec)` untimed: it runs the plan's first
steps on a few random rows of the dataset's shape, then the timed run starts warm.
No data of the dataset is read; nothing is kept but what the libraries cache.
"""

from __future__ import annotations

import numpy as np

from autodl.engine.budget import Budget
from autodl.formats.types import ArraySplit, DatasetSpec

WARM_BUDGET = 1.5  # seconds at most
WARM_PREDICTIONS = 2  # the first predictions of the plan: what the clock would wait for
WARM_ELEMENTS = 4_000_000  # at most this many floats of random data
_DEFAULT_SIDE = {"time": 4000, "video": 8, "side": 32}


def synthetic(spec: DatasetSpec, n: int, seed: int = 0) -> np.ndarray | list[np.ndarray]:
    """``n`` random examples of ``spec``'s shape (raw AutoDL layout): varying sizes get
    small ones, text gets token ids of its vocabulary, very large shapes are cut."""
    rng = np.random.default_rng(seed)
    t, h, w, c = spec.shape
    if spec.domain == "text":
        vocab = max(2, len(spec.vocabulary or {}))
        return [
            rng.integers(0, vocab, (int(rng.integers(5, 40)), 1, 1, 1)).astype(np.float32)
            for _ in range(n)
        ]
    default_t = _DEFAULT_SIDE["time"] if spec.domain == "speech" else _DEFAULT_SIDE["video"]
    t = t if t > 0 else default_t
    if spec.domain == "video":
        t = min(t, _DEFAULT_SIDE["video"])
    h, w = (s if s > 0 else _DEFAULT_SIDE["side"] for s in (h, w))
    if spec.domain in ("image", "video"):
        h, w = min(h, 2 * _DEFAULT_SIDE["side"]), min(w, 2 * _DEFAULT_SIDE["side"])
    if n * t * h * w * c > WARM_ELEMENTS:  # a long series or clip: fewer time steps
        t = max(1, WARM_ELEMENTS // (n * h * w * c))
    if n * t * h * w * c > WARM_ELEMENTS:  # a very wide table: fewer columns
        w = max(1, WARM_ELEMENTS // (n * t * h * c))
    return rng.random((n, t, h, w, c), dtype=np.float32)


def warm_up(spec: DatasetSpec, seed: int = 0) -> str | None:
    """Run ``spec``'s plan until its first predictions on random data (at most
    ``WARM_BUDGET`` seconds). Returns None, or what went wrong (the run goes on cold)."""
    from autodl.engine.loop import run

    k = spec.output_dim
    n = max(24, 2 * min(k, 50))
    labels = np.eye(k, dtype=np.float32)[np.arange(n) % min(k, 50)]
    train = ArraySplit("train", spec, synthetic(spec, n, seed), labels)
    test = ArraySplit("test", spec, synthetic(spec, 8, seed + 1))
    try:
        for i, _ in enumerate(run(train, test, None, Budget(WARM_BUDGET), seed=seed)):
            if i + 1 >= WARM_PREDICTIONS:
                break
    except Exception as e:  # noqa: BLE001 - a warm-up never stops the run
        return f"warm-up failed ({type(e).__name__}: {e}); the run starts cold"
    return None

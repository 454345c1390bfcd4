"""Warm the first steps of a domain's plan before the clock starts.

The first call of a code path pays for lazy imports and the set-up of numpy, scipy
and scikit-learn. As in the official ingestion program, where the engine's
constructor (``Model(metadata)``) sees the dataset's metadata before the clock
starts, ingestion calls `warm_up(spec)` untimed: it runs the plan's first steps on a
few random rows of the dataset's shape, then the timed run starts warm. No data of
the dataset is read; nothing is kept but what the libraries cache.
`bench/first_prediction.py` (cold against warm, median of 3): the first prediction
came 1.17-1.46x sooner on six of the eight sample datasets (cityweather 0.123 ->
0.091 s) and no sooner on text and handdigits. What stays is mostly the first touch
of fresh memory (the data's own arrays), which random rows cannot warm.

On a GPU the first use of each network costs far more: on an H200 (handdigits, 60 s)
the pretrained features' first turn took 10.2 s against 1.7 s on 2 CPU cores, the
CNN's 6.95 s against 0.31 s (the CUDA context, cuDNN and cuBLAS handles, the kernels
of each layer loaded at first call), and both came before the linear models' second
turns, so predictions 1 and 2 waited until 24 s. `warm_networks` therefore also gives
each network of the plan one short fit and predict on the random rows, on the GPU,
before the clock (at most ``WARM_GPU_BUDGET`` seconds in all); on a CPU it does
nothing. Measured on the H200 (handdigits, 60 s): the CNN's first turn 6.95 -> 0.18 s,
the pretrained features' 10.2 -> 7.4 s, prediction 1 at 23.8 -> 14.2 s, ALC 0.9950 ->
0.9965 (an ensemble with the CNN now emitted at 51 s: final NAUC 0.9996 -> 1.0000), for
about 25 s more before the clock.
"""

from __future__ import annotations

import numpy as np

from autodl.engine.budget import Budget
from autodl.formats.types import ArraySplit, DatasetSpec

WARM_BUDGET = 1.5  # seconds at most
WARM_PREDICTIONS = 2  # the first predictions of the plan: what the clock would wait for
WARM_ELEMENTS = 4_000_000  # at most this many floats of random data
SERIES_LENGTH = 4000  # samples of a series whose length varies
FRAMES = 8  # frames of a clip, at most
SIDE = 32  # pixels of an image side that varies; at most twice that
WARM_GPU_BUDGET = 30.0  # seconds at most for the networks' first fits on a GPU


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
    if spec.domain == "video":
        t = min(t, FRAMES) if t > 0 else FRAMES
    elif t <= 0:  # a series (or anything else) of varying length
        t = SERIES_LENGTH
    h, w = (s if s > 0 else SIDE for s in (h, w))
    if spec.domain in ("image", "video"):
        h, w = min(h, 2 * SIDE), min(w, 2 * SIDE)
    if n * t * h * w * c > WARM_ELEMENTS:  # a long series or clip: fewer time steps
        t = max(1, WARM_ELEMENTS // (n * h * w * c))
    if n * t * h * w * c > WARM_ELEMENTS:  # a very wide table: fewer columns
        w = max(1, WARM_ELEMENTS // (n * t * h * c))
    return rng.random((n, t, h, w, c), dtype=np.float32)


def warm_up(spec: DatasetSpec, seed: int = 0, *, threads: int | None = None) -> str | None:
    """Run ``spec``'s plan until its first predictions on random data (at most
    ``WARM_BUDGET`` seconds) on ``threads`` threads (None: every core), as the timed
    run will. Returns None, or what went wrong (the run goes on cold)."""
    from autodl.engine.loop import run

    k = spec.output_dim
    n = max(24, 2 * min(k, 50))
    labels = np.eye(k, dtype=np.float32)[np.arange(n) % min(k, 50)]
    train = ArraySplit("train", spec, synthetic(spec, n, seed), labels)
    test = ArraySplit("test", spec, synthetic(spec, 8, seed + 1))
    try:
        for i, _ in enumerate(
            run(train, test, None, Budget(WARM_BUDGET), seed=seed, threads=threads)
        ):
            if i + 1 >= WARM_PREDICTIONS:
                break
        warm_networks(spec, train, test, seed)
    except Exception as e:  # noqa: BLE001 - a warm-up never stops the run
        return f"warm-up failed ({type(e).__name__}: {e}); the run starts cold"
    return None


def warm_networks(
    spec: DatasetSpec,
    train: ArraySplit,
    test: ArraySplit,
    seed: int = 0,
    *,
    gpu: bool | None = None,
) -> int:
    """On a GPU, one short fit and predict of each network in ``spec``'s plan on the
    random rows (module doc); returns how many ran. Nothing on a machine without CUDA
    (torch is not even imported when it is not loaded already). ``gpu``: whether to
    warm (None: when CUDA is available; True runs the networks on this machine's device,
    as tests do on a CPU)."""
    import sys

    if "torch" not in sys.modules:  # the plan of a domain with networks imports it
        return 0
    import torch

    if not (torch.cuda.is_available() if gpu is None else gpu):
        return 0
    from autodl.engine.loop import PLANS

    budget = Budget(WARM_GPU_BUDGET)
    data, x = train.load(), test.load().x
    done = 0
    for learner in PLANS[spec.domain](spec, seed):
        if not learner.network:
            continue  # no network: the CPU warm-up above covered it
        if budget.remaining() < 1.0:
            break
        learner.fit(data, min(2.0, budget.remaining() / 2))
        learner.predict_proba(x)
        done += 1
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return done

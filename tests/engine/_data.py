"""Tiny generated datasets with learnable signal, one per domain variant.

``make(case, n)`` returns (spec, x, labels): x in the raw AutoDL layout (an array
(N, T, H, W, C) or a list of (T, H, W, C)), labels float32 (N, output_dim). Each row's
active classes leave a trace in x: a shifted mean (tabular), a bright block (image,
video), class words (text), a class frequency (speech).
"""

from __future__ import annotations

import numpy as np

from autodl.formats.types import ArraySplit, DatasetSpec

CASES = ["tabular", "image", "image-variable", "text", "speech", "video"]
VOCAB = 40


def _labels(rng, n, k, multilabel, absent):
    learnable = k - 1 if absent else k  # the last class never appears when `absent`
    if multilabel:
        y = rng.random((n, learnable)) < 0.4
        y[:3] = False  # some rows with no positive, some with several
        y[3:6] = True
    else:
        y = np.eye(learnable, dtype=bool)[np.arange(n) % learnable]
        y = y[rng.permutation(n)]
    if absent:
        y = np.hstack([y, np.zeros((n, 1), bool)])
    return y


def _block(k_index: int, h: int, w: int) -> tuple[slice, slice]:
    r, c = divmod(k_index % 4, 2)
    return slice(r * h // 2, (r + 1) * h // 2), slice(c * w // 2, (c + 1) * w // 2)


def make(
    case: str,
    n: int,
    *,
    output_dim: int = 4,
    multilabel: bool = False,
    absent: bool = False,
    seed: int = 0,
):
    rng = np.random.default_rng(seed)
    y = _labels(rng, n, output_dim, multilabel, absent)
    active = [np.flatnonzero(row) for row in y]
    if case == "tabular":
        centres = np.random.default_rng(99).normal(0, 1.5, (output_dim, 8))
        x = (y @ centres + rng.normal(0, 1, (n, 8))).astype(np.float32)
        x[rng.random(x.shape) < 0.05] = np.nan
        x = x.reshape(n, 1, 1, 8, 1)
        spec = DatasetSpec("toy-tabular", (1, 1, 8, 1), output_dim, domain="tabular")
    elif case in ("image", "image-variable"):
        x = []
        for a in active:
            h, w = (8, 8) if case == "image" else rng.integers(6, 13, 2)
            img = rng.random((1, h, w, 3)).astype(np.float32) * 0.5
            for c in a:
                img[0][_block(c, h, w)] += 0.5
            x.append(img)
        x = np.stack(x) if case == "image" else x
        shape = (1, 8, 8, 3) if case == "image" else (1, -1, -1, 3)
        spec = DatasetSpec(f"toy-{case}", shape, output_dim, domain="image")
    elif case == "text":
        x = []
        for a in active:
            length = rng.integers(5, 21)
            words = rng.integers(0, VOCAB, length)
            if len(a):
                own = rng.random(length) < 0.5
                words[own] = 5 * rng.choice(a, own.sum()) + rng.integers(0, 5, own.sum())
            x.append(words.astype(np.float32).reshape(-1, 1, 1, 1))
        vocab = {f"w{i}": i for i in range(VOCAB)}
        spec = DatasetSpec("toy-text", (-1, 1, 1, 1), output_dim, vocabulary=vocab, domain="text")
    elif case == "speech":
        x = []
        for a in active:
            t = np.arange(rng.integers(200, 601))
            s = rng.normal(0, 0.5, len(t))
            for c in a:
                s += np.sin(2 * np.pi * (0.03 + 0.06 * c) * t + rng.random() * 6)
            x.append(s.astype(np.float32).reshape(-1, 1, 1, 1))
        spec = DatasetSpec("toy-speech", (-1, 1, 1, 1), output_dim, domain="speech")
    elif case == "video":
        x = rng.random((n, 4, 8, 8, 1)).astype(np.float32) * 0.5
        for i, a in enumerate(active):
            for c in a:
                rows, cols = _block(c, 8, 8)
                x[i, :, rows, cols] += 0.5
        spec = DatasetSpec("toy-video", (4, 8, 8, 1), output_dim, domain="video")
    else:
        raise ValueError(case)
    return spec, x, y.astype(np.float32)


def splits(case: str, n_train: int = 120, n_test: int = 80, **kw):
    """(train, test) ArraySplits; test keeps its labels so tests can score."""
    spec, x, y = make(case, n_train + n_test, **kw)
    return (
        ArraySplit("train", spec, x[:n_train], y[:n_train]),
        ArraySplit("test", spec, x[n_train:], y[n_train:]),
    )

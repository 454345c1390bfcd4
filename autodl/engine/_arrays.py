"""Array helpers shared by the domain modules: area resizing, series, segment means.

Everything works on raw AutoDL examples, float32 (T, H, W, C), batched as one
array (N, T, H, W, C) or a list of arrays when shapes vary.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

CHUNK = 256  # examples per block: bounds the temporary copies of large inputs


@lru_cache(maxsize=64)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of area-average resampling (rows sum to 1).

    Output cell i covers input positions [i, i + 1) * n_in / n_out; each input pixel
    weighs by its overlap. Works for up- and down-sampling.
    """
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    return (overlap / (hi - lo)).astype(np.float32)


def resize(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area-resize the (H, W) axes of x (..., H, W, C) to (h, w)."""
    big_h, big_w = x.shape[-3], x.shape[-2]
    if (big_h, big_w) == (h, w):
        return np.asarray(x, np.float32)
    xt = np.moveaxis(np.asarray(x, np.float32), -1, -3)  # (..., C, H, W)
    out = area_matrix(big_h, h) @ xt @ area_matrix(big_w, w).T
    return np.moveaxis(out, -3, -1)


def resized(x: np.ndarray | list[np.ndarray], size: int) -> np.ndarray:
    """Examples with (H, W) brought to at most ``size`` (an array (N, T, h, w, C)).

    A fixed-shape batch keeps sizes up to ``size`` and shrinks larger ones; a list of
    varying shapes is resized to (size, size) each, and T is taken as the common
    minimum, so the result is always one array.
    """
    if isinstance(x, np.ndarray):
        h, w = min(x.shape[2], size), min(x.shape[3], size)
        blocks = [resize(x[i : i + CHUNK], h, w) for i in range(0, len(x), CHUNK)]
        return np.concatenate(blocks) if blocks else np.zeros((0, *x.shape[1:2], h, w, x.shape[4]))
    t = min(e.shape[0] for e in x)
    c = max(e.shape[3] for e in x)
    out = np.zeros((len(x), t, size, size, c), np.float32)
    for i, e in enumerate(x):
        out[i] = resize(e[:t], size, size)  # broadcasts one channel over c
    return out


def series(x: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    """One float64 1-D series per example (channels averaged; empty becomes [0])."""
    out = []
    for e in x:
        s = np.asarray(e, np.float64).reshape(len(e), -1).mean(axis=1)
        out.append(s if len(s) else np.zeros(1))
    return out


def segment_means(s: np.ndarray, k: int) -> np.ndarray:
    """Means of ``s`` (1-D) over ``k`` equal segments (fractional edges; any length >= 1).

    Uses the cumulative integral of the piecewise-constant series, so it costs
    O(len(s)) whatever k is, and upsamples a series shorter than k.
    """
    n = len(s)
    cum = np.concatenate([[0.0], np.cumsum(s, dtype=np.float64)])
    edges = np.linspace(0.0, n, k + 1)
    at = np.interp(edges, np.arange(n + 1), cum)
    return np.diff(at) / np.diff(edges)


def finite(x: np.ndarray) -> np.ndarray:
    """float32 with NaN/inf replaced by 0 (features computed from bad samples)."""
    return np.nan_to_num(np.asarray(x, np.float32), nan=0.0, posinf=0.0, neginf=0.0)

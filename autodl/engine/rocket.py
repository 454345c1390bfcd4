"""Series features computed with torch: ROCKET random kernels.

`rocket`: the ROCKET transform (Dempster et al., 2020). Each series is brought to
``length`` samples (segment means, so any length works), standardised, and convolved
with ``n_kernels`` random kernels (length 7, 9 or 11, zero-mean normal weights,
uniform bias, dilation 2**floor(U(0, log2((length - 1) / (size - 1)))) as in MiniRocket's
quantised dilations, random zero padding); each kernel gives the
proportion of positive values (PPV) and the maximum. Kernels with the same length,
dilation and padding run as one grouped ``conv1d``, so the transform is a few dozen
torch calls. A linear model on these features is a strong, cheap series classifier.
The log-mel spectrograms of the speech CNN are in `mel`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from autodl.engine._arrays import finite, segment_means, series


@lru_cache(maxsize=4)
def _kernels(n_kernels: int, length: int, seed: int) -> list[tuple]:
    """Groups (size, dilation, padding, weights (k, 1, size), bias (k,)) of random kernels."""
    rng = np.random.default_rng(seed)
    sizes = rng.choice([7, 9, 11], n_kernels)
    groups: dict[tuple[int, int, int], list[tuple[np.ndarray, float]]] = {}
    for size in sizes:
        w = rng.normal(0, 1, size)
        bias = rng.uniform(-1, 1)
        top = np.log2(max(1.0, (length - 1) / (size - 1)))
        dilation = 2 ** int(rng.uniform(0, top))  # powers of two: few distinct convolutions
        padding = (size - 1) * dilation // 2 if rng.random() < 0.5 else 0
        groups.setdefault((int(size), dilation, padding), []).append((w - w.mean(), bias))
    out = []
    for (size, dilation, padding), ks in sorted(groups.items()):
        w = torch.tensor(np.array([k[0] for k in ks]), dtype=torch.float32).unsqueeze(1)
        b = torch.tensor([k[1] for k in ks], dtype=torch.float32)
        out.append((size, dilation, padding, w, b))
    return out


@torch.no_grad()
def rocket(
    x: np.ndarray | list[np.ndarray], n_kernels: int = 1000, length: int = 512, seed: int = 0
) -> np.ndarray:
    """(N, 2 * n_kernels) PPV and max of random convolution kernels."""
    s = np.array([segment_means(e, length) for e in series(x)], np.float32).reshape(-1, length)
    s = (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-8)
    z = torch.from_numpy(s).unsqueeze(1)
    ppv, mx = [], []
    for i in range(0, len(z), 256):
        zb = z[i : i + 256]
        p, m = [], []
        for _size, dilation, padding, w, b in _kernels(n_kernels, length, seed):
            h = torch.nn.functional.conv1d(zb, w, b, padding=padding, dilation=dilation)
            p.append((h > 0).float().mean(2))
            m.append(h.amax(2))
        ppv.append(torch.cat(p, 1))
        mx.append(torch.cat(m, 1))
    if not ppv:
        return np.zeros((0, 2 * n_kernels), np.float32)
    return finite(torch.cat([torch.cat(ppv), torch.cat(mx)], 1).numpy())

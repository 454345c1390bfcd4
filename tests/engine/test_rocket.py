"""ROCKET features (`autodl.engine.rocket`): the convolutions they stand for, whatever the
batch, and without torch (a saved model that uses them loads without it)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from autodl.engine import rocket as rk


def _reference(s: np.ndarray, n_kernels: int, length: int) -> np.ndarray:
    """PPV and max of each kernel by a plain loop over positions (float64)."""
    ppv, mx = [], []
    for size, dilation, padding, w, b in rk._kernels(n_kernels, length, 0):
        z = np.pad(s.astype(np.float64), ((0, 0), (padding, padding)))
        n_out = z.shape[1] - (size - 1) * dilation
        for j in range(w.shape[1]):
            h = np.full((len(s), n_out), float(b[j]))
            for t in range(size):
                h += float(w[t, j]) * z[:, t * dilation : t * dilation + n_out]
            ppv.append((h > 0).mean(1))
            mx.append(h.max(1))
    return np.concatenate([np.stack(ppv, 1), np.stack(mx, 1)], 1)


def test_features_are_the_kernels_ppv_and_max():
    rng = np.random.default_rng(3)
    x = [rng.normal(size=(n, 1, 1, 1)).cumsum(0) for n in (64, 100, 64, 7)]
    got = rk.rocket(x, n_kernels=40, length=64)
    assert got.shape == (4, 80) and got.dtype == np.float32
    s = np.array([rk.segment_means(e, 64) for e in rk.series(x)])
    s = (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-8)
    want = _reference(s.astype(np.float32), 40, 64)
    assert np.abs(got[:, 40:] - want[:, 40:]).max() < 1e-4  # the maxima
    # a PPV differs only where a value sits within rounding of zero: one position at most
    assert np.abs(got[:, :40] - want[:, :40]).max() <= 1 / 64 + 1e-6
    assert np.mean(got[:, :40] == want[:, :40].astype(np.float32)) > 0.95


def test_an_example_gets_the_same_features_in_any_batch():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(rk.BATCH + 9, 300, 1, 1, 1)).cumsum(1)
    whole = rk.rocket(x, n_kernels=100)
    assert np.array_equal(rk.rocket(x[rk.BATCH + 2 : rk.BATCH + 5], n_kernels=100), whole[-7:-4])
    assert rk.rocket(x[:0], n_kernels=100).shape == (0, 200)


def test_rocket_does_not_import_torch():
    code = "import sys, autodl.engine.rocket; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

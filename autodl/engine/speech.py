"""Speech / time-series plan: spectral statistics computed in numpy.

Each example (T, 1, 1, C) is one series (channels averaged), of any length. Features
(`spectral`, fixed size whatever the length):

- log length, zero-crossing rate and summary statistics of the raw series;
- framed FFT power (Hann window, ``frame`` samples, half overlap) pooled into
  ``bands`` triangular mel-like bands (mel scale over a nominal 16 kHz, as the
  sample rate is not in the data), log energy: mean and std over time;
- the series resampled to 64 segment means (the shape of a short series such as an
  outline or a sensor trace) and to 32 segment means of its absolute value (the
  loudness envelope of a long one).

Logistic regression on these first; then logistic regression on ROCKET random-kernel
features (`rocket.rocket`, strong on short series such as outlines and sensor traces),
LightGBM on the spectral features, and a CNN on log-mel spectrograms (`rocket.logmel`,
for audio). The loop shares the time among them and keeps what the hold-out prefers.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autodl.engine._arrays import finite, segment_means
from autodl.engine.boost import LightGBM
from autodl.engine.learner import Features, Learner
from autodl.engine.models import Linear
from autodl.engine.nets import CNN
from autodl.engine.rocket import logmel, rocket
from autodl.formats.types import DatasetSpec

MAX_FRAMES = 1000  # frames per example, evenly spread: bounds the cost of very long series


@lru_cache(maxsize=8)
def mel_bank(frame: int, bands: int, rate: float = 16000.0) -> np.ndarray:
    """(bands, frame // 2 + 1) triangular filters evenly spaced on the mel scale."""
    n_bins = frame // 2 + 1
    mel = np.linspace(0.0, 2595 * np.log10(1 + rate / 2 / 700), bands + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    centre = hz / (rate / 2) * (n_bins - 1)
    b = np.arange(n_bins)[None, :]
    lo, mid, hi = centre[:-2, None], centre[1:-1, None], centre[2:, None]
    up = (b - lo) / np.maximum(mid - lo, 1e-9)
    down = (hi - b) / np.maximum(hi - mid, 1e-9)
    bank = np.clip(np.minimum(up, down), 0.0, None)
    # a band narrower than one bin takes its nearest bin, so no band is empty
    empty = bank.sum(axis=1) == 0
    bank[empty, np.clip(np.rint(centre[1:-1][empty]).astype(int), 0, n_bins - 1)] = 1.0
    return bank


def _one(s: np.ndarray, frame: int, bands: int) -> np.ndarray:
    n = len(s)
    centred = s - s.mean()
    sd = s.std()
    stats = [
        np.log1p(n),
        np.mean(np.signbit(centred[1:]) != np.signbit(centred[:-1])) if n > 1 else 0.0,
        s.mean(),
        sd,
        *np.percentile(s, [0, 5, 25, 50, 75, 95, 100]),
        np.abs(s).mean(),
        np.mean(centred**3) / (sd**3 + 1e-12),
        np.mean(centred**4) / (sd**4 + 1e-12),
    ]
    padded = np.pad(s, (0, max(0, frame - n)))
    frames = sliding_window_view(padded, frame)[:: frame // 2]
    if len(frames) > MAX_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, MAX_FRAMES).astype(int)]
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    logmel = np.log(power @ mel_bank(frame, bands).T + 1e-10)
    return np.concatenate(
        [stats, logmel.mean(0), logmel.std(0), segment_means(s, 64), segment_means(np.abs(s), 32)]
    )


def spectral(x: np.ndarray | list[np.ndarray], frame: int = 256, bands: int = 40) -> np.ndarray:
    """(N, 14 + 2 * bands + 96) features of series of any length."""
    rows = []
    for e in x:
        s = np.asarray(e, np.float64).reshape(len(e), -1).mean(axis=1)
        rows.append(_one(s if len(s) else np.zeros(1), frame, bands))
    return finite(np.array(rows)) if rows else np.zeros((0, 14 + 2 * bands + 96), np.float32)


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The speech / series learners, cheapest first."""
    f = Features("spectral", spectral)
    return [
        Linear(features=f, seed=seed),
        Linear(features=Features("rocket", rocket, seed=seed), C=0.1, seed=seed),
        LightGBM(features=f, seed=seed),
        CNN(features=Features("log-mel", logmel), epochs=40, seed=seed),
    ]

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

A first logistic regression on a cheap `envelope` of each series (an early first
prediction), then logistic regression on the spectral features; then on ROCKET
random-kernel features (`rocket.rocket`, strong on short series such as outlines and
sensor traces), LightGBM on the spectral features, and a CNN on log-mel spectrograms
(`mel.logmel`, for audio). The loop shares the time among them and keeps what the hold-out prefers.
With time left once they have converged (`later`): extremely randomised trees on the
spectral features (300 trees; spokendigits at 60 s: final top-1 0.963 -> 1.000, NAUC
0.9993 -> 1.0000; osuleaf unchanged, the trees scoring below ROCKET there).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from autodl.engine._arrays import finite
from autodl.engine._threads import ordered_map
from autodl.engine.learner import Features, Learner
from autodl.engine.mel import mel_bank
from autodl.formats.types import DatasetSpec

MAX_FRAMES = 1000  # frames per example, evenly spread: bounds the cost of very long series


SAMPLES_PER_CHUNK = 2_500_000  # series processed together (bounds the memory of long audio)
MIN_SPLIT = 200_000  # samples from which the work is split over the cores
PERCENTILES = np.array([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])


@lru_cache(maxsize=8)
def _window(frame: int) -> np.ndarray:
    return np.hanning(frame).astype(np.float32)


def _per_series(v: np.ndarray, first: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sums of ``v`` (the series laid end to end) over each series."""
    return np.add.reduceat(v, first, axis=0)


def _stats(v: np.ndarray, first: np.ndarray, n: np.ndarray, series: list) -> np.ndarray:
    """(N, 14): log length, zero-crossing rate, mean, std, 7 percentiles, mean
    absolute value, skewness and kurtosis, for all the series at once."""
    k = n.astype(np.float64)
    mean = _per_series(v, first, n) / k
    c = v - np.repeat(mean, n)
    c2 = c * c
    var = _per_series(c2, first, n) / k
    sd = np.sqrt(var)
    skew = _per_series(c2 * c, first, n) / k / (sd**3 + 1e-12)
    kurt = _per_series(c2 * c2, first, n) / k / (var * var + 1e-12)
    # zero crossings of the centred series, pairs within one series only
    flips = np.concatenate([[0], np.cumsum(np.signbit(c[1:]) != np.signbit(c[:-1]))])
    last = first + n - 1
    crossings = np.where(n > 1, (flips[last] - flips[first]) / np.maximum(k - 1, 1), 0.0)
    # percentiles with linear interpolation, as np.percentile
    pos = PERCENTILES[None, :] * (k[:, None] - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n[:, None] - 1)
    pct = np.empty_like(pos)
    for i, s in enumerate(series):
        q = np.sort(s)
        pct[i] = q[lo[i]] + (pos[i] - lo[i]) * (q[hi[i]] - q[lo[i]])
    absmean = _per_series(np.abs(v), first, n) / k
    return np.column_stack([np.log1p(k), crossings, mean, sd, pct, absmean, skew, kurt])


def _segment_means(v: np.ndarray, first: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """(N, k): each series' means over ``k`` equal segments (fractional edges), from the
    cumulative integral of the piecewise-constant series (as `_arrays.segment_means`)."""
    cum = np.concatenate([[0.0], np.cumsum(v)])
    edges = np.linspace(0.0, 1.0, k + 1)[None, :] * n[:, None]  # (N, k + 1)
    m = np.minimum(np.floor(edges).astype(np.int64), n[:, None] - 1)
    at = first[:, None] + m
    integral = cum[at] + (edges - m) * v[at] - cum[first][:, None]
    return np.diff(integral, axis=1) / np.diff(edges, axis=1)


def _frame_starts(n: int, frame: int) -> np.ndarray:
    """Start of each half-overlapping frame of a series of ``n`` samples (zero padded
    to one frame), at most MAX_FRAMES of them, evenly spread."""
    count = (max(n, frame) - frame) // (frame // 2) + 1
    starts = np.arange(count) * (frame // 2)
    if count > MAX_FRAMES:
        starts = starts[np.linspace(0, count - 1, MAX_FRAMES).astype(int)]
    return starts


def _logmel_moments(series: list[np.ndarray], frame: int, bands: int) -> np.ndarray:
    """(N, 2 * bands): mean and std over frames of each series' log mel energies; the
    frames of all the series go through one FFT and one product with the mel bank."""
    starts, counts, offset = [], [], 0
    padded = [np.pad(s, (0, frame - len(s))) if len(s) < frame else s for s in series]
    for s in padded:
        st = _frame_starts(len(s), frame)
        starts.append(st + offset)
        counts.append(len(st))
        offset += len(s)
    # float32 from here: half the memory traffic of the FFT, ample for log energies
    buf = np.concatenate(padded).astype(np.float32)
    idx = np.concatenate(starts)[:, None] + np.arange(frame)[None, :]
    spectrum = np.fft.rfft(buf[idx] * _window(frame), axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    logmel = np.log(power @ mel_bank(frame, bands).T.astype(np.float32) + 1e-10).astype(np.float64)
    counts = np.asarray(counts)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    k = counts.astype(np.float64)[:, None]
    mean = np.add.reduceat(logmel, first, axis=0) / k
    sq = np.add.reduceat(logmel * logmel, first, axis=0) / k
    return np.hstack([mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))])


def _chunk(series: list[np.ndarray], frame: int, bands: int) -> np.ndarray:
    n = np.array([len(s) for s in series])
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    v = np.concatenate(series)
    return np.hstack(
        [
            _stats(v, first, n, series),
            _logmel_moments(series, frame, bands),
            _segment_means(v, first, n, 64),
            _segment_means(np.abs(v), first, n, 32),
        ]
    )


def _series(x: np.ndarray | list[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    """The examples as 1-D float64 series (channels averaged), in lists of about
    ``size`` samples."""
    chunk, samples = [], 0
    for e in x:
        e = np.asarray(e)
        s = e.reshape(len(e), -1)
        s = s[:, 0].astype(np.float64) if s.shape[1] == 1 else s.mean(axis=1, dtype=np.float64)
        chunk.append(s if len(s) else np.zeros(1))
        samples += len(chunk[-1])
        if samples >= size:
            yield chunk
            chunk, samples = [], 0
    if chunk:
        yield chunk


def spectral(x: np.ndarray | list[np.ndarray], frame: int = 256, bands: int = 40) -> np.ndarray:
    """(N, 14 + 2 * bands + 96) features of series of any length, computed for many
    series at once (laid end to end, in chunks of at most SAMPLES_PER_CHUNK samples,
    at least two when there are MIN_SPLIT samples, one thread per core)."""
    return _over_cores(lambda c: _chunk(c, frame, bands), x, 14 + 2 * bands + 96)


def _over_cores(fn, x: np.ndarray | list[np.ndarray], width: int) -> np.ndarray:
    """``fn`` of chunks of the series (at most SAMPLES_PER_CHUNK samples, at least two
    chunks from MIN_SPLIT samples on), one thread per core, stacked in order."""
    total = sum(len(e) for e in x)
    size = min(SAMPLES_PER_CHUNK, total // 2) if total >= MIN_SPLIT else SAMPLES_PER_CHUNK
    out = list(ordered_map(fn, _series(x, max(size, 1))))
    return finite(np.vstack(out)) if out else np.zeros((0, width), np.float32)


def _envelope_chunk(series: list[np.ndarray]) -> np.ndarray:
    n = np.array([len(s) for s in series])
    first = np.concatenate([[0], np.cumsum(n)[:-1]])
    v = np.concatenate(series)
    k = n.astype(np.float64)
    mean = np.add.reduceat(v, first) / k
    var = np.maximum(np.add.reduceat(v * v, first) / k - mean * mean, 0.0)
    return np.column_stack(
        [
            np.log1p(k),
            mean,
            np.sqrt(var),
            _segment_means(v, first, n, 32),
            np.log1p(_segment_means(np.abs(v), first, n, 32)),
        ]
    )


def envelope(x: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """(N, 67) cheap features for the first prediction: log length, mean, std, the
    series' 32 segment means and the log of 32 segment means of its magnitude (no
    FFT, no sort: spokendigits' 160 training clips in 0.02 s against 0.03 s for
    `spectral`, both on two cores; test NAUC with logistic regression: 0.98, against
    0.999 for `spectral`)."""
    return _over_cores(_envelope_chunk, x, 67)


def later(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """For the time left once the plan has converged: extremely randomised trees on
    the spectral features (issue 14: on spokendigits a 300-tree forest's top-1 was
    0.988 against the plan's best, 0.963)."""
    from autodl.engine.extra_trees import ExtraTrees  # lazy: see `plan`

    return [ExtraTrees(features=Features("spectral", spectral), seed=seed + 30)]


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The speech / series learners, cheapest first."""
    # lazy: a saved model loads without torch, and a CNN without scikit-learn
    from autodl.engine.boost import LightGBM
    from autodl.engine.linear import Linear
    from autodl.engine.mel import logmel
    from autodl.engine.nets import CNN
    from autodl.engine.rocket import rocket

    f = Features("spectral", spectral)
    return [
        Linear(features=Features("envelope", envelope), seed=seed),
        Linear(features=f, seed=seed),
        Linear(features=Features("rocket", rocket, seed=seed), C=0.1, seed=seed),
        LightGBM(features=f, seed=seed),
        CNN(features=Features("log-mel", logmel), epochs=40, seed=seed),
    ]

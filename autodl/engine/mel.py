"""Mel filters and log-mel spectrograms, shared by the speech plan's features.

A leaf module (it imports no domain module), so `speech` (numpy spectral features)
and `rocket` (numpy series features) both depend on it and not on each other.

`mel_bank`: triangular filters evenly spaced on the mel scale over a nominal 16 kHz
(the sample rate is not in the data). `logmel`: our own torch mel spectrogram
(Hann-windowed STFT, the same mel bank, log power), brought to ``frames`` frames
(area-averaged when longer, zero-padded after standardisation when shorter):
(N, 1, bands, frames), the input of the speech CNN.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from autodl.engine._arrays import finite, segment_means, series


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


@lru_cache(maxsize=8)
def _mel(frame: int, bands: int) -> Any:
    import torch

    return torch.from_numpy(mel_bank(frame, bands).T.astype(np.float32))


def logmel(
    x: np.ndarray | list[np.ndarray], frame: int = 512, bands: int = 40, frames: int = 128
) -> np.ndarray:
    """(N, 1, bands, frames) log-mel spectrograms (see the module doc)."""
    import torch  # lazy: mel_bank (numpy) serves models without torch

    with torch.no_grad():
        return _logmel(torch, x, frame, bands, frames)


def _logmel(torch: Any, x: Any, frame: int, bands: int, frames: int) -> np.ndarray:
    window = torch.hann_window(frame)
    out = np.zeros((len(x), 1, bands, frames), np.float32)
    for i, s in enumerate(series(x)):
        t = torch.from_numpy(s.astype(np.float32))
        if len(t) < frame:
            t = torch.nn.functional.pad(t, (0, frame - len(t)))
        spec = torch.stft(t, frame, frame // 2, window=window, center=False, return_complex=True)
        m = torch.log(spec.abs().pow(2).T @ _mel(frame, bands) + 1e-8).T.numpy()  # (bands, F)
        m = (m - m.mean()) / (m.std() + 1e-6)
        if m.shape[1] > frames:
            m = np.array([segment_means(row, frames) for row in m])
        out[i, 0, :, : m.shape[1]] = m
    return finite(out)

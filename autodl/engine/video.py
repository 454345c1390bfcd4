"""Video plan: small frames pooled over time.

Each frame is area-averaged to at most 16x16 and turned grey; over time we keep the
mean image, the standard deviation image, the mean absolute frame difference
(motion), and, since the direction of motion can be the class, the early-half minus
late-half image and the velocity and displacement of the intensity centroid; plus
per-channel means. Videos of varying size or length are handled one
by one. Logistic regression first, then the same on random Fourier features, LightGBM
on the same features (motion features split well), then, when the optional packages
are installed, pretrained EfficientNet-Lite0 features of 4 frames (mean over time and
late minus early) with logistic regression (`pretrained.EfficientNetLite`, no
fine-tuning), then
`nets.VideoCNN` on clips of at most 16 frames at 32 px (a frame CNN with temporal
convolutions, so the order of frames counts).
"""

from __future__ import annotations

import numpy as np

from autodl.engine._arrays import CHUNK, finite, resize
from autodl.engine.learner import Features, Learner
from autodl.formats.types import DatasetSpec


def _centroids(grey: np.ndarray) -> np.ndarray:
    """(n, T, 2) intensity centroid (row, col) of each frame, in [0, 1]."""
    w = grey - grey.min(axis=(2, 3), keepdims=True) + 1e-6
    w /= w.sum(axis=(2, 3), keepdims=True)
    rows = np.linspace(0, 1, grey.shape[2])[None, None, :, None]
    cols = np.linspace(0, 1, grey.shape[3])[None, None, None, :]
    return np.stack([(w * rows).sum(axis=(2, 3)), (w * cols).sum(axis=(2, 3))], axis=-1)


def _pool(v: np.ndarray) -> np.ndarray:
    """v (n, T, h, w, C) small frames -> (n, 4 * h * w + 4 + C)."""
    n, t = len(v), v.shape[1]
    grey = v.mean(axis=-1)
    half = max(1, t // 2)
    if t > 1:
        motion = np.abs(np.diff(grey, axis=1)).mean(axis=1)
        # signed: which way things move (early minus late image, centroid velocity)
        direction = grey[:, :half].mean(axis=1) - grey[:, half:].mean(axis=1)
        c = _centroids(grey)
        velocity = np.hstack([np.diff(c, axis=1).mean(axis=1), c[:, -1] - c[:, 0]])
    else:
        motion = direction = np.zeros_like(grey[:, 0])
        velocity = np.zeros((n, 4))
    parts = [grey.mean(axis=1), grey.std(axis=1), motion, direction]
    return np.hstack([p.reshape(n, -1) for p in parts] + [velocity, v.mean(axis=(1, 2, 3))])


def pooled(x: np.ndarray | list[np.ndarray], size: int = 16) -> np.ndarray:
    """(N, F) pooled features; a list of varying videos is resized to (size, size) each."""
    if isinstance(x, np.ndarray):
        h, w = min(x.shape[2], size), min(x.shape[3], size)
        blocks = [_pool(resize(x[i : i + CHUNK], h, w)) for i in range(0, len(x), CHUNK)]
    else:
        c = max((e.shape[-1] for e in x), default=1)
        blocks = [
            _pool(np.broadcast_to(resize(e, size, size), (*e.shape[:1], size, size, c))[None])
            for e in x
        ]
    return finite(np.vstack(blocks)) if blocks else np.zeros((0, 3), np.float32)


def clips(x: np.ndarray | list[np.ndarray], frames: int = 16, size: int = 32) -> np.ndarray:
    """(N, C, frames, size, size) float32: each video resampled in time and space."""
    c = max((e.shape[-1] for e in x), default=1)
    out = np.zeros((len(x), c, frames, size, size), np.float32)
    for i, e in enumerate(x):
        # time: the frames nearest to ``frames`` evenly spaced instants (any length)
        idx = np.minimum((np.arange(frames) + 0.5) * len(e) / frames, len(e) - 1).astype(int)
        small = np.broadcast_to(resize(e[idx], size, size), (frames, size, size, c))
        out[i] = small.transpose(3, 0, 1, 2)
    return finite(out)


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The video learners, cheapest first."""
    # lazy: a saved model loads without torch, and a CNN without scikit-learn
    from autodl.engine import pretrained
    from autodl.engine.boost import LightGBM
    from autodl.engine.linear import Linear
    from autodl.engine.nets import VideoCNN

    f = Features("pooled", pooled)
    return [
        Linear(features=f, seed=seed),
        Linear(features=f, kernel="rff", C=10.0, seed=seed),
        LightGBM(features=f, seed=seed),
        *(
            [pretrained.EfficientNetLite(frames=4, epochs=0, seed=seed)]
            if pretrained.available()
            else []
        ),
        VideoCNN(features=Features("clips", clips), epochs=30, width=16, seed=seed),
    ]

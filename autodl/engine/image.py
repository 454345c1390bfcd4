"""Image plan: small pixels first, then random convolution features.

`pixels`: images area-averaged to at most 16x16 (variable-size images are resized to
16x16 first), the grey image flattened, plus per-channel mean and standard deviation
and, for colour images, a 4x4 thumbnail per channel. `random_conv`: 32 fixed random
3x3 filters over the small image, split into positive and negative parts and
average-pooled to 4x4 (1024 features): a cheap stand-in for a first conv layer.
Both go to logistic regression. Then `images`: the images at a resolution chosen for
the data and the machine (the native size, at least 16 px and at most 32 px on CPU or
64 px on CUDA) for a small CNN (`nets.CNN`) with shifts, and mirror flips for colour
photographs (also test-time views). Between them, when the optional packages are
installed (`pretrained.available`), pretrained EfficientNet-Lite0 features with a
linear head, fine-tuned when time allows (`pretrained.EfficientNetLite`); it costs
seconds, not the first prediction, so it comes after the two cheap learners. On more
than ``LARGE_ROWS`` training rows (`at_scale`), the linear models use a ``LARGE_ROWS``
subsample and the pretrained features and the CNN start right after the first one.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autodl.engine._arrays import CHUNK, finite, resize, resized
from autodl.engine.learner import Features, Learner
from autodl.formats.types import DatasetSpec

LARGE_ROWS = 10_000  # training rows above which the plan changes (`at_scale`)


def pixels(x: np.ndarray | list[np.ndarray], size: int = 16) -> np.ndarray:
    """(N, F) features: grey thumbnail, channel means/stds, colour 4x4 thumbnails."""
    imgs = resized(x, size).mean(axis=1)  # (N, h, w, C); T is 1 for images
    n, c = len(imgs), imgs.shape[-1]
    parts = [
        imgs.mean(axis=-1).reshape(n, -1),
        imgs.mean(axis=(1, 2)),
        imgs.std(axis=(1, 2)),
    ]
    if c > 1:
        parts.append(resize(imgs, min(4, imgs.shape[1]), min(4, imgs.shape[2])).reshape(n, -1))
    return finite(np.hstack(parts))


def random_conv(
    x: np.ndarray | list[np.ndarray], size: int = 16, n_filters: int = 32, seed: int = 0
) -> np.ndarray:
    """(N, 2 * n_filters * 16) pooled responses of fixed random 3x3 filters."""
    imgs = resized(x, size).mean(axis=1)  # (N, h, w, C)
    pad_h, pad_w = max(0, 3 - imgs.shape[1]), max(0, 3 - imgs.shape[2])
    if pad_h or pad_w:
        imgs = np.pad(imgs, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    c = imgs.shape[-1]
    w = np.random.default_rng(seed).standard_normal((c * 9, n_filters)).astype(np.float32)
    w -= w.mean(axis=0)  # zero-mean filters: flat regions give no response
    w /= np.linalg.norm(w, axis=0) + 1e-6
    out = []
    for i in range(0, len(imgs), CHUNK):
        win = sliding_window_view(imgs[i : i + CHUNK], (3, 3), axis=(1, 2))  # (n, h', w', C, 3, 3)
        r = win.reshape(*win.shape[:3], c * 9) @ w  # (n, h', w', K)
        both = np.concatenate([np.maximum(r, 0), np.maximum(-r, 0)], axis=-1)
        pooled = resize(both, min(4, both.shape[1]), min(4, both.shape[2]))
        out.append(pooled.reshape(len(pooled), -1))
    return finite(np.vstack(out)) if out else np.zeros((0, 2 * n_filters * 16), np.float32)


def images(x: np.ndarray | list[np.ndarray], size: int = 32) -> np.ndarray:
    """(N, C, size, size) float32 images (frames averaged), area-resized up or down."""
    if isinstance(x, np.ndarray):
        blocks = [
            resize(x[i : i + CHUNK].mean(axis=1), size, size) for i in range(0, len(x), CHUNK)
        ]
        imgs = np.concatenate(blocks) if blocks else np.zeros((0, size, size, x.shape[-1]))
    else:
        imgs = resized(x, size).mean(axis=1)
    return finite(imgs.transpose(0, 3, 1, 2))


def cnn_size(spec: DatasetSpec) -> int:
    """Side of the CNN's input: the native side within [16, 32] on CPU, [16, 64] on CUDA."""
    side = max(spec.shape[1], spec.shape[2])
    from autodl.engine._torch import DEVICE  # lazy: a saved model loads without torch

    top = 64 if DEVICE.type == "cuda" else 32
    return top if side <= 0 else int(np.clip(side, 16, top))


def at_scale(learners: list[Learner], rows: int) -> list[Learner]:
    """The plan for ``rows`` training rows: as it is up to ``LARGE_ROWS``; above, the
    linear models run on ``LARGE_ROWS`` rows (a stratified subsample) and the strong
    learners (pretrained features, the CNN) take their turns right after the first
    linear model, before the random-convolution one (issue 14: on 19,500 images the
    plan spent 47 s on linear models before the CNN and the pretrained features,
    which reached 0.99 within 30 s of starting)."""
    from autodl.engine.linear import Linear, cap_linear

    if rows <= LARGE_ROWS:
        return learners
    out = cap_linear(learners, LARGE_ROWS)
    strong = [lr for lr in out if not isinstance(lr, Linear)]
    return out[:1] + strong + [lr for lr in out[1:] if lr not in strong]


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The image learners, cheapest first."""
    # lazy: a saved model loads without torch, and a CNN without scikit-learn
    from autodl.engine import pretrained
    from autodl.engine.linear import Linear
    from autodl.engine.nets import CNN

    size = cnn_size(spec)
    colour = spec.shape[3] == 3
    return [
        Linear(features=Features("pixels", pixels), seed=seed),
        Linear(features=Features("random-conv", random_conv, seed=seed), C=0.1, seed=seed),
        *([pretrained.EfficientNetLite(flip=colour, seed=seed)] if pretrained.available() else []),
        CNN(features=Features(f"images{size}", images, size=size), flip=colour, seed=seed),
    ]

"""Tiny datasets of every domain, written in the official format, for tests and demos.

Each ``make_*`` writes ``root/<name>/`` with `DatasetWriter` and returns that
path; ``unlabelled=False`` leaves out the unlabelled part (``n_unlabelled``
records otherwise). Data are deterministic (``seed``) and carry a learnable signal, so a
simple classifier beats chance; they are small enough to write in
milliseconds. ``make_digits`` writes scikit-learn's ``load_digits()`` as an
8×8 gray PNG image dataset (the README quick start).

>>> import tempfile
>>> p = make_tabular(tempfile.mkdtemp(), n_train=20, n_test=10)
>>> p.name
'tinytabular'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from autodl.formats.types import DatasetSpec
from autodl.formats.writer import DatasetWriter


def _split_counts(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Balanced class indices 0..k-1, shuffled."""
    y = np.arange(n) % k
    rng.shuffle(y)
    return y


def _one_hot(y: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[y]


def _write_sample(
    root: str | Path,
    spec: DatasetSpec,
    rng: np.random.Generator,
    make: Callable[[np.ndarray], Any],
    n_train: int,
    n_test: int,
    n_unlabelled: int,
    *,
    labels: Callable[[int], np.ndarray] | None = None,
    **writer_kw,
) -> Path:
    """Make ``n_test + n_train + n_unlabelled`` records and write them; their dataset path.

    ``labels(n)`` gives the (n, output_dim) labels; by default one class per
    record, balanced and shuffled with ``rng``. ``make(labels)`` gives the
    records (an array or a list). The first ``n_test`` are the test set, the
    next ``n_train`` the training set, the rest the unlabelled part (none when
    ``n_unlabelled`` is 0). ``writer_kw`` goes to `DatasetWriter`.
    """
    n = n_train + n_test + n_unlabelled
    k = spec.output_dim
    y = labels(n) if labels is not None else _one_hot(_split_counts(rng, n, k), k)
    x = make(y)
    writer = DatasetWriter(root, spec, **writer_kw)
    a, b = n_test, n_test + n_train
    unl = x[b:] if n_unlabelled else None
    return writer.write(train=(x[a:b], y[a:b]), test=(x[:a], y[:a]), unlabelled=unl)


def make_tabular(
    root: str | Path,
    n_train: int = 90,
    n_test: int = 45,
    *,
    n_features: int = 8,
    n_classes: int = 3,
    multilabel: bool = False,
    n_unlabelled: int = 10,
    unlabelled: bool = True,
    storage: str = "DENSE",
    name: str = "tinytabular",
    seed: int = 0,
) -> Path:
    """Gaussian classes in ``n_features`` dimensions, shape (1, 1, F, 1).

    ``multilabel``: each example has 1–3 of the classes; its features are the
    sum of their centres. ``storage="SPARSE"`` stores only non-zero values
    (a third of the features are then zeroed).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.0, (n_classes, n_features)).astype(np.float32)

    def some_classes(n):
        labels = (rng.random((n, n_classes)) < 0.35).astype(np.float32)
        labels[labels.sum(1) == 0, rng.integers(0, n_classes)] = 1.0
        return labels

    def make(labels):
        n = len(labels)
        x = labels @ centres + rng.normal(0, 1.0, (n, n_features)).astype(np.float32)
        if storage == "SPARSE":
            x[:, : n_features // 3] = 0.0
        return x.reshape(n, 1, 1, n_features, 1).astype(np.float32)

    spec = DatasetSpec(
        name, (1, 1, n_features, 1), n_classes, storage, [f"class{i}" for i in range(n_classes)]
    )  # type: ignore[arg-type]
    return _write_sample(
        root,
        spec,
        rng,
        make,
        n_train,
        n_test,
        n_unlabelled if unlabelled else 0,
        labels=some_classes if multilabel else None,
        label_map=False,
        label_file=True,
    )


def make_image(
    root: str | Path,
    n_train: int = 60,
    n_test: int = 30,
    *,
    size: int = 12,
    channels: int = 1,
    n_classes: int = 3,
    n_unlabelled: int = 10,
    unlabelled: bool = True,
    image_format: str = "PNG",
    name: str = "tinyimage",
    seed: int = 0,
) -> Path:
    """Noisy images where class k has a bright horizontal bar in band k."""
    rng = np.random.default_rng(seed)
    band = size // n_classes

    def make(labels):
        x = rng.integers(0, 60, (len(labels), 1, size, size, channels)).astype(np.uint8)
        for i, k in enumerate(labels.argmax(1)):
            x[i, 0, k * band : k * band + max(1, band // 2), :, :] = 230
        return list(x)

    spec = DatasetSpec(
        name,
        (1, size, size, channels),
        n_classes,
        "COMPRESSED",
        [f"band{i}" for i in range(n_classes)],
        domain="image",
    )
    return _write_sample(
        root,
        spec,
        rng,
        make,
        n_train,
        n_test,
        n_unlabelled if unlabelled else 0,
        image_format=image_format,
    )


def make_text(
    root: str | Path,
    n_train: int = 60,
    n_test: int = 30,
    *,
    n_classes: int = 2,
    vocab_size: int = 40,
    n_unlabelled: int = 10,
    unlabelled: bool = True,
    name: str = "tinytext",
    seed: int = 0,
) -> Path:
    """Token-id sequences (5–20 tokens) where each class favours its own words.

    The vocabulary (``channel_to_index_map``) includes keys with quotes and
    non-ASCII characters, as real ones do.
    """
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab_size - 3)] + ["that's", "—", '"q"']
    own = vocab_size // (n_classes + 1)

    def make(labels):
        xs = []
        for k in labels.argmax(1):
            length = int(rng.integers(5, 21))
            favoured = rng.integers(k * own, (k + 1) * own, length)
            common = rng.integers(n_classes * own, vocab_size, length)
            tokens = np.where(rng.random(length) < 0.6, favoured, common)
            xs.append(tokens.astype(np.float32).reshape(length, 1, 1, 1))
        return xs

    spec = DatasetSpec(
        name,
        (-1, 1, 1, 1),
        n_classes,
        "DENSE",
        None,
        {w: i for i, w in enumerate(words)},
        domain="text",
    )
    return _write_sample(
        root, spec, rng, make, n_train, n_test, n_unlabelled if unlabelled else 0, label_map=False
    )


def make_speech(
    root: str | Path,
    n_train: int = 60,
    n_test: int = 30,
    *,
    n_classes: int = 3,
    n_unlabelled: int = 10,
    unlabelled: bool = True,
    name: str = "tinyspeech",
    seed: int = 0,
) -> Path:
    """16-bit-PCM-like waves (200–400 samples at 'x' Hz): class k is a tone of
    its own pitch plus noise, stored as floats in -32768..32767."""
    rng = np.random.default_rng(seed)

    def make(labels):
        xs = []
        for k in labels.argmax(1):
            length = int(rng.integers(200, 401))
            t = np.arange(length)
            wave = 8000 * np.sin(2 * np.pi * (0.02 + 0.04 * k) * t + rng.uniform(0, 6.3))
            wave += rng.normal(0, 1500, length)
            xs.append(
                np.clip(np.rint(wave), -32768, 32767).astype(np.float32).reshape(length, 1, 1, 1)
            )
        return xs

    spec = DatasetSpec(
        name,
        (-1, 1, 1, 1),
        n_classes,
        "DENSE",
        [f"tone{i}" for i in range(n_classes)],
        domain="speech",
    )
    return _write_sample(root, spec, rng, make, n_train, n_test, n_unlabelled if unlabelled else 0)


def make_video(
    root: str | Path,
    n_train: int = 40,
    n_test: int = 20,
    *,
    frames: int = 4,
    size: int = 12,
    n_unlabelled: int = 10,
    unlabelled: bool = True,
    image_format: str = "PNG",
    name: str = "tinyvideo",
    seed: int = 0,
) -> Path:
    """Clips of a bright 3×3 square moving left, right, up or down (4 classes)."""
    rng = np.random.default_rng(seed)
    moves = [(0, -1), (0, 1), (-1, 0), (1, 0)]

    def make(labels):
        x = rng.integers(0, 40, (len(labels), frames, size, size, 1)).astype(np.uint8)
        for i, k in enumerate(labels.argmax(1)):
            dr, dc = moves[k]
            r0 = (
                int(rng.integers(frames, size - 3 - frames))
                if dr
                else int(rng.integers(0, size - 3))
            )
            c0 = (
                int(rng.integers(frames, size - 3 - frames))
                if dc
                else int(rng.integers(0, size - 3))
            )
            for t in range(frames):
                r, c = r0 + dr * t, c0 + dc * t
                x[i, t, r : r + 3, c : c + 3, 0] = 240
        return list(x)

    spec = DatasetSpec(
        name,
        (frames, size, size, 1),
        4,
        "COMPRESSED",
        ["left", "right", "up", "down"],
        domain="video",
    )
    return _write_sample(
        root,
        spec,
        rng,
        make,
        n_train,
        n_test,
        n_unlabelled if unlabelled else 0,
        image_format=image_format,
    )


def _stratified(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``sizes`` (largest remainders)."""
    exact = sizes * total / sizes.sum()
    out = np.floor(exact).astype(int)
    out[np.argsort(out - exact)[: total - out.sum()]] += 1
    return out


def make_digits(
    root: str | Path,
    *,
    name: str = "digits",
    test_fraction: float = 0.35,
    n_unlabelled: int = 200,
    seed: int = 0,
) -> Path:
    """scikit-learn's ``load_digits()`` (1797 8×8 digits) as an image dataset.

    As the reference ``handdigits`` was made: ``n_unlabelled`` digits
    (stratified) are set aside as the unlabelled part, the others are split
    into train and test (stratified, ``test_fraction``), pixels 0–16 are scaled
    to 0–255 and stored as 8-bit gray PNGs; label names '0'…'9'.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    part = np.zeros(len(digits.target), np.int8)  # 0 train, 1 test, 2 unlabelled
    sizes = np.bincount(digits.target, minlength=10)
    unl = _stratified(sizes, n_unlabelled)
    test = _stratified(sizes - unl, int(round((len(digits.target) - n_unlabelled) * test_fraction)))
    for k in range(10):
        members = rng.permutation(np.flatnonzero(digits.target == k))
        n_unl, n_test = unl[k], test[k]
        part[members[:n_unl]] = 2
        part[members[n_unl : n_unl + n_test]] = 1
    in_train, in_test, in_unl = (rng.permutation(np.flatnonzero(part == p)) for p in (0, 1, 2))
    order = np.concatenate([in_test, in_train, in_unl])  # as _write_sample splits them
    pixels = np.rint(digits.images * 255.0 / 16.0).astype(np.uint8).reshape(-1, 1, 8, 8, 1)
    spec = DatasetSpec(
        name, (1, 8, 8, 1), 10, "COMPRESSED", [str(i) for i in range(10)], domain="image"
    )
    return _write_sample(
        root,
        spec,
        rng,
        lambda labels: list(pixels[order]),
        len(in_train),
        len(in_test),
        len(in_unl),
        labels=lambda n: _one_hot(digits.target[order], 10),
    )


MAKERS = {
    "tabular": make_tabular,
    "image": make_image,
    "text": make_text,
    "speech": make_speech,
    "video": make_video,
}


def make_all(root: str | Path, seed: int = 0) -> dict[str, Path]:
    """One tiny dataset per domain under ``root``: domain -> dataset root."""
    return {domain: make(root, seed=seed) for domain, make in MAKERS.items()}

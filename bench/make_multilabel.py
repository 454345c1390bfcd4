"""A hard, noisy multi-label tabular dataset shaped like "yeast", in the AutoDL format.

    python bench/make_multilabel.py /tmp/k3/data [--seed 0]

writes ``DIR/datasets/yeastlike/`` (for ``bench/alc.py --data DIR``). Issue 14 reports
the engine behind extremely randomised trees on a 14-label set of 1,691 training rows
and 103 features that looks like the "yeast" gene-function data (2,417 genes, 103
expression features, 14 functional classes, about 4 labels per gene). No package we
may install ships yeast or another real multi-label set of that kind, so this one is
**generated** (numpy only, fixed seed), with yeast's shape and a structure that makes it
hard in the same ways:

- 103 dense features that are noisy linear mixtures of 10 latent factors (expression
  profiles are strongly correlated), plus 20 pure-noise features;
- 14 labels from smooth non-linear functions of the factors (sums of a few sigmoids and
  products), correlated through shared factors, with yeast's spread of rates (two labels
  held by three genes in four, two by 1-2% of them) and about 4 labels per row;
- label noise: each label drawn from its probability (not thresholded), so even the
  true function scores far below NAUC 1.

1,691 training rows and 726 test rows (yeast's 2,417 split 70/30).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROWS, TRAIN, FEATURES, NOISE, FACTORS, LABELS = 2417, 1691, 103, 20, 10, 14
# target label rates, yeast-like: two frequent labels, two rare ones
RATES = (0.32, 0.41, 0.40, 0.36, 0.26, 0.20, 0.18, 0.21, 0.07, 0.08, 0.015, 0.75, 0.74, 0.02)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def yeastlike(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features float32 (ROWS, FEATURES) and labels float32 (ROWS, LABELS) of 0/1."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((ROWS, FACTORS))
    mix = rng.standard_normal((FACTORS, FEATURES - NOISE)) * rng.uniform(0.2, 1.0, FACTORS)[:, None]
    signal = z @ mix
    signal += rng.standard_normal(signal.shape) * signal.std(axis=0) * 1.2  # measurement noise
    x = np.hstack([signal, rng.standard_normal((ROWS, NOISE))])
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    shared = z[:, :3] @ rng.standard_normal((3, LABELS))  # correlated labels
    y = np.zeros((ROWS, LABELS), np.float32)
    for c, rate in enumerate(RATES):
        a, b = rng.choice(FACTORS, 2, replace=False)
        w = rng.standard_normal(FACTORS) * 0.6
        logit = (
            z @ w
            + 1.5 * np.tanh(2 * z[:, a])
            + 1.2 * z[:, a] * z[:, b]
            + 1.5 * (np.abs(z[:, b]) > 1.0)
            + 0.5 * shared[:, c]
        )
        logit = 1.4 * (logit - logit.mean()) / logit.std()
        # shift so the mean probability is the target rate
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < rate else (lo, mid)
        y[:, c] = rng.random(ROWS) < _sigmoid(logit + lo)
    return x.astype(np.float32), y


def write(root: Path, seed: int = 0, name: str = "yeastlike") -> Path:
    """Write ``root/datasets/<name>`` (train: the first TRAIN rows); returns its folder."""
    from autodl.formats.types import DatasetSpec
    from autodl.formats.writer import DatasetWriter

    x, y = yeastlike(seed)
    x = x.reshape(len(x), 1, 1, FEATURES, 1)
    spec = DatasetSpec(name, (1, 1, FEATURES, 1), LABELS)
    out = root / "datasets"
    out.mkdir(parents=True, exist_ok=True)
    DatasetWriter(out, spec).write(train=(x[:TRAIN], y[:TRAIN]), test=(x[TRAIN:], y[TRAIN:]))
    return out / name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    path = write(a.root, a.seed)
    _, y = yeastlike(a.seed)
    print(f"{path}: {len(y)} rows ({TRAIN} train), {FEATURES} features, {LABELS} labels, "
          f"{y.sum(axis=1).mean():.2f} labels per row, rates {np.round(y.mean(axis=0), 3).tolist()}")  # fmt: skip


if __name__ == "__main__":
    main()

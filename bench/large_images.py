"""Reading photographs for the engine: full resolution against the engine's side cap.

    .venv/bin/python bench/large_images.py [--n 2000] [--side 640x480] [--max-side 128]
                                           [--markdown]

Writes (once, in a temporary folder) an AutoDL dataset of ``--n`` smooth random
JPEG photographs of ``--side`` pixels, then, each in a fresh process so that peak
memory is its own, times ``train.load()`` (every pixel, as TensorFlow's reader
gives them) and ``train.load(max_side=...)`` (what the engine reads: frames shrunk
while decoding, JPEG scaled in the DCT first, a chunk of records at a time). Prints
seconds, images per second, the size of the arrays and the peak resident memory of
each, and the ratios (``--markdown``: as a table with the command and date). Figures only;
nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.formats.dataset import open_dataset  # noqa: E402
from autodl.formats.images import encode_frame  # noqa: E402
from autodl.formats.types import DatasetSpec  # noqa: E402
from autodl.formats.writer import DatasetWriter  # noqa: E402


def _photo(rng: np.random.Generator, h: int, w: int) -> bytes:
    small = rng.integers(0, 256, (max(1, h // 16), max(1, w // 16), 3)).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
    return encode_frame(img, "JPEG", 90)


def write(folder: Path, n: int, h: int, w: int) -> Path:
    rng = np.random.default_rng(0)
    spec = DatasetSpec("photos", (1, h, w, 3), 2, format="COMPRESSED")
    frames = [[_photo(rng, h, w)] for _ in range(n)]
    y = np.eye(2, dtype=np.float32)[np.arange(n) % 2]
    return DatasetWriter(folder, spec).write((frames, y), (frames[:10], y[:10]))


def child(path: str, max_side: int | None) -> None:
    ds = open_dataset(path)
    t0 = time.monotonic()
    x = ds.train.load(max_side=max_side).x
    took = time.monotonic() - t0
    nbytes = x.nbytes if isinstance(x, np.ndarray) else sum(e.nbytes for e in x)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": took, "n": len(x), "array_mb": nbytes / 2**20, "peak_mb": peak}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--side", default="640x480", help="WIDTHxHEIGHT of the photographs")
    ap.add_argument("--max-side", type=int, default=128)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    a = ap.parse_args()
    if a.child:
        path, side = a.child
        child(path, None if side == "none" else int(side))
        return
    from bench._markdown import Rows

    report = Rows(a.markdown, ["read", "seconds", "images/s", "arrays MB", "peak MB"])
    w, h = (int(v) for v in a.side.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        root = write(Path(tmp), a.n, h, w)
        print(f"# {a.n} JPEG photographs {w}x{h} written in {time.monotonic() - t0:.1f} s")
        rows = {}
        for label, side in (("full resolution", "none"), (f"max_side {a.max_side}", a.max_side)):
            cmd = [sys.executable, __file__, "--child", str(root), str(side)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            r = rows[label] = json.loads(out.strip().splitlines()[-1])
            rate = r["n"] / r["seconds"]
            report.add(
                [
                    label,
                    f"{r['seconds']:.2f}",
                    f"{rate:.0f}",
                    f"{r['array_mb']:.1f}",
                    f"{r['peak_mb']:.1f}",
                ],
                f"{label:>16}: {r['seconds']:6.2f} s  {rate:7.0f} images/s  "
                f"arrays {r['array_mb']:8.1f} MB  peak {r['peak_mb']:8.1f} MB",
            )
        full, small = rows.values()
        ratios = (
            f"ratios full / max_side: time {full['seconds'] / small['seconds']:.1f}x, "
            f"arrays {full['array_mb'] / small['array_mb']:.1f}x, "
            f"peak memory {full['peak_mb'] / small['peak_mb']:.1f}x"
        )
        if not a.markdown:
            print(ratios)
        report.end(f"{a.n} JPEG photographs of {w} x {h}, each way in a fresh process; {ratios}.")


if __name__ == "__main__":
    main()

"""How fast `autodl format` converts each kind of input: files (or rows) per second.

Generates inputs in a temporary folder, converts each twice in the same run:
with one decoding process (the baseline) and with every core, and prints
inputs/second and the ratio (``--markdown``: one table with the command and date).
Asserts nothing about time.

    python bench/format_speed.py [--scale 1.0] [--markdown]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autodl.formats.convert import format_dataset  # noqa: E402
from autodl.formats.convert._pool import default_workers  # noqa: E402
from tests.convert import inputs  # noqa: E402


def _class_folders(root: Path, n: int, classes) -> Iterator[tuple[int, str, Path]]:
    """(i, class, its folder (made)) for n files, given to the classes in turn."""
    classes = list(classes)
    for i in range(n):
        cls = classes[i % len(classes)]
        d = root / cls
        d.mkdir(parents=True, exist_ok=True)
        yield i, cls, d


C4 = [f"c{k}" for k in range(4)]  # the classes of the images and the audio


def images(root: Path, n: int) -> Path:
    """n photos-like 256x192 JPEG and PNG files in 4 classes."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (192, 256, 3)).astype(np.uint8)
    for i, _, d in _class_folders(root, n, C4):
        img = np.roll(base, 7 * i, axis=1) // (1 + i % 4)
        Image.fromarray(img).save(d / f"{i}.{'jpg' if i % 2 else 'png'}")
    return root


def audio(root: Path, n: int) -> Path:
    """n one-second 44.1 kHz stereo WAV files (resampled to 16 kHz)."""
    import soundfile as sf

    for i, _, d in _class_folders(root, n, C4):
        x = inputs.tone(i % 4, i, 44100, seconds=1.0)
        sf.write(str(d / f"{i}.wav"), np.stack([x, x], 1), 44100, subtype="PCM_16")
    return root


def video(root: Path, n: int) -> Path:
    """n two-second 192x192 H.264 clips at 25 fps (sampled at 5 fps)."""
    for i, cls, d in _class_folders(root, n, inputs.MOVES):
        frames = inputs.clip_frames(cls, i, n=50, size=192, colour=True)
        inputs.write_video(d / f"{i}.mp4", frames, fps=25)
    return root


def text(root: Path, n: int) -> Path:
    """n .txt files of about 200 words."""
    for i, cls, d in _class_folders(root, n, inputs.WORDS):
        (d / f"{i}.txt").write_text(" ".join(inputs.text_of(cls, i + j) for j in range(25)))
    return root


def table(root: Path, n: int) -> Path:
    """n rows of 20 numbers and 2 categories."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    path = root / "rows.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"x{j}" for j in range(20)] + ["colour", "city", "label"])
        for i in range(n):
            w.writerow([*np.round(rng.normal(size=20), 4), "rgb"[i % 3], f"c{i % 40}", i % 5])
    return path


KINDS = {
    "image": (images, 400, {}),
    "image --max-size 64": (images, 400, {"max_size": 64}),
    "audio": (audio, 200, {}),
    "video": (video, 60, {}),
    "text *": (text, 600, {}),
    "tabular rows *": (table, 50000, {}),
}


def main() -> None:
    # Import the decoders' libraries once up front, so the first (1-process) run does
    # not pay for imports that the forked workers of the second run inherit for free.
    import av  # noqa: F401
    import scipy.signal  # noqa: F401
    import soundfile  # noqa: F401

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the input sizes")
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    from bench._markdown import Rows

    cores = default_workers()
    setup = f"autodl format speed ({cores} core(s)); baseline: 1 decoding process"
    report = Rows(args.markdown, ["input", "n", "1 process /s", f"{cores} processes /s", "ratio"])
    if not args.markdown:
        print(setup)
        print(f"{'input':<22}{'n':>7}{'1 process /s':>15}{f'{cores} processes /s':>18}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, (make, n, opts) in KINDS.items():
            n = max(8, int(n * args.scale))
            src = make(Path(tmp) / label.split()[0] / "in", n)
            rates = []
            for workers in (1, cores):
                out = Path(tmp) / "out"
                start = time.perf_counter()
                format_dataset(src, out, name="bench", workers=workers, force=True, **opts)
                rates.append(n / (time.perf_counter() - start))
            report.add(
                [label, n, f"{rates[0]:.0f}", f"{rates[1]:.0f}", f"{rates[1] / rates[0]:.2f}"],
                f"{label:<22}{n:>7}{rates[0]:>15.0f}{rates[1]:>18.0f}{rates[1] / rates[0]:>8.2f}",
            )
    note = (
        "* converted in one process either way (cheaper than sending work to a worker):"
        " the two columns show the run-to-run noise."
    )
    if not args.markdown:
        print(note)
    report.end(setup + ".", note)


if __name__ == "__main__":
    main()

"""Read speed of the AutoDL reader, against a baseline and TensorFlow, in one command.

    .venv/bin/python bench/read_speed.py [--data DIR] [--baseline general|protobuf]
        [--repeat 3] [--markdown] [names...]
    AUTODL_TF_PYTHON="$(bash .ci/tf-venv.sh)" .venv/bin/python bench/read_speed.py --data /tmp/k1/datasets

For each dataset of ``../shared/data`` (skipped with a message when absent), or of
``--data DIR`` (any AutoDL datasets: every folder of DIR that opens; make large ones
with ``bench/make_read_sets.py``), it times ``open_dataset(p)`` + ``train.load()`` +
``test.load()`` + ``unlabelled.load()`` and prints records/second and MB/second
(bytes of the record files / time). The baseline, timed in the same run:

- ``general`` (default): the same reader with the bulk path off, every record through
  the general decoder (``TFRecordSplit.bulk = False``: the reader before issue 14);
- ``protobuf``: the obvious reader written with the protobuf messages:
  ``SequenceExample.FromString`` per record, one Python access per ``Feature``,
  frames decoded one by one with Pillow.

When ``AUTODL_TF_PYTHON`` names the python of a TensorFlow venv (``bash
.ci/tf-venv.sh`` prints one), two TensorFlow columns are added, timed in a
subprocess on the same files (``bench/_tf_read.py``): the per-record parse and the
batched parse (256 records a batch); ratios are ours / theirs. Best of ``--repeat``
runs each; the CPU seconds (every thread of each process) say how much work each
did, which a busy machine's wall clock hides (TensorFlow's thread pool takes a
larger share of a contended CPU than one Python thread). ``--numpy-png``: PNG frames decoded as before the threaded decoder
(zlib and numpy in the reading thread). Prints figures (``--markdown``: one table
with the command and date); asserts nothing about time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.formats import _png, images  # noqa: E402
from autodl.formats import example as E  # noqa: E402
from autodl.formats.dataset import open_dataset  # noqa: E402
from autodl.formats.tfrecord import read_records  # noqa: E402
from tests.conftest import SHARED_DATA as SHARED  # noqa: E402
from tests.formats.conftest import ALL_NAMES as NAMES  # noqa: E402


def _path(name: str) -> Path:
    kit = SHARED / "starting-kit-samples" / name
    return kit if kit.is_dir() else SHARED / "datasets" / name


def ours(path: Path, bulk: bool = True) -> int:
    ds = open_dataset(path)
    n = 0
    for split in (ds.train, ds.test, ds.unlabelled):
        if split is not None:
            split.bulk = bulk
            n += len(split.load())
    return n


def general(path: Path) -> int:
    """Our reader with every record through the general decoder."""
    return ours(path, bulk=False)


def tensorflow(path: Path, repeat: int) -> dict | None:
    """TensorFlow's per-record and batched seconds on the same files, or None."""
    python = os.environ.get("AUTODL_TF_PYTHON")
    if not python:
        return None
    ds = open_dataset(path)
    files = [str(f) for s in (ds.train, ds.test, ds.unlabelled) if s for f in s.files]
    spec = {"files": files, "format": ds.spec.format, "shape": list(ds.spec.shape)}
    spec["repeat"] = repeat
    proc = subprocess.run(
        [python, str(ROOT / "bench" / "_tf_read.py"), json.dumps(spec)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(f"{path.name}: TensorFlow failed: {proc.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def _best(fn, path: Path, repeat: int) -> tuple[float, int, float]:
    """Least wall seconds, records, least CPU seconds (every thread of this process)."""
    best, cpu, n = float("inf"), float("inf"), 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        n = fn(path)
        best = min(best, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return best, n, cpu


def _datasets(args) -> list[tuple[str, Path]]:
    if args.data is not None:
        found = []
        for p in sorted(args.data.iterdir()):
            if p.is_dir() and (not args.names or p.name in args.names):
                try:
                    open_dataset(p).close()
                except Exception:  # noqa: BLE001 - not a dataset: skipped
                    continue
                found.append((p.name, p))
        return found
    return [(name, _path(name)) for name in (args.names or NAMES)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--data", type=Path, help="a folder of AutoDL datasets (default: the samples)")
    ap.add_argument("--baseline", choices=("general", "protobuf"), default="general")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--no-simplejpeg",
        action="store_true",
        help="decode JPEG with Pillow even if simplejpeg is installed",
    )
    ap.add_argument(
        "--numpy-png",
        action="store_true",
        help="decode PNG as before issue 14's threaded decoder: zlib and numpy, one thread",
    )
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    from bench._markdown import Rows

    with_tf = bool(os.environ.get("AUTODL_TF_PYTHON"))
    cols = ["dataset", "format", "records", "MB", "ours s", "rec/s", "MB/s"]
    cols += [f"{args.baseline} rec/s", "speed-up"]
    if with_tf:
        cols += ["TF per-record rec/s", "ours/TF", "TF batched rec/s", "ours/TF batched"]
        cols += ["CPU s: ours / TF per-record / TF batched"]
    report = Rows(args.markdown, cols)
    if args.no_simplejpeg:
        images.simplejpeg = None
        images.JPEG_DECODER = "Pillow"
    if args.numpy_png:
        _png.PILLOW = None
    png = "zlib + numpy" if _png.PILLOW is None else "Pillow's decoder object, threads"
    setup = f"JPEG decoder: {images.JPEG_DECODER}; PNG: {png}; "
    setup += f"{images.default_workers()} decoding workers"
    base_fn = general if args.baseline == "general" else baseline
    if not args.markdown:
        print(setup)
        print("  ".join(cols))
    if args.data is None and not SHARED.is_dir():
        print(f"reference data not found at {SHARED}; nothing to measure.")
        return
    tf_version = None
    for name, path in _datasets(args):
        if not path.is_dir():
            print(f"{name}: not found, skipped")
            continue
        ds = open_dataset(path)
        splits = [s for s in (ds.train, ds.test, ds.unlabelled) if s]
        size = sum(f.stat().st_size for s in splits for f in s.files) / 1e6
        t_ours, n, cpu_ours = _best(ours, path, args.repeat)
        t_base, _, _ = _best(base_fn, path, args.repeat)
        cells = [name, ds.spec.format, n, f"{size:.2f}", f"{t_ours:.3f}", f"{n / t_ours:.0f}"]
        cells += [f"{size / t_ours:.1f}", f"{n / t_base:.0f}", f"{t_base / t_ours:.1f}x"]
        if with_tf:
            tf = tensorflow(path, args.repeat)
            if tf is None:
                cells += ["-"] * 5
            else:
                tf_version = tf["tensorflow"]
                for key in ("per_record", "batched"):
                    cells += [f"{n / tf[key]:.0f}", f"{tf[key] / t_ours:.2f}x"]
                cpu = [cpu_ours, tf.get("per_record_cpu", 0.0), tf.get("batched_cpu", 0.0)]
                cells.append(" / ".join(f"{c:.2f}" for c in cpu))
        report.add(cells, "  ".join(str(c) for c in cells))
    tf_note = f"; TensorFlow {tf_version} in a subprocess" if tf_version else ""
    report.end(f"{setup}{tf_note}; best of {args.repeat} runs each.")


if __name__ == "__main__":
    main()

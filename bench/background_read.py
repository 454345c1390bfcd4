"""How much reading a split in a background thread slows a training loop (issue 14.1).

    .venv/bin/python bench/background_read.py [--data /tmp/k1/datasets] [--names images]
        [--seconds 4] [--threads 1] [--markdown]

The engine reads the rest of a large train split in a background thread while it
trains (``engine/data.py``, `Background`). Work in that thread that holds the GIL
starves the trainer's Python (every torch call dispatches from Python). For each
dataset of ``--data`` (default: the ``images`` set of ``bench/make_read_sets.py``),
this runs a small torch CNN's training steps (batches of 64 images 32 x 32 x 3, as
the engine's image learner does; ``--threads`` intra-op threads):

1. alone for ``--seconds``: steps/second;
2. while one ``train.load()`` runs in a background thread (``--workers`` decoding
   threads, default 1: two threads on two cores, so what slows the trainer beyond
   the machine's other load is the GIL the reader holds), with the reader as it is
   now (PNG frames decoded by Pillow's decoder object, without the GIL);
3. the same with the reader before (unless ``--no-before``: PNG frames inflated and
   unfiltered with numpy, ``_png.PILLOW = None``).

Prints the read's seconds and records/second, the trainer's steps/second meanwhile,
its slowdown against the run alone, and the training steps the read cost. Run it on
an otherwise idle machine: other load slows both threads. Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.formats import _png  # noqa: E402
from autodl.formats.dataset import open_dataset  # noqa: E402


def _model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


def _trainer():
    """One training step of a small CNN on a fixed batch (64 images 32 x 32 x 3)."""
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 3, 32, 32)
    y = torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    step()
    return step


def train(seconds: float) -> float:
    """Training steps per second over ``seconds``, nothing else running."""
    step = _trainer()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t)


def beside_read(path: Path, workers: int) -> tuple[float, float, int]:
    """One ``train.load()`` in a background thread while the trainer steps until it
    ends: (read seconds, trainer steps/second meanwhile, records read)."""
    step = _trainer()
    done: list = []

    def read() -> None:
        done.append(len(open_dataset(path, workers=workers).train.load()))

    thread = threading.Thread(target=read, daemon=True)
    n, t = 0, time.perf_counter()
    thread.start()
    while thread.is_alive():
        step()
        n += 1
    elapsed = time.perf_counter() - t
    thread.join()
    return elapsed, n / elapsed, done[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/k1/datasets"))
    ap.add_argument("--names", nargs="*", default=["images"])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument(
        "--workers", type=int, default=1, help="the reader's decoding threads (default 1)"
    )
    ap.add_argument("--no-before", action="store_true", help="skip the reader before")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    from bench._markdown import Rows

    torch.set_num_threads(args.threads)
    cols = ["dataset", "reader", "read s", "reader rec/s", "trainer steps/s"]
    cols += ["trainer slowdown", "training steps lost"]
    report = Rows(args.markdown, cols)
    if not args.markdown:
        print("  ".join(cols))
    now = _png.PILLOW
    for name in args.names:
        path = args.data / name
        if not path.is_dir():
            print(f"{name}: not found in {args.data} (bench/make_read_sets.py makes it)")
            continue
        alone = train(args.seconds)
        rows = [[name, "none (trainer alone)", "-", "-", f"{alone:.1f}", "-", "-"]]
        variants = [("now", now)] + ([] if args.no_before else [("before (numpy PNG)", None)])
        for label, decoder in variants:
            _png.PILLOW = decoder
            try:
                read_s, rate, n = beside_read(path, args.workers)
            finally:
                _png.PILLOW = now
            lost = (alone - rate) * read_s
            rows.append(
                [name, label, f"{read_s:.2f}", f"{n / read_s:.0f}", f"{rate:.1f}"]
                + [f"{alone / rate:.2f}x", f"{lost:.0f}"]
            )
        for cells in rows:
            report.add(cells, "  ".join(str(c) for c in cells))
    report.end(
        f"torch {torch.__version__}, {args.threads} intra-op thread(s); the reader "
        f"{args.workers} decoding thread(s); slowdown = steps/s alone ({args.seconds:g} s) "
        "/ steps/s while the train split is read; steps lost = the steps the trainer "
        "would have made alone in that time, less those it made."
    )


if __name__ == "__main__":
    main()

"""Where the bulk reader's time goes, and the same for another checkout, run alternately.

    .venv/bin/python bench/read_phases.py DATASET [DATASET ...] [--code DIR ...] [--rounds 3]

For each AutoDL dataset folder (make large ones with ``bench/make_read_sets.py``) and
each checkout of this project (``--code``: the working tree by default; an earlier
commit with ``git worktree add /tmp/wt-before REV``), a fresh process times, least of
``--repeat`` tries:

- ``framing``: `_chunks.iter_chunks` over every record file (reading, framing, CRCs);
- ``decoding``: `_bulk.decode_chunk` of those chunks (the bulk path alone);
- ``whole``: ``open_dataset`` and ``load()`` of the train and test splits, what a
  user's code pays.

Checkouts alternate for ``--rounds`` rounds so that a machine that speeds up or slows
down during the run touches both alike. Prints one line per process; asserts nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import glob, sys, time
code, path, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, code)
import autodl
assert autodl.__file__.startswith(code), autodl.__file__
from autodl.formats import _bulk, _chunks
from autodl.formats.dataset import open_dataset

ds = open_dataset(path)
files = sorted(glob.glob(f"{path}/*.data/*/sample-*.tfrecord"))
files = [f for f in files if "/unlabelled/" not in f]
frame, decode, whole = [], [], []
for _ in range(repeat):
    t = time.perf_counter()
    chunks = []
    for f in files:
        with open(f, "rb") as s:
            chunks += list(_chunks.iter_chunks(s, f))
    frame.append(time.perf_counter() - t)
    t = time.perf_counter()
    for c in chunks:
        _bulk.decode_chunk(c, ds.spec.format, ds.spec)
    decode.append(time.perf_counter() - t)
    t = time.perf_counter()
    d = open_dataset(path)
    n = len(d.train.load()) + len(d.test.load())
    whole.append(time.perf_counter() - t)
print(f"framing {min(frame):.3f} s  decoding {min(decode):.3f} s  whole {min(whole):.3f} s"
      f"  ({n} records)")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--code", nargs="+", type=Path, default=[ROOT])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    for r in range(args.rounds):
        for data in args.datasets:
            for code in args.code:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(code.resolve()), str(data), str(args.repeat)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                line = out.stdout.strip() or f"failed: {out.stderr.strip()[-300:]}"
                print(f"round {r + 1}  {data.name:10s} {str(code):24s} {line}", flush=True)


if __name__ == "__main__":
    main()

"""Time to the first prediction, cold engine against warmed-up engine, per dataset.

    python bench/first_prediction.py [--data ../shared/data] [--only NAME ...] [--repeat 3]
                                     [--markdown]

For each dataset, ingestion runs the engine ``--repeat`` times each way, alternating
so that the machine's load falls on both alike: **cold** (``autodl.engine.loop:run``,
a module without ``warm_up``: the first calls of every code path are timed) and
**warm** (``autodl.engine:run``: ingestion calls ``warm_up(spec)`` before the clock,
as the official ingestion constructs the engine). Prints the median seconds from
the clock start to the first and second predictions, the untimed start-up (import
and warm-up) of each, and the ratio cold / warm; ``--markdown`` prints them as one table with the command and
date (docs/benchmarks.md). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autodl.engine.protocol import DEFAULT_ENGINE  # noqa: E402
from autodl.ingestion import ingest  # noqa: E402

ENGINES = {"cold": "autodl.engine.loop:run", "warm": DEFAULT_ENGINE}


def once(path: Path, engine: str, budget: float) -> tuple[float, float, float]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.time()
        r = ingest(path, out, budget, engine=engine)
        startup = r.start_time - t0
        times = [p.elapsed for p in r.predictions] + [float("nan")] * 2
        return times[0], times[1], startup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=4.0)
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    a = ap.parse_args()
    from bench._markdown import Rows

    report = Rows(
        a.markdown,
        ["dataset", "cold: first s", "warm: first s", "cold / warm", "start-up s cold / warm"],
    )
    paths = sorted(p for p in (a.data / "datasets").iterdir() if p.is_dir())
    paths = [p for p in paths if not a.only or p.name in a.only]
    if not a.markdown:
        print(f"{'dataset':>16} {'engine':>5} {'first s':>8} {'second s':>9} {'start-up s':>10}")
    for path in paths:
        runs = {k: [] for k in ENGINES}
        for _ in range(a.repeat):
            for k, engine in ENGINES.items():
                runs[k].append(once(path, engine, a.budget))
        med = {k: [statistics.median(v[i] for v in runs[k]) for i in range(3)] for k in runs}
        lines = [
            f"{path.name:>16} {k:>5} {first:8.3f} {second:9.3f} {startup:10.2f}"
            for k, (first, second, startup) in med.items()
        ]
        ratio = med["cold"][0] / med["warm"][0]
        lines.append(f"{path.name:>16} ratio cold / warm, first prediction: {ratio:.2f}x")
        cells = [path.name, f"{med['cold'][0]:.3f}", f"{med['warm'][0]:.3f}", f"{ratio:.2f}"]
        report.add([*cells, f"{med['cold'][2]:.2f} / {med['warm'][2]:.2f}"], "\n".join(lines))
    report.end(f"Median of {a.repeat} runs each way, alternating; budget {a.budget:g} s.")


if __name__ == "__main__":
    main()

"""Time to the first prediction, cold engine against warmed-up engine, per dataset.

    python bench/first_prediction.py [--data ../shared/data] [--only NAME ...] [--repeat 3]
                                     [--budget 4] [--engines cold warm] [--markdown]

For each dataset of ``--data``/datasets (the sample datasets, or the large ones that
`bench/make_large.py` writes), ingestion runs the engine ``--repeat`` times each way,
alternating so that the machine's load falls on both alike: **cold**
(``autodl.engine.loop:run``, a module without ``warm_up``: the first calls of every
code path are timed) and **warm** (``autodl.engine:run``: ingestion calls
``warm_up(spec)`` before the clock, as the official ingestion constructs the
engine); ``--engines warm`` runs only that one. Each run is a process of its own, so
its peak memory (the largest resident set of that process and of the engine's) is its
own. Prints the median seconds from the clock start to the first and second
predictions, the engine's CPU seconds to the first (its processes' user and system
time from the clock start: on a loaded machine the wall clock says more about the
load than about the engine), the test NAUC of the first prediction, the peak memory,
the untimed start-up (import and warm-up) of each, and the ratio cold / warm;
``--markdown`` prints them as one table with the command and date
(docs/benchmarks.md). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = {"cold": "autodl.engine.loop:run", "warm": "autodl.engine:run"}


def once(path: Path, engine: str, budget: float) -> dict:
    """One run in this process: seconds to the first two predictions, start-up, the
    test NAUC of the first prediction (None without a solution), and the engine's CPU
    seconds from the clock start to the first prediction (its processes' user and
    system time: a figure the machine's load hardly changes, unlike the wall clock)."""
    from autodl.ingestion import ingest
    from autodl.scoring import score_arrays
    from autodl.scoring._arrays import read_array

    cpu: list[float] = []  # the engine's CPU seconds at the clock start and at the first prediction

    def engine_cpu() -> float:
        import psutil

        procs = psutil.Process().children(recursive=True)
        return sum(sum(p.cpu_times()[:2]) for p in procs if p.is_running())

    def on_progress(p) -> None:
        if p.event == "prediction" and len(cpu) == 1:
            cpu.append(engine_cpu())

    with tempfile.TemporaryDirectory() as out:
        t0 = time.time()
        r = ingest(
            path,
            out,
            budget,
            engine=engine,
            on_ready=lambda: cpu.append(engine_cpu()),
            on_progress=on_progress,
        )
        times = [p.elapsed for p in r.predictions] + [float("nan")] * 2
        solution = next(path.glob("*.solution"), None)
        nauc = None
        if solution is not None and r.predictions:
            first = r.predictions[0]
            nauc = score_arrays(read_array(solution), [read_array(first.path)], [0.0], budget)
            nauc = nauc.nauc[0]
        first_cpu = cpu[1] - cpu[0] if len(cpu) == 2 else None
        return {
            "first": times[0],
            "second": times[1],
            "startup": r.start_time - t0,
            "nauc": nauc,
            "cpu": first_cpu,
        }


def _child(path: Path, engine: str, budget: float) -> dict:
    """`once` in a fresh process, with its peak memory (MB)."""
    cmd = [sys.executable, __file__, "--child", engine, str(path), "--budget", str(budget)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{engine} on {path} failed: {proc.stderr.strip()[-800:]}")
    return json.loads(lines[-1])


def _peak_mb() -> float:
    kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return kb / 1024


def _median(runs: list[dict], key: str) -> float:
    values = [r[key] for r in runs if r[key] is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--budget", type=float, default=4.0)
    ap.add_argument("--engines", nargs="+", choices=sorted(ENGINES), default=list(ENGINES))
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        engine, path = a.child
        row = once(Path(path), ENGINES[engine], a.budget)
        print(json.dumps({**row, "peak_mb": _peak_mb()}))
        return
    from bench._markdown import Rows

    engines = [k for k in ENGINES if k in a.engines]
    cells = [f"{k}: first s" for k in engines] + [f"{k}: engine CPU s" for k in engines]
    cells += [f"{k}: first NAUC" for k in engines]
    both = len(engines) == 2
    cells += ["cold / warm"] if both else []
    cells += [f"peak MB {' / '.join(engines)}", f"start-up s {' / '.join(engines)}"]
    report = Rows(a.markdown, ["dataset", *cells])
    paths = sorted(p for p in (a.data / "datasets").iterdir() if p.is_dir())
    paths = [p for p in paths if not a.only or p.name in a.only]
    if not a.markdown:
        print(
            f"{'dataset':>16} {'engine':>5} {'first s':>8} {'CPU s':>6} {'second s':>9} {'NAUC':>6}"
            f" {'peak MB':>8} {'start-up s':>10}"
        )
    for path in paths:
        runs: dict[str, list[dict]] = {k: [] for k in engines}
        for _ in range(a.repeat):
            for k in engines:
                runs[k].append(_child(path, k, a.budget))
        med = {
            k: {
                key: _median(v, key)
                for key in ("first", "second", "startup", "nauc", "peak_mb", "cpu")
            }
            for k, v in runs.items()
        }
        lines = [
            f"{path.name:>16} {k:>5} {m['first']:8.3f} {m['cpu']:6.2f} {m['second']:9.3f}"
            f" {m['nauc']:6.3f}"
            f" {m['peak_mb']:8.0f} {m['startup']:10.2f}"
            for k, m in med.items()
        ]
        row = [path.name]
        row += [f"{med[k]['first']:.3f}" for k in engines]
        row += [f"{med[k]['cpu']:.2f}" for k in engines]
        row += [f"{med[k]['nauc']:.3f}" for k in engines]
        if both:
            ratio = med["cold"]["first"] / med["warm"]["first"]
            lines.append(f"{path.name:>16} ratio cold / warm, first prediction: {ratio:.2f}x")
            row.append(f"{ratio:.2f}")
        row.append(" / ".join(f"{med[k]['peak_mb']:.0f}" for k in engines))
        row.append(" / ".join(f"{med[k]['startup']:.2f}" for k in engines))
        report.add(row, "\n".join(lines))
    report.end(
        f"Median of {a.repeat} runs{' each way, alternating' if both else ''}; "
        f"budget {a.budget:g} s; each run a process of its own."
    )


if __name__ == "__main__":
    main()

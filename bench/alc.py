"""ALC benchmark: our engine against simple peers, on every sample dataset, one command.

    python bench/alc.py [--budget 300] [--data ../shared/data] [--only NAME ...] [--markdown]
                        [--keep DIR]

For each dataset (``datasets/*`` and ``starting-kit-samples/*`` under ``--data``):

- **ours**: ``autodl.run`` (the engine in a child process, official ALC protocol);
- **logreg**, **lightgbm** and **extratrees** (300 trees, native multi-output for
  multi-label): one prediction each, made once at the end of its own
  training (clock from the start: reading the data, the domain's standard features
  of `autodl.engine`, fitting, predicting), on the same ALC axis;
- **flaml** (tabular only, needs ``pip install -e '.[bench]'``): separate FLAML runs with time
  budgets 5, 20 and 60 s (those within the budget), each placed at its actual
  finishing time, the curve keeping the best test NAUC so far (generous to the peer).

Before each engine's run the dataset's files are read once, so that every engine
starts with them in the page cache. Each engine runs in its own Python process so that
its peak memory (max resident set of the process and its children) is its own. One
row per dataset and engine: domain, time and NAUC of the first prediction, final
NAUC, ALC, what a user acts on in the final prediction (`actionable`: top-1 accuracy,
log loss, expected calibration error of the top class over 15 bins), peak memory, and
for ours the ratio of our ALC to the best peer's.
``--markdown`` prints the table as docs/benchmarks.md shows it, ending with the command
and date. ``--keep DIR`` keeps our runs (report, engine log, predictions) in
``DIR/<dataset>``. ``--engines`` runs only the engines named (``ours`` and peers).
Figures only; nothing is asserted.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench._markdown when run as a script
PEERS = ("logreg", "lightgbm", "extratrees", "flaml")
FLAML_BUDGETS = (5, 20, 60)


def _features(domain: str, spec):
    from autodl.engine import image, speech, tabular, text, video

    if domain == "text":
        return lambda x: text.counts(x, text.vocabulary_size(spec))
    return {
        "tabular": tabular.flat,
        "image": image.pixels,
        "speech": speech.spectral,
        "video": video.pooled,
    }[domain]


def _fit_predict(make, x, labels, xt, joint: bool = False):
    """Probabilities (n_test, output_dim): softmax over present classes, or one binary
    model per column for multi-label (a constant column gets its training rate; with
    ``joint``, one multi-output model for all the other columns)."""
    y = labels > 0.5
    k = y.shape[1]
    out = np.zeros((xt.shape[0], k))
    if np.any(y.sum(axis=1) != 1) and joint:
        cols = [c for c in range(k) if 0 < y[:, c].sum() < len(y)]
        out[:] = y.mean(axis=0)
        if cols:
            m = make().fit(x, y[:, cols].astype(int))
            p = m.predict_proba(xt)
            for c, q in zip(cols, p if isinstance(p, list) else [p], strict=True):
                out[:, c] = q[:, 1]
        return out
    if np.any(y.sum(axis=1) != 1):
        for c in range(k):
            if y[:, c].all() or not y[:, c].any():
                out[:, c] = y[:, c].mean()
            else:
                m = make().fit(x, y[:, c].astype(int))
                out[:, c] = m.predict_proba(xt)[:, list(m.classes_).index(1)]
        return out
    t = y.argmax(axis=1)
    if len(np.unique(t)) < 2:
        out[:, t[0]] = 1.0
        return out
    m = make().fit(x, t)
    out[:, m.classes_.astype(int)] = m.predict_proba(xt)
    return out


ECE_BINS = 15


def actionable(solution: np.ndarray, prediction: np.ndarray) -> dict:
    """Top-1 accuracy, log loss and expected calibration error (ECE, ``ECE_BINS``
    equal-width bins of the top class's probability) of a final prediction.

    Multi-class: rows are normalised to sum to 1 (what a user would read; our engine's
    calibrated test scores normalise to its calibrated probabilities), the log loss is
    the softmax one. Multi-label: top-1 counts a row right when its top-scored class
    is one of its labels, the log loss is the mean binary one over the cells.

    >>> sol = np.eye(2)[[0, 1, 1, 0]]
    >>> r = actionable(sol, np.array([[.8, .2], [.3, .7], [.6, .4], [.9, .1]]))
    >>> round(r["top1"], 2), round(r["log_loss"], 3), round(r["ece"], 3)
    (0.75, 0.4, 0.3)
    """
    y = np.asarray(solution) > 0.5
    p = np.clip(np.asarray(prediction, np.float64), 0, 1)
    eps = 1e-15
    multi = bool(np.all(y.sum(axis=1) == 1)) and y.shape[1] > 1
    if multi:
        total = p.sum(axis=1, keepdims=True)
        p = np.where(total > 0, p / np.where(total > 0, total, 1), 1 / p.shape[1])
        loss = float(-np.log(np.clip(p[y], eps, 1)).mean())
    else:
        q = np.clip(p, eps, 1 - eps)
        loss = float(-(np.log(q) * y + np.log(1 - q) * ~y).mean())
    top = p.argmax(axis=1)
    right = y[np.arange(len(y)), top]
    conf = p[np.arange(len(y)), top]
    bins = np.minimum((conf * ECE_BINS).astype(int), ECE_BINS - 1)
    ece = sum(
        abs(right[bins == b].mean() - conf[bins == b].mean()) * np.mean(bins == b)
        for b in range(ECE_BINS)
        if np.any(bins == b)
    )
    return {"top1": float(right.mean()), "log_loss": loss, "ece": float(ece)}


def _peer_models(name: str, domain: str, budget: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logreg":
        if domain == "text":
            from sklearn.feature_extraction.text import TfidfTransformer

            return lambda: make_pipeline(TfidfTransformer(), LogisticRegression(max_iter=1000))
        from sklearn.impute import SimpleImputer

        return lambda: make_pipeline(
            SimpleImputer(keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(max_iter=1000),
        )
    if name == "lightgbm":
        import lightgbm as lgb

        return lambda: lgb.LGBMClassifier(verbosity=-1, random_state=0)
    if name == "extratrees":
        from sklearn.ensemble import ExtraTreesClassifier

        return lambda: ExtraTreesClassifier(300, n_jobs=-1, random_state=0)
    from flaml import AutoML

    class Flaml:
        def fit(self, x, t):
            self.m = AutoML()
            metric = "roc_auc" if len(np.unique(t)) == 2 else "roc_auc_ovr"
            self.m.fit(x, t, task="classification", time_budget=budget, metric=metric,
                       verbose=0, seed=0, n_jobs=-1)  # fmt: skip
            self.classes_ = self.m.classes_
            return self

        def predict_proba(self, x):
            return self.m.predict_proba(x)

    return Flaml


def one_peer(name: str, path: str, budget: float) -> dict:
    """One peer run on one dataset: its predictions with timestamps, scored."""
    import autodl.engine.loop  # noqa: F401 - imports before the clock, as the engine's are
    from autodl.formats.dataset import open_dataset
    from autodl.scoring import score_arrays

    _peer_models(name, "tabular", 1.0)
    t0 = time.monotonic()
    ds = open_dataset(path)
    domain = ds.spec.domain
    train, test = ds.train.load(), ds.test.load()
    feat = _features(domain, ds.spec)
    x, xt = feat(train.x), feat(test.x)
    if domain != "text":
        x, xt = np.nan_to_num(x, posinf=np.nan, neginf=np.nan), xt
    after_features = time.monotonic() - t0
    preds, times = [], []
    runs = [b for b in FLAML_BUDGETS if b < budget] if name == "flaml" else [None]
    for b in runs:
        s = time.monotonic()
        per = None if b is None else b / (train.labels.shape[1] if _multilabel(train) else 1)
        models = _peer_models(name, domain, per)
        preds.append(_fit_predict(models, x, train.labels, xt, joint=name == "extratrees"))
        # separate runs: each starts after the data and features, as if alone
        times.append(after_features + time.monotonic() - s)
    result = score_arrays(ds.solution, preds, times, budget)
    if name == "flaml":  # best-so-far over runs ordered by finishing time
        order = np.argsort(times)
        best, keep = -np.inf, []
        for i in order:
            if result.nauc[i] >= best:
                best, j = result.nauc[i], i
            keep.append(j)
        preds = [preds[j] for j in keep]
        result = score_arrays(ds.solution, preds, sorted(times), budget)
    final = preds[result.counted[-1]] if result.counted else None
    return _row(name, domain, result, ds.solution, final)


def _multilabel(train) -> bool:
    return bool(np.any((train.labels > 0.5).sum(axis=1) != 1))


def one_ours(path: str, budget: float, keep: Path | None = None) -> dict:
    import autodl

    with tempfile.TemporaryDirectory() as out:
        where = Path(out) / "run" if keep is None else keep / Path(path).name
        report = autodl.run(path, where, time_budget=budget, seed=0, force=keep is not None)
        ds = autodl.open_dataset(path)
        r = report.score
        final = None
        if r.counted:
            files = sorted((where / "predictions").glob(f"*.predict_{r.counted[-1]}"))
            final = np.loadtxt(files[0], ndmin=2) if files else None
        return _row("ours", ds.spec.domain, r, ds.solution, final)


def _row(engine: str, domain: str, r, solution=None, final=None) -> dict:
    counted = r.counted
    acts = (
        actionable(solution, final)
        if final is not None
        else {"top1": None, "log_loss": None, "ece": None}
    )
    return {
        **acts,
        "engine": engine,
        "domain": domain,
        "first_t": r.timestamps[counted[0]] if counted else None,
        "first_nauc": r.nauc[counted[0]] if counted else None,
        "final_nauc": r.final_nauc,
        "alc": r.alc,
        "n": len(counted),
    }


def _peak_mb() -> float:
    kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    )
    return kb / 1024


def _read_through(path: str) -> None:
    """Read every file of the dataset once, so that each engine starts with it in the
    operating system's page cache (the first engine would otherwise pay the disk: on
    spokendigits, loading took 0.09 s cold against 0.04 s)."""
    for f in sorted(Path(path).rglob("*")):
        if f.is_file():
            with open(f, "rb") as fh:
                while fh.read(1 << 22):
                    pass


def _child(engine: str, path: str, budget: float, keep: Path | None) -> dict | None:
    _read_through(path)
    cmd = [sys.executable, __file__, "--child", engine, path, "--budget", str(budget)]
    cmd += ["--keep", str(keep.resolve())] if keep is not None and engine == "ours" else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        print(f"  {engine} on {path} failed: {proc.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=300.0)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", nargs="*", default=None, help="dataset names")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--keep", type=Path, default=None, help="keep our runs in DIR/<dataset>")
    ap.add_argument("--engines", nargs="*", default=None, help="ours and/or peer names")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "PATH"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        engine, path = a.child
        row = (
            one_ours(path, a.budget, a.keep)
            if engine == "ours"
            else one_peer(engine, path, a.budget)
        )
        print(json.dumps({**row, "peak_mb": _peak_mb()}))
        return

    paths = sorted((a.data / "datasets").glob("*")) + sorted(
        (a.data / "starting-kit-samples").glob("*")
    )
    paths = [p for p in paths if p.is_dir() and (a.only is None or p.name in a.only)]
    cols = "dataset engine domain first_t first_nauc final_nauc alc top1 log_loss ece peak_mb vs_best_peer"
    print(f"# budget {a.budget:g} s")  # a line of its own: the table's header follows
    if a.markdown:
        print()
        print("| " + " | ".join(cols.split()) + " |")
        print("|" + "---|" * len(cols.split()))
    else:
        print(cols)
    sums: dict[str, list[float]] = {}
    for p in paths:
        rows = []
        for engine in ("ours", *PEERS):
            if a.engines is not None and engine not in a.engines:
                continue
            row = _child(engine, str(p), a.budget, a.keep)
            if row is None or (engine == "flaml" and row["domain"] != "tabular"):
                continue
            rows.append(row)
        peers = [r["alc"] for r in rows if r["engine"] != "ours"]
        best_peer = max(peers) if peers else None
        for r in rows:
            ratio = r["alc"] / best_peer if r["engine"] == "ours" and best_peer else None
            sums.setdefault(r["engine"], []).append(r["alc"])
            cells = [
                p.name,
                r["engine"],
                r["domain"],
                _fmt(r["first_t"], ".2f"),
                _fmt(r["first_nauc"], ".4f"),
                _fmt(r["final_nauc"], ".4f"),
                _fmt(r["alc"], ".4f"),
                _fmt(r.get("top1"), ".3f"),
                _fmt(r.get("log_loss"), ".3f"),
                _fmt(r.get("ece"), ".3f"),
                _fmt(r["peak_mb"], ".0f"),
                _fmt(ratio, ".3f"),
            ]
            print(("| " + " | ".join(cells) + " |") if a.markdown else "  ".join(cells), flush=True)
        if best_peer is not None:
            sums.setdefault("best peer", []).append(best_peer)
    print()
    for engine, v in sums.items():
        print(
            f"{'* ' if a.markdown else ''}mean ALC {engine}: {np.mean(v):.4f} over {len(v)} datasets"
        )
    if a.markdown:
        from bench._markdown import provenance

        print()
        print(provenance())


if __name__ == "__main__":
    main()

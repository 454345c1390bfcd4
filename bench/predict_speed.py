"""Saved models: size on disk, load time, and `autodl predict`'s speed (issue 16.6).

    python bench/predict_speed.py [--data DIR] [--datasets NAME ...] [--budget 30]
                                  [--runs DIR] [--markdown]

For each sample dataset under ``--data`` (default: the shared sample datasets) it runs
``autodl run DATASET --time-budget BUDGET`` (skipped when ``--runs DIR`` already holds
``DIR/NAME/model``), then, each in a fresh process:

- **load**: ``autodl.load_model`` on the run's ``model/`` folder; the seconds with the
  imports of the engine's libraries (torch, LightGBM: what a fresh ``autodl predict``
  pays) and, loaded a second time in the same process, without them;
- **autodl predict**: ``autodl predict MODEL DATASET --split test --format predict``,
  end to end (start-up, load, reading and decoding the records, predicting); its
  file is compared with the run's last test prediction (max abs difference);
- **predict_to_csv, loaded**: `autodl.model.predict_to_csv` on the test split in the
  process that has loaded the model: reading, decoding and predicting, without the
  start-up; **its predict calls**: the same, counting only the model's calls
  (``Model.raw``, what the run's own call does);
- **the run's own predict call**: the test split loaded as the run loads it (outside
  the timing), then the model's learners' ``predict_proba`` on all of it in one call,
  as the engine makes its test prediction; **the run's read + call**: the same with
  the loading timed (``TFRecordSplit.load``, what the run paid once to read those
  examples), the like of ``predict_to_csv``, which reads the records too.

Throughputs are test examples per second, each the best of 5 in a process (a shared
machine's pauses are not the code's); each load the best of 3 fresh processes. Targets: load under 2 s, ``autodl predict``
at least as fast as the run's own predict call, model under 200 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._markdown import SAMPLE_NAMES, SAMPLES  # noqa: E402

DATA = SAMPLES
DATASETS = SAMPLE_NAMES

PROBE = r"""
import json, os, sys, tempfile, time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
from autodl.model import load_model, predict_to_csv
from autodl.formats.dataset import open_dataset
m = load_model(sys.argv[1])
t2, c2 = time.perf_counter(), time.process_time()
load_model(sys.argv[1])
t3 = time.perf_counter()
read, own, stream, inner = [], [], [], []
raw = m.raw
for _ in range(REPEATS):  # the best of REPEATS: a shared machine's pauses are not the code's
    t = time.perf_counter()
    with open_dataset(sys.argv[2]) as ds:
        x = ds.test.load(max_side=m.max_side).x
    read.append(time.perf_counter() - t)
    t = time.perf_counter()
    raw(x)
    own.append(time.perf_counter() - t)
    spent = [0.0]
    def timed(x):
        t = time.perf_counter()
        try:
            return raw(x)
        finally:
            spent[0] += time.perf_counter() - t
    m.raw = timed
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        predict_to_csv(m, sys.argv[2], os.path.join(tmp, "p.csv"), split="test")
    stream.append(time.perf_counter() - t)
    inner.append(spent[0])
    m.raw = raw
print(json.dumps({"cold": t2 - t0, "cold_cpu": c2 - c0, "load": t3 - t2, "own": min(own),
                  "read": min(read), "read_own": min(a + b for a, b in zip(read, own)),
                  "stream": min(stream), "inner": min(inner), "n": len(x)}))
""".replace("REPEATS", "5")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def measure(name: str, data: Path, runs: Path, budget: float) -> dict | None:
    import numpy as np

    src = data / name
    if not src.is_dir():
        print(f"{name}: not found under {data}, skipped", file=sys.stderr)
        return None
    out = runs / name
    if not (out / "model" / "model.json").is_file():
        cmd = [sys.executable, "-m", "autodl", "run", str(src), "--time-budget", str(budget)]
        subprocess.run([*cmd, "--output", str(out), "--force"], check=False, capture_output=True)
    model = out / "model"
    if not (model / "model.json").is_file():
        print(f"{name}: the run saved no model, skipped", file=sys.stderr)
        return None
    doc = json.loads((model / "model.json").read_text())
    probes = []
    for _ in range(3):  # fresh processes: the best of three loads
        probe = subprocess.run(
            [sys.executable, "-c", PROBE, str(model), str(src)],
            check=True,
            capture_output=True,
            text=True,
        )
        probes.append(json.loads(probe.stdout.strip().splitlines()[-1]))
    p = {k: min(q[k] for q in probes) for k in probes[0]}
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "test.predict"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "autodl", "predict", str(model), str(src)]
            + ["--split", "test", "--format", "predict", "--output", str(target)],
            check=True,
            capture_output=True,
        )
        cli = time.perf_counter() - t0
        got = np.loadtxt(target, ndmin=2)
    task = doc["spec"]["name"]
    ref = np.loadtxt(out / "predictions" / f"{task}.predict_{doc['prediction_index']}", ndmin=2)
    n = p["n"]
    return {
        "dataset": name,
        "model": doc["learner"],
        "size_mb": folder_bytes(model) / 1e6,
        "cold_load_s": p["cold"],
        "cold_cpu_s": p["cold_cpu"],
        "stream_per_s": p["n"] / max(p["stream"], 1e-9),
        "inner_per_s": p["n"] / max(p["inner"], 1e-9),
        "load_s": p["load"],
        "cli_s": cli,
        "cli_per_s": n / cli,
        "own_per_s": n / max(p["own"], 1e-9),
        "run_read_per_s": n / max(p["read_own"], 1e-9),
        "n": n,
        "max_diff": float(np.abs(got - ref).max()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--budget", type=float, default=30.0)
    ap.add_argument("--runs", type=Path, default=None, help="keep (and reuse) the runs here")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    runs_tmp = None
    if args.runs is None:
        runs_tmp = tempfile.TemporaryDirectory()
        args.runs = Path(runs_tmp.name)
    columns = [
        "dataset",
        "model",
        "size (MB)",
        "load, fresh process (s)",
        "its CPU time (s)",
        "load, imports done (s)",
        "autodl predict (s)",
        "autodl predict (ex/s)",
        "predict_to_csv, loaded (ex/s)",
        "its predict calls (ex/s)",
        "run's predict call (ex/s)",
        "run's read + call (ex/s)",
        "test examples",
        "max diff vs run",
    ]
    rows = []
    for name in args.datasets:
        r = measure(name, args.data, args.runs, args.budget)
        if r is None:
            continue
        row = [
            r["dataset"],
            r["model"],
            f"{r['size_mb']:.2f}",
            f"{r['cold_load_s']:.2f}",
            f"{r['cold_cpu_s']:.2f}",
            f"{r['load_s']:.3f}",
            f"{r['cli_s']:.1f}",
            f"{r['cli_per_s']:.0f}",
            f"{r['stream_per_s']:.0f}",
            f"{r['inner_per_s']:.0f}",
            f"{r['own_per_s']:.0f}",
            f"{r['run_read_per_s']:.0f}",
            r["n"],
            f"{r['max_diff']:.1e}",
        ]
        rows.append(row)
        if not args.markdown:
            print(" | ".join(str(c) for c in row), flush=True)
    if args.markdown:
        from bench._markdown import provenance, table

        print(table(columns, rows))
        print()
        print(provenance())
    if runs_tmp is not None:
        runs_tmp.cleanup()


if __name__ == "__main__":
    main()

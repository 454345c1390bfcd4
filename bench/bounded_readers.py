"""Memory and time of validating hostile datasets, each in a fresh process.

    .venv/bin/python bench/bounded_readers.py [--code DIR] [--memory-cap 4e9] [--set VAR=VALUE]
                                              [--markdown]

Builds the datasets of issue 12 (forty 9000 x 9000 PNG frames of ~80 KB each; a
metadata with ``output_dim: 2000000000`` and one label-map entry; the same
without a label map) and runs ``check_dataset`` on each in a child process whose
address space is capped (``--memory-cap``, so an unbounded reader fails instead
of taking the machine). Prints, per dataset: seconds, the child's peak resident
memory above its imports (ru_maxrss), and the first problem reported (or the
exception). ``--code DIR`` runs the ``autodl`` package found in DIR instead of
this checkout's: to measure the code before a change, export it with
``git archive <commit> autodl | tar -x -C DIR``. ``--set`` passes settings to the
child (e.g. ``--set AUTODL_MAX_FRAME_PIXELS=100000000`` lets the 9000 x 9000 frames
through the pixel cap, to measure what validating them costs). ``--markdown`` prints one
table with the command and date (docs/benchmarks.md). Asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.formats import hostile  # noqa: E402

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from autodl.formats.check import check_dataset
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
try:
    r = check_dataset(sys.argv[2])
    first = r.problems[0].message if r.problems else "no problem"
except BaseException as e:
    first = f"{type(e).__name__}: {e}"
print(json.dumps({"seconds": time.perf_counter() - t,
                  "grew_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
                  "first": first[:150]}))
"""


def measure(code: Path, dataset: Path, cap: int, env: dict[str, str]) -> dict:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(code), str(dataset)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        env={**os.environ, **env},
        timeout=600,
    )
    if out.returncode:
        return {"seconds": None, "grew_mb": None, "first": out.stderr.strip()[-150:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=ROOT)
    ap.add_argument("--memory-cap", type=float, default=4e9)
    ap.add_argument("--set", action="append", default=[], metavar="VAR=VALUE")
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    from bench._markdown import Rows

    report = Rows(args.markdown, ["hostile dataset", "on disk", "time", "memory", "first problem"])
    env = dict(item.split("=", 1) for item in args.set)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = {
            "40 frames of 9000x9000 PNG": hostile.huge_frames(root / "a"),
            "output_dim 2e9, label map": hostile.many_classes(root / "b"),
            "output_dim 2e9, no label map": hostile.many_classes(root / "c", label_map=False),
        }
        setup = f"code: {args.code}; child address space capped at {args.memory_cap / 1e9:g} GB"
        setup += f"; {' '.join(args.set)}" if args.set else ""
        if not args.markdown:
            print(setup)
        for name, path in cases.items():
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
            m = measure(args.code, path, int(args.memory_cap), env)
            secs = "-" if m["seconds"] is None else f"{m['seconds']:.2f} s"
            grew = "-" if m["grew_mb"] is None else f"{m['grew_mb']:.0f} MB"
            report.add(
                [name, f"{size:.1f} MB", secs, f"+{grew}", m["first"]],
                f"{name:<30} {size:5.1f} MB on disk  {secs:>8}  +{grew:>8}  {m['first']}",
            )
        report.end(setup + ".")


if __name__ == "__main__":
    main()

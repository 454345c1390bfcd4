"""Shapes: a tiny image set where hold-out NAUC alone picks predictions a user cannot act on.

    python bench/shapes.py [--budget 45] [--seeds 0 1 2] [--n 60] [--no-pretrained]
                           [--plain] [--keep DIR]

Draws ``--n`` 48x48 PNG images of circles, squares and triangles (random sizes,
positions and colours, Pillow) into three class folders, converts them with
``autodl format`` (35 % test: 39 training rows of 60) and runs ``autodl run`` on them
with ``--budget`` seconds, for each seed. Then prints, for every emitted prediction,
its time, learner, test NAUC and test top-1 accuracy, and the final ones (issue 14:
a one-epoch CNN scored a perfect hold-out NAUC with nearly equal probabilities for
every image, and was emitted although its top class was the same for all test images).
``--no-pretrained`` hides the `pretrained` extra from the engine (as on a machine
without it; the pretrained features solve these shapes at once); ``--plain`` draws on a
white background (only the shape has a random colour), which linear models find easier.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("circle", "square", "triangle")


HIDE = "import sys\nfor _m in {packages!r}:\n    sys.modules[_m] = None  # find_spec: None\n"


def draw(folder: Path, n: int, seed: int, plain: bool = False, side: int = 48) -> None:
    """``n`` images, a third of each class, in ``folder/<class>/``."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = CLASSES[i % 3]
        bg = (255, 255, 255) if plain else tuple(int(v) for v in rng.integers(0, 256, 3))
        fg = tuple(int(v) for v in rng.integers(0, 256, 3))
        img = Image.new("RGB", (side, side), bg)
        d = ImageDraw.Draw(img)
        r = int(rng.integers(6, side // 2 - 2))
        cx, cy = (int(v) for v in rng.integers(r, side - r, 2))
        if kind == "circle":
            d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        elif kind == "square":
            d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
        else:
            d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
        (folder / kind).mkdir(parents=True, exist_ok=True)
        img.save(folder / kind / f"{kind}_{i:03d}.png")


def one(seed: int, n: int, budget: float, work: Path, plain: bool, env: dict) -> dict:
    raw = work / f"shapes{seed}"
    draw(raw, n, seed, plain)
    out = work / "formatted"
    exe = str(Path(sys.executable).parent / "autodl")
    subprocess.run([exe, "format", str(raw), "--output", str(out), "--seed", str(seed)],
                   check=True, capture_output=True)  # fmt: skip
    run = work / f"run{seed}"
    subprocess.run([exe, "run", str(out / raw.name), "--output", str(run), "--time-budget",
                    str(budget), "--json", "--force"], check=True, capture_output=True, env=env)  # fmt: skip
    from autodl.formats.dataset import open_dataset
    from autodl.scoring.metrics import nauc_or_none

    solution = open_dataset(out / raw.name).solution
    truth = solution.argmax(axis=1)
    events = [json.loads(ln) for ln in (run / "run.jsonl").read_text().splitlines()]
    preds = [e for e in events if e["event"] == "prediction"]
    rows = []
    for k, e in enumerate(preds):
        p = np.loadtxt(run / "predictions" / f"{raw.name}.predict_{k}", ndmin=2)
        rows.append(
            {
                "t": e["t"],
                "learner": e.get("learner", "?"),
                "valid": e.get("valid_score"),
                "nauc": nauc_or_none(solution, p),
                "top1": float(np.mean(p.argmax(axis=1) == truth)),
            }
        )
    ended = max(e["t"] for e in events)
    return {"seed": seed, "rows": rows, "ended": ended}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=45.0)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--no-pretrained", action="store_true")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--keep", type=Path, default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if a.no_pretrained:
            from autodl.engine.pretrained import PACKAGES

            (Path(tmp) / "sitecustomize.py").write_text(HIDE.format(packages=PACKAGES))
            env["PYTHONPATH"] = os.pathsep.join([tmp, env.get("PYTHONPATH", "")])
        for seed in a.seeds:
            r = one(seed, a.n, a.budget, work, a.plain, env)
            print(f"# seed {seed}: ended at {r['ended']:.1f}s")
            for x in r["rows"]:
                v = "-" if x["valid"] is None else f"{x['valid']:.4f}"
                print(f"  {x['t']:6.2f}s  valid {v}  test NAUC {x['nauc']:.4f}  "
                      f"top-1 {x['top1']:.3f}  {x['learner']}")  # fmt: skip
            first, last = r["rows"][0], r["rows"][-1]
            print(f"  first top-1 {first['top1']:.3f}, final top-1 {last['top1']:.3f}, "
                  f"final NAUC {last['nauc']:.4f}")  # fmt: skip


if __name__ == "__main__":
    main()

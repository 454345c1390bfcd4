"""`autodl compare RUN_DIR...`: runs side by side, best ALC first, and one overlaid PNG."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from autodl.scoring import score_arrays, write_scores
from tests.conftest import run_autodl as autodl

SOLUTION = np.eye(3)[[0, 1, 2, 0, 1, 2, 0, 1]]


def _run(folder, *, seed, times, budget=60.0, dataset="digits", noise=0.0):
    """A run folder as `autodl run` leaves it (scores.json, run.json), without the engine."""
    rng = np.random.default_rng(seed)
    preds = [SOLUTION * (1 - noise) + rng.random(SOLUTION.shape) * noise for _ in times]
    result = score_arrays(SOLUTION, preds, times, budget, task=dataset)
    write_scores(result, folder)
    run = {
        "dataset": {"name": dataset, "test": len(SOLUTION)},
        "seed": seed,
        "predictions": [{"index": i, "elapsed": t} for i, t in enumerate(times)],
    }
    (folder / "run.json").write_text(json.dumps(run))
    return result


@pytest.mark.slow
def test_compare_prints_the_runs_best_alc_first_and_draws_them(tmp_path):
    slow = _run(tmp_path / "slow", seed=3, times=[20.0, 40.0])
    fast = _run(tmp_path / "fast", seed=7, times=[0.5, 5.0])
    png = tmp_path / "curves.png"
    proc = autodl("compare", tmp_path / "slow", tmp_path / "fast", "--output", png)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == [
        "#",
        "run",
        "dataset",
        "budget",
        "seed",
        "ALC",
        "NAUC",
        "first",
        "pred.",
        "preds",
    ]
    assert lines[1].split() == [
        "1",
        "fast",
        "digits",
        "60",
        "s",
        "7",
        f"{fast.alc:.4f}",
        "1.0000",
        "0.5",
        "s",
        "2",
    ]
    assert lines[2].split()[:2] == ["2", "slow"] and f"{slow.alc:.4f}" in lines[2]
    assert lines[3] == f"Curves: {png}"
    assert proc.stderr == ""  # one dataset: no warning
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size == (1000, 700)

    as_json = json.loads(autodl("compare", tmp_path / "slow", tmp_path / "fast", "--json").stdout)
    rows = as_json["runs"]
    assert [r["seed"] for r in rows] == [7, 3]
    assert rows[0]["alc"] == pytest.approx(fast.alc) and rows[1]["first_prediction"] == 20.0
    assert as_json["output"] is None


def test_compare_warns_when_the_runs_are_of_different_datasets(tmp_path):
    _run(tmp_path / "a", seed=0, times=[1.0], dataset="digits")
    _run(tmp_path / "b", seed=0, times=[1.0], dataset="letters")
    proc = autodl("compare", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0
    assert "not all of one dataset (digits, letters)" in proc.stderr


def test_compare_of_a_folder_that_is_not_a_scored_run_is_one_error(tmp_path):
    _run(tmp_path / "a", seed=0, times=[1.0])
    (tmp_path / "empty").mkdir()
    proc = autodl("compare", tmp_path / "a", tmp_path / "empty")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error:") and "empty holds no scores.json" in proc.stderr
    assert "Traceback" not in proc.stderr

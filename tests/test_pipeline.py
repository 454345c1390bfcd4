"""`autodl.run`: ingestion, scoring and the published files, with the real engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

import autodl
from autodl.errors import AutoDLError
from autodl.formats.samples import make_tabular

SCORE_KEYS = {"alc", "final_nauc", "nauc", "timestamps", "accuracy", "ignored_classes"}


@pytest.fixture(scope="module")
def tab_run(tmp_path_factory):
    root = make_tabular(tmp_path_factory.mktemp("ds") / "tab", unlabelled=True)
    out = tmp_path_factory.mktemp("run") / "out"
    return root, out, autodl.run(root, out, time_budget=8)


@pytest.mark.slow
def test_run_scores_and_publishes_everything(tab_run):
    _, out, report = tab_run
    assert report.success, report.ingestion.error
    assert report.score is not None
    assert 0.2 < report.score.final_nauc <= 1  # learnable signal: the engine beats a constant
    assert 0 < report.score.alc <= report.score.final_nauc
    for name in (
        "scores.json",
        "scores.txt",
        "learning-curve.png",
        "report.html",
        "run.json",
        "engine.log",
    ):
        assert (out / name).is_file(), name
    scores = json.loads((out / "scores.json").read_text())
    assert SCORE_KEYS <= set(scores)
    assert scores["alc"] == pytest.approx(report.score.alc)
    assert (out / "learning-curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert f"{report.score.alc:.4f}" in html
    assert "http://" not in html and "https://" not in html
    assert (out / "unlabelled" / "predictions.csv").is_file()


def test_the_run_can_be_rescored_from_its_folder(tab_run):
    root, out, report = tab_run
    again = autodl.score(autodl.open_dataset(root).solution_path, out / "predictions")
    assert again.alc == pytest.approx(report.score.alc, abs=1e-12)
    assert again.nauc == pytest.approx(report.score.nauc, abs=1e-12)


def test_an_existing_run_is_not_overwritten_without_force(tab_run, tmp_path):
    root, out, _ = tab_run
    with pytest.raises(AutoDLError, match="already holds files") as e:
        autodl.run(root, out, time_budget=2)
    assert "force=True" in e.value.hint and "output_dir=" in e.value.hint


@pytest.mark.slow
def test_force_replaces_the_previous_run(tmp_path):
    root = make_tabular(tmp_path / "tab")
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.json").write_text("{}")
    (out / "notes.txt").write_text("mine")
    report = autodl.run(
        root, out, time_budget=3, force=True, engine="tests.ingestion.engines:quick"
    )
    assert report.success
    assert json.loads((out / "scores.json").read_text())["alc"] == pytest.approx(report.score.alc)
    assert (out / "notes.txt").read_text() == "mine"  # only our own files are replaced


@pytest.mark.slow
def test_a_failed_run_still_reports_its_error(tmp_path):
    root = make_tabular(tmp_path / "tab")
    report = autodl.run(
        root, tmp_path / "out", time_budget=10, engine="tests.ingestion.engines:crash_after_one"
    )
    assert not report.success
    html = (tmp_path / "out" / "report.html").read_text()
    assert "exploded on purpose" in html
    assert report.score is not None and len(report.score.nauc) == 1
    assert json.loads((tmp_path / "out" / "run.json").read_text())["success"] is False


@pytest.mark.slow
def test_the_api_runs_from_a_plain_script_and_keeps_the_old_run_until_the_new_one_starts(
    tmp_path,
):
    """No `if __name__ == "__main__"` guard, and from stdin too: the engine's process
    never re-imports the caller's script (issue 13)."""
    import subprocess
    import sys

    from tests.service.conftest import ROOT

    root = make_tabular(tmp_path / "tab")
    out = tmp_path / "out"
    script = (
        "import autodl\n"
        "print('script ran')\n"
        f"r = autodl.run({str(root)!r}, {str(out)!r}, time_budget=3, force=True,"
        " engine='tests.ingestion.engines:quick')\n"
        "print('success', r.success, len(r.ingestion.predictions))\n"
    )
    (tmp_path / "script.py").write_text(script)
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    for args, stdin in (([str(tmp_path / "script.py")], None), (["-"], script)):
        proc = subprocess.run(
            [sys.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.count("script ran") == 1
        assert "success True 2" in proc.stdout
    # A run that cannot start (the engine does not import) leaves the earlier one in place.
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(AutoDLError):
        autodl.run(root, out, time_budget=3, force=True, engine="tests.no_such_module:run")
    assert sorted(p.name for p in out.iterdir()) == before and (out / "scores.json").is_file()


def test_run_json_says_how_the_run_ended_and_how_busy_the_machine_was(tab_run):
    _, out, report = tab_run
    data = json.loads((out / "run.json").read_text())
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["threads"] >= 1
    assert 0 <= machine["cpu_available"] <= 1 and machine["load_mean"] >= 0
    ing = report.ingestion
    if ing.converged:  # the tiny table converges well within 8 s on an idle machine
        assert data["finished"] == f"finished early: converged at {ing.converged_at:.1f} s"
        assert data["converged_at"] == ing.converged_at
    else:
        assert data["finished"] == "finished at the deadline" and data["converged_at"] is None
    page = (out / "report.html").read_text()
    assert data["finished"].capitalize() in page and "of the CPU free for the engine" in page


def test_a_job_gets_its_share_of_the_cores():
    from autodl.pipeline import job_threads

    assert job_threads(0, 1, 16) == 0  # one job at a time: every core
    assert job_threads(0, 4, 16) == 4  # four slots share sixteen cores
    assert job_threads(0, 3, 2) == 1  # never fewer than one thread
    assert job_threads(6, 4, 16) == 6  # AUTODL_THREADS wins when set


def test_a_solution_of_the_wrong_length_is_refused_before_the_engine_starts(tmp_path):
    root = make_tabular(tmp_path / "tab")
    solution = next(root.glob("*.solution"))
    lines = solution.read_text().splitlines()
    solution.write_text("\n".join(lines[1:]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(autodl.FormatError, match="rows but test/ holds") as e:
        autodl.run(root, out, time_budget=30)
    assert "Re-export the solution" in e.value.hint and "autodl check" in e.value.hint
    assert not out.exists()  # nothing ran, nothing written
    with pytest.raises(AutoDLError, match="must be positive") as e:
        autodl.run(make_tabular(tmp_path / "ok"), out, time_budget=0)
    assert e.value.hint


def test_raw_data_given_to_the_api_points_to_format_dataset(tmp_path):
    from tests.convert import inputs

    inputs.write_images(tmp_path / "shapes", per_class=3)
    with pytest.raises(autodl.FormatError, match="is raw data, not an AutoDL dataset") as e:
        autodl.run(tmp_path / "shapes", tmp_path / "out", time_budget=30)
    assert f"autodl.format_dataset({str(tmp_path / 'shapes')!r}, 'formatted')" in e.value.hint
    assert "autodl.run(result.dataset" in e.value.hint
    header, rows = inputs.tabular_rows(30)
    table = inputs.write_csv(tmp_path / "fish.csv", header, rows)
    with pytest.raises(autodl.FormatError) as e:
        autodl.run(table, tmp_path / "out", time_budget=30)
    assert "label='COLUMN'" in e.value.hint


def test_the_run_stores_its_worst_examples_and_seed_and_the_report_shows_them(tab_run):
    from autodl._examples import worst_mistakes

    root, out, report = tab_run
    index = json.loads((out / "examples" / "index.json").read_text())
    last = report.score.counted[-1]
    assert index["prediction"] == last and index == report.examples
    ds = autodl.open_dataset(root)
    prediction = np.loadtxt(out / "predictions" / f"{ds.name}.predict_{last}", ndmin=2)
    expected = worst_mistakes(ds.solution, prediction)
    assert [e["row"] for e in index["examples"]] == [m.row for m in expected]
    assert index["domain"] == "tabular" and all(e["text"] for e in index["examples"])
    html = (out / "report.html").read_text()
    if expected:
        assert "Examples the model gets most wrong" in html
    assert json.loads((out / "run.json").read_text())["seed"] == report.seed == 0

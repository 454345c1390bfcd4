"""The `autodl` command, run as a user runs it (a real process, real exit codes)."""

from __future__ import annotations

import json
import shutil

import pytest

from autodl.formats.samples import make_tabular
from tests.conftest import CHECK_JSON_KEYS, REFERENCE_SCORING, needs_shared_data, run_autodl

autodl = run_autodl


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    return make_tabular(tmp_path_factory.mktemp("cli") / "tab", unlabelled=True)


def test_check_prints_a_summary_and_exits_0(tab):
    proc = autodl("check", tab)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid AutoDL dataset" in proc.stdout
    assert "tabular" in proc.stdout


def test_check_json_has_the_documented_keys(tab):
    proc = autodl("check", tab, "--json")
    data = json.loads(proc.stdout)
    assert list(data) == CHECK_JSON_KEYS
    assert data["domain"] == "tabular" and data["problems"] == []
    assert data["train"]["count"] > 0 and data["unlabelled"]["count"] > 0


def test_check_names_the_file_of_a_problem_and_exits_1(tab, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tab, broken)
    solution = next(broken.glob("*.solution"))
    solution.write_text("\n".join(solution.read_text().splitlines()[:-2]) + "\n")
    proc = autodl("check", broken, "--json")
    assert proc.returncode == 1
    problems = json.loads(proc.stdout)["problems"]
    assert any(p["file"] and p["file"].endswith(".solution") for p in problems), problems
    human = autodl("check", broken)
    assert human.returncode == 1 and ".solution" in human.stdout


def test_check_of_something_that_is_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    proc = autodl("check", tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.strip() or proc.stderr.strip()


@needs_shared_data
def test_score_json_equals_the_official_figures():
    expected = json.loads((REFERENCE_SCORING / "expected.json").read_text())
    case = expected["multiclass-four-predictions"]
    folder = REFERENCE_SCORING / "multiclass-four-predictions"
    proc = autodl(
        "score",
        "--solution",
        folder / "solution" / "cityweather.solution",
        "--predictions",
        folder / "predictions",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["alc"] == pytest.approx(case["alc"], abs=1e-12)
    assert data["nauc"] == pytest.approx(case["official_scores_txt"]["nauc_scores"], abs=1e-12)
    assert data["accuracy"] == pytest.approx(case["official_scores_txt"]["accuracy"], abs=1e-12)
    human = autodl(
        "score",
        "--solution",
        folder / "solution" / "cityweather.solution",
        "--predictions",
        folder / "predictions",
    )
    assert f"ALC {case['alc']:.4f}" in human.stdout


def test_score_with_a_broken_prediction_is_one_clear_error(tab, tmp_path):
    preds = tmp_path / "preds"
    preds.mkdir()
    name = tab.name
    (preds / "start.txt").write_text(
        "ingestion_pid: 0\ntask_name: x\ntime_budget: 60\nstart_time: 100.0\n0: 101.0\n"
    )
    (preds / f"{name}.predict_0").write_text("0.5 oops\n")
    proc = autodl("score", "--solution", next(tab.glob("*.solution")), "--predictions", preds)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error:") and f"{name}.predict_0" in proc.stderr


@pytest.mark.slow
def test_run_shows_progress_and_prints_json(tab, tmp_path):
    out = tmp_path / "out"
    proc = autodl("run", tab, "--time-budget", 6, "--output", out, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["success"] and data["n_predictions"] >= 1
    assert 0 < data["alc"] <= 1
    assert "prediction 0 at" in proc.stderr and "test NAUC" in proc.stderr
    assert (out / "report.html").is_file()
    again = autodl("run", tab, "--time-budget", 2, "--output", out)
    assert again.returncode == 1 and "--force" in again.stderr
    assert "Running on" not in again.stderr  # refused before announcing a run


def test_run_of_a_missing_dataset_is_one_error_with_a_hint(tmp_path):
    proc = autodl("run", tmp_path / "nope", "--time-budget", 5, "--output", tmp_path / "o")
    assert proc.returncode == 1 and "does not exist" in proc.stderr
    assert "Hint: Check the path" in proc.stderr and "autodl run --help" in proc.stderr
    assert "Usage:" not in proc.stderr
    bad = autodl("run", tmp_path / "nope", "--time-budget", "soon")
    assert bad.returncode == 1 and "'soon' is not a valid float" in bad.stderr


@pytest.mark.slow
def test_sample_writes_a_valid_dataset(tmp_path):
    proc = autodl("sample", "digits", "--output", tmp_path)
    assert proc.returncode == 0, proc.stderr
    check = autodl("check", tmp_path / "digits", "--json")
    assert check.returncode == 0, check.stdout
    data = json.loads(check.stdout)
    assert data["domain"] == "image" and data["output_dim"] == 10
    assert data["train"]["count"] + data["test"]["count"] + data["unlabelled"]["count"] == 1797
    assert autodl("sample", "digits", "--output", tmp_path).returncode == 1  # no silent overwrite


def _iris_like(tmp_path):
    from tests.convert import inputs

    header, rows = inputs.tabular_rows(60)
    return inputs.write_csv(tmp_path / "fish.csv", header, rows)


def test_check_of_raw_data_says_what_it_is_and_the_format_command(tmp_path):
    from tests.convert import inputs

    inputs.write_images(tmp_path / "shapes", per_class=3)
    proc = autodl("check", tmp_path / "shapes")
    assert proc.returncode == 1
    assert "raw data, not an AutoDL dataset: a folder of 9 image files" in proc.stderr
    assert f"autodl format {tmp_path / 'shapes'} --output formatted" in proc.stderr
    assert "dataset: None" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_run_converts_raw_data_first(tmp_path):
    table = _iris_like(tmp_path)
    out = tmp_path / "run"
    proc = autodl("run", table, "--time-budget", 4, "--output", out)
    assert proc.returncode == 1 and "which column holds the labels?" in proc.stderr
    assert "--label COLUMN" in proc.stderr and not out.exists()
    proc = autodl("run", table, "--label", "species", "--time-budget", 4, "--output", out, "--json")
    assert proc.returncode == 0, proc.stderr
    assert "converting it first with `autodl format`'s defaults (label column 'species')" in (
        proc.stderr
    )
    assert json.loads(proc.stdout)["n_predictions"] >= 1
    assert (out / "formatted" / "fish" / "fish.data").is_dir()
    again = autodl("run", table, "--label", "species", "--time-budget", 2, "--output", out)
    assert again.returncode == 1 and "--force" in again.stderr

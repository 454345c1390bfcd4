"""The `autodl` command, run as a user runs it (a real process, real exit codes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


@pytest.mark.slow
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


@pytest.mark.slow
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


# ------------------------------------------------- a newcomer's walkthrough


def _env(**extra):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODL_")}
    return {**env, **extra}


def test_a_bad_setting_is_one_error_before_any_work_never_a_dataset_problem(tab, tmp_path):
    for variable, value in (("AUTODL_SEED", "x"), ("AUTODL_THREADS", "lots")):
        proc = autodl("check", tab, env=_env(**{variable: value}))
        assert proc.returncode == 1
        assert proc.stderr.startswith(f"Error: {variable}={value!r} is not valid"), proc.stderr
        assert "Hint: Set" in proc.stderr and "bug" not in proc.stderr
        assert "problem" not in proc.stdout + proc.stderr and "domain" not in proc.stdout
    out = tmp_path / "f9"
    proc = autodl(
        "format", _iris_like(tmp_path), "--label", "species", "--output", out,
        env=_env(AUTODL_SEED="x"),
    )  # fmt: skip
    assert proc.returncode == 1 and "AUTODL_SEED='x' is not valid" in proc.stderr
    assert "bug" not in proc.stderr and not out.exists()  # refused before converting
    helped = autodl("check", "--help", env=_env(AUTODL_SEED="x"))
    assert helped.returncode == 0 and "Usage:" in helped.stdout  # --help still answers


def test_the_api_check_raises_a_bad_setting_instead_of_reporting_it(tab):
    import subprocess
    import sys

    code = (
        "import autodl, sys\n"
        "try:\n    r = autodl.check_dataset(sys.argv[1])\n"
        "except autodl.AutoDLError as e:\n    print(type(e).__name__, e.message)\n"
        "else:\n    print('report', r.to_json()['problems'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tab)],
        env=_env(AUTODL_MAX_CLASSES="many"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.startswith("SettingError AUTODL_MAX_CLASSES='many'"), done


def _predictions(folder, task, n=1, solution=None):
    folder.mkdir()
    times = "".join(f"{k}: {101.0 + k}\n" for k in range(n))
    (folder / "start.txt").write_text(
        f"ingestion_pid: 0\ntask_name: {task}\ntime_budget: 60\nstart_time: 100.0\n{times}"
    )
    for k in range(n):
        (folder / f"{task}.predict_{k}").write_text(solution.read_text())
    return folder


def test_score_of_another_tasks_predictions_names_both_tasks(tab, tmp_path):
    solution = next(tab.glob("*.solution"))
    preds = _predictions(tmp_path / "preds", "iris", solution=solution)
    proc = autodl("score", "--solution", solution, "--predictions", preds)
    assert proc.returncode == 1 and "ALC" not in proc.stdout
    assert f"Error: {preds} holds no {tab.name}.predict_* file" in proc.stderr
    assert f"from the solution file's name {solution.name}" in proc.stderr
    assert "it holds predictions of 'iris'" in proc.stderr and "Hint:" in proc.stderr
    # the task's own predictions score; a run that made none is an ALC of 0, not an error
    ok = autodl("score", "--solution", solution, "--predictions",
                _predictions(tmp_path / "own", tab.name, solution=solution))  # fmt: skip
    assert ok.returncode == 0 and "soft accuracy" in ok.stdout, ok.stderr
    none = autodl("score", "--solution", solution, "--predictions",
                  _predictions(tmp_path / "none", tab.name, n=0))  # fmt: skip
    assert none.returncode == 0 and "no prediction within the time budget" in none.stdout


def test_run_refuses_a_solution_of_the_wrong_length_before_training(tab, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tab, broken)
    solution = next(broken.glob("*.solution"))
    lines = solution.read_text().splitlines()
    solution.write_text("\n".join(lines[1:]) + "\n")
    out = tmp_path / "out"
    proc = autodl("run", broken, "--time-budget", 5, "--output", out)
    assert proc.returncode == 1 and "Running on" not in proc.stderr
    assert f"{solution.name} has {len(lines) - 1} rows but test/ holds {len(lines)} records" in (
        proc.stderr
    )
    assert "Hint: Re-export the solution" in proc.stderr and "autodl check" in proc.stderr
    assert not out.exists()


def test_a_time_budget_of_0_is_refused_first_with_a_hint(tab, tmp_path):
    proc = autodl("run", tab, "--time-budget", 0, "--output", tmp_path / "o")
    assert proc.returncode == 1 and "Running on" not in proc.stderr
    assert "the time budget must be positive, got 0 s" in proc.stderr
    assert "Hint: Give a number of seconds above 0" in proc.stderr


def test_a_missing_option_or_argument_gets_the_usage_not_the_path_hint(tab):
    proc = autodl("run", tab, "--time-budget", 30)
    assert proc.returncode == 1 and "Missing option '--output'" in proc.stderr
    assert "run [OPTIONS] PATH --output DIRECTORY" in proc.stderr
    assert "autodl run --help" in proc.stderr and "Check the path" not in proc.stderr
    proc = autodl("check")
    assert proc.returncode == 1 and "Missing argument 'PATH'" in proc.stderr
    assert "check [OPTIONS] PATH`" in proc.stderr and "Check the path" not in proc.stderr
    proc = autodl("sample", "digits")
    assert "Missing option '--output'" in proc.stderr and "Check the path" not in proc.stderr


def test_token_create_elsewhere_names_the_data_folder_and_creates_none(tmp_path):
    proc = autodl("token", "create", "alice", cwd=tmp_path, env=_env())
    assert proc.returncode == 1 and "no user called 'alice'" in proc.stderr
    assert f"the data folder {tmp_path / 'autodl-data'}" in proc.stderr
    assert "commands run from another folder use another data folder" in proc.stderr
    assert "Hint: Create it first" in proc.stderr and "AUTODL_DATA_DIR" in proc.stderr
    assert not (tmp_path / "autodl-data").exists()


def test_user_create_errors_have_a_hint_and_create_no_data_folder(tmp_path):
    import subprocess
    import sys

    def create(name, password):
        return subprocess.run(
            [sys.executable, "-m", "autodl", "user", "create", name],
            input=password + "\n", cwd=tmp_path, env=_env(), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip

    short = create("alice", "short")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    assert "Hint: Run `autodl user create alice` again" in short.stderr
    bad = create("a b", "password123")
    assert bad.returncode == 1 and "Hint: Choose a name" in bad.stderr
    assert not (tmp_path / "autodl-data").exists()


def test_serve_on_a_port_in_use_is_one_error_before_the_banner(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = autodl(
            "serve", "--port", port, env=_env(AUTODL_DATA_DIR=str(tmp_path / "d")), timeout=60
        )
    assert proc.returncode == 1, proc.stderr
    assert f"Error: port {port} of 127.0.0.1 is already in use" in proc.stderr
    assert "Hint: Choose another port" in proc.stderr
    assert "AutoDL Self-Service on" not in proc.stderr and "Errno" not in proc.stderr


def test_the_apis_label_field_words_become_the_label_option():
    from autodl.cli.client import _in_cli_words
    from autodl.errors import AutoDLError

    said = _in_cli_words(
        AutoDLError(
            "fish.csv has no column 'kind' (the 'label' field)", "Check the 'label' field."
        ),
        Path("fish.zip"),
    )
    assert "the 'label' field" not in said.message + said.hint
    assert "(--label)" in said.message and "--label" in said.hint


def test_a_run_without_a_prediction_says_so_not_that_there_is_no_solution(tab, tmp_path, capsys):
    """Found by a stranger's trial: a failed run printed "no solution, so no score"
    beside a dataset that has one."""
    import autodl as api
    from autodl.cli.run import _print_run

    report = api.run(
        tab, tmp_path / "out", time_budget=3, engine="tests.ingestion.engines:crash_at_once"
    )
    assert not report.success and report.score is None
    _print_run(report)
    said = capsys.readouterr().out
    assert "0 prediction(s); no prediction to score." in said and "no solution" not in said

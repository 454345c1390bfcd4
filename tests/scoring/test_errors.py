"""Bad prediction and solution files give errors that name the file, the line and what to do."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import ScoringError
from autodl.scoring import score, score_arrays
from autodl.scoring.metrics import read_array
from tests.scoring._folders import one_hot, write_run

SOLUTION = one_hot(np.array([0, 1, 2, 1, 0]), 3)


@pytest.fixture
def run(tmp_path):
    good = SOLUTION * 0.8 + 0.1
    return write_run(tmp_path, SOLUTION, [good, good, good], [1.0, 5.0, 9.0], task="cityweather")


def test_wrong_number_of_rows(run):
    solution, folder = run
    (folder / "cityweather.predict_2").write_text("0.1 0.2 0.7\n" * 4)
    with pytest.raises(ScoringError) as err:
        score(solution, folder)
    assert str(err.value) == (
        "cityweather.predict_2: 4 rows but the solution has 5. "
        "Each prediction needs one row per test record, in record order."
    )


def test_wrong_number_of_columns(run):
    solution, folder = run
    (folder / "cityweather.predict_0").write_text("0.5 0.5\n" * 5)
    with pytest.raises(
        ScoringError, match=r"cityweather.predict_0: 2 columns but the solution has 3 classes"
    ):
        score(solution, folder)


def test_nan_names_line_and_column(run):
    solution, folder = run
    (folder / "cityweather.predict_1").write_text(
        "0.1 0.2 0.7\n" * 3 + "0.1 nan 0.7\n" + "0.1 0.2 0.7\n"
    )
    with pytest.raises(
        ScoringError, match=r"cityweather.predict_1: line 4, column 2: nan is not a finite number"
    ):
        score(solution, folder)


def test_infinity_is_refused_in_memory_too():
    prediction = SOLUTION.copy()
    prediction[2, 0] = np.inf
    with pytest.raises(ScoringError, match=r"prediction 0: row 3, column 1: inf is not a finite"):
        score_arrays(SOLUTION, [prediction], [1.0], 60)


def test_text_in_a_prediction_names_line_and_column(run):
    solution, folder = run
    (folder / "cityweather.predict_1").write_text("0.1 0.2 0.7\n0.1 0,2 0.7\n")
    with pytest.raises(
        ScoringError, match=r"cityweather.predict_1: line 2, column 2: '0,2' is not a number"
    ):
        score(solution, folder)


def test_ragged_lines_are_named(tmp_path):
    path = tmp_path / "x.predict_0"
    path.write_text("0.1 0.2 0.7\n\n0.1 0.2 0.7\n0.1 0.9\n")
    with pytest.raises(ScoringError, match=r"x.predict_0: line 4 has 2 values but line 1 has 3"):
        read_array(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "x.predict_0").write_text("")
    with pytest.raises(ScoringError, match="x.predict_0: the file holds no numbers"):
        read_array(tmp_path / "x.predict_0")
    with pytest.raises(ScoringError, match="x.predict_9: cannot be read"):
        read_array(tmp_path / "x.predict_9")


def test_bad_start_txt_line_is_named(run):
    solution, folder = run
    text = (folder / "start.txt").read_text().replace("1: ", "1 = ")
    (folder / "start.txt").write_text(text)
    with pytest.raises(ScoringError, match=r"start.txt, line 6: expected 'key: value'"):
        score(solution, folder)


def test_solution_must_be_zeros_and_ones(tmp_path):
    solution, folder = write_run(tmp_path, SOLUTION, [SOLUTION], [1.0], task="t")
    solution.write_text("1 0 0\n0 0.5 0.5\n")
    with pytest.raises(ScoringError, match=r"t.solution: line 2, column 2: 0.5 is not 0 or 1"):
        score(solution, folder)


def test_label_names_must_match_the_columns():
    with pytest.raises(ScoringError, match="2 label names for a solution of 3 columns"):
        score_arrays(SOLUTION, [], [], 60, label_names=["a", "b"])


def test_missing_folder_and_start_file(tmp_path):
    with pytest.raises(ScoringError, match="no such prediction folder"):
        score(SOLUTION, tmp_path / "nope", 60)
    with pytest.raises(ScoringError, match="no start.txt"):
        score(SOLUTION, tmp_path, 60)

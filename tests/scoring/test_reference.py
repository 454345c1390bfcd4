"""Our scorer against the official AutoDL scorer's figures on the reference cases."""

from __future__ import annotations

import json

import pytest

from autodl.scoring import read_scores_txt, score, write_scores
from autodl.scoring.metrics import accuracy, nauc, read_array
from tests.conftest import REFERENCE_SCORING, needs_shared_data

CASES = [
    "multiclass-four-predictions",
    "multilabel-three-predictions",
    "binary-prediction-at-half-second",
]
TOL = 1e-12

pytestmark = [needs_shared_data, pytest.mark.reference]


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((REFERENCE_SCORING / "expected.json").read_text())


def _solution(case: str):
    return next((REFERENCE_SCORING / case / "solution").glob("*.solution"))


@pytest.mark.parametrize("case", CASES)
def test_scores_equal_the_official_figures(case, expected, tmp_path):
    official = expected[case]["official_scores_txt"]
    result = score(_solution(case), REFERENCE_SCORING / case / "predictions")
    assert result.task == expected[case]["task"]
    assert result.time_budget == expected[case]["time_budget"]
    assert result.alc == pytest.approx(official["score"], abs=TOL, rel=0)
    assert result.final_nauc == pytest.approx(expected[case]["final_nauc"], abs=TOL, rel=0)
    assert result.duration == pytest.approx(official["Duration"], abs=TOL, rel=0)
    assert result.timestamps == pytest.approx(official["timestamps"], abs=TOL, rel=0)
    assert result.nauc == pytest.approx(official["nauc_scores"], abs=TOL, rel=0)
    if "accuracy" in official:
        assert result.accuracy == pytest.approx(official["accuracy"], abs=TOL, rel=0)
    else:
        assert result.accuracy is None
    assert result.late == [] and result.ignored_classes == []


@pytest.mark.parametrize("case", CASES)
def test_written_scores_txt_holds_the_official_values(case, expected, tmp_path):
    official = expected[case]["official_scores_txt"]
    write_scores(score(_solution(case), REFERENCE_SCORING / case / "predictions"), tmp_path)
    ours = read_scores_txt(tmp_path / "scores.txt")
    assert set(ours) == set(official)
    for key, value in official.items():
        assert ours[key] == pytest.approx(value, abs=TOL, rel=0)


@pytest.mark.parametrize("case", CASES)
def test_official_scores_txt_is_readable(case, expected, tmp_path):
    """The scores.txt printed by the official program (NumPy 2: np.float64(...)) parses."""
    text = (REFERENCE_SCORING / case / "official-output.txt").read_text()
    (tmp_path / "scores.txt").write_text(text.split("---- scores.txt\n", 1)[1])
    # Printed with repr(), so the parsed floats are the official ones exactly.
    assert read_scores_txt(tmp_path / "scores.txt") == expected[case]["official_scores_txt"]


def test_metric_functions_alone(expected):
    case = "multiclass-four-predictions"
    solution = read_array(_solution(case))
    prediction = read_array(REFERENCE_SCORING / case / "predictions" / "cityweather.predict_3")
    official = expected[case]["official_scores_txt"]
    assert nauc(solution, prediction) == pytest.approx(official["nauc_scores"][3], abs=TOL, rel=0)
    assert accuracy(solution, prediction) == pytest.approx(official["accuracy"][3], abs=TOL, rel=0)

"""ScoreResult: JSON, scores.txt in the official format, classes left out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autodl.scoring import ScoreResult, read_scores_txt, score, score_arrays, write_scores
from tests.scoring._folders import one_hot, write_run


@pytest.fixture
def result() -> ScoreResult:
    rng = np.random.default_rng(4)
    solution = one_hot(rng.integers(0, 3, 60), 4)  # class 3 never occurs
    predictions = [rng.random((60, 4)) + solution * w for w in (0.2, 0.6, 1.5)]
    return score_arrays(
        solution,
        predictions,
        [0.5, 20.0, 70.0],
        60,
        label_names=["cat", "dog", "owl", "yak"],
        task="pets",
    )


def test_ignored_constant_columns_are_reported(result):
    assert result.ignored_classes == [3]
    assert result.ignored_class_names == ["yak"]
    assert result.ignored_reasons == ["constant in the solution (no positive example)"]
    assert result.auc_per_class[3] is None and all(0 <= a <= 1 for a in result.auc_per_class[:3])
    data = result.to_json()
    assert data["ignored_classes"] == [3] and data["ignored_class_names"] == ["yak"]


def test_to_json_has_the_contract_keys_and_is_json(result):
    data = json.loads(json.dumps(result.to_json()))
    for key in ("alc", "final_nauc", "nauc", "timestamps", "accuracy", "ignored_classes", "late"):
        assert key in data
    assert data["late"] == [2] and data["n_predictions"] == 3
    assert data["final_nauc"] == result.nauc[1]
    assert data["accuracy"] == result.accuracy and len(data["accuracy"]) == 3
    assert ScoreResult.from_json(data) == result


def test_multilabel_has_no_accuracy():
    solution = np.array([[1, 1], [0, 1], [1, 0], [0, 0]])
    result = score_arrays(solution, [solution * 0.7], [3.0], 60)
    assert result.accuracy is None and result.to_json()["accuracy"] is None


def test_scores_txt_round_trip(result, tmp_path):
    txt, js, _curves = write_scores(result, tmp_path)
    text = txt.read_text()
    assert text.splitlines()[0] == f"score: {result.alc!r}"
    assert "np.float64" not in text and "task" not in text
    assert [line.split(":")[0] for line in text.splitlines()] == [
        "score",
        "Duration",
        "timestamps",
        "nauc_scores",
        "accuracy",
    ]
    back = read_scores_txt(txt)
    assert back == {
        "score": result.alc,
        "Duration": result.duration,
        "timestamps": result.timestamps,
        "nauc_scores": result.nauc,
        "accuracy": result.accuracy,
    }
    assert json.loads(js.read_text()) == result.to_json()


def test_scores_txt_without_predictions(tmp_path):
    solution = one_hot(np.array([0, 1]), 2)
    result = score_arrays(solution, [], [], 60)
    assert result.alc == 0.0 and result.final_nauc is None
    txt, *_ = write_scores(result, tmp_path)
    assert (
        txt.read_text()
        == "score: 0.0\nDuration: 0\ntimestamps: []\nnauc_scores: []\naccuracy: []\n"
    )


def test_folder_and_arrays_agree(tmp_path):
    rng = np.random.default_rng(9)
    solution = one_hot(rng.integers(0, 5, 300), 5)
    predictions = [np.round(rng.random((300, 5)) + solution * w, 3) for w in (0.1, 0.5, 2.0)]
    sol_path, folder = write_run(tmp_path, solution, predictions, [1.5, 30.0, 250.0], task="mini")
    from_folder = score(sol_path, folder)
    from_arrays = score_arrays(solution, predictions, from_folder.timestamps, 300, task="mini")
    assert from_folder == from_arrays

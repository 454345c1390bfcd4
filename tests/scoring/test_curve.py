"""Time transform, ALC, late predictions, start.txt / end.txt and prediction folders."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autodl.errors import ScoringError
from autodl.scoring import score, score_arrays
from autodl.scoring.curve import (
    alc,
    late_predictions,
    read_end_file,
    read_prediction_folder,
    read_start_file,
    transform_time,
)
from tests.scoring._folders import START, one_hot, write_run


def test_transform_time():
    assert transform_time(0.0, 300) == 0.0
    assert transform_time(300.0, 300) == 1.0
    assert transform_time(60.0, 300) == pytest.approx(math.log(2) / math.log(6))
    assert transform_time(np.array([0.0, 300.0]), 300).tolist() == [0.0, 1.0]


def test_alc_is_the_step_area_held_to_the_end():
    x1, x2 = transform_time(10.0, 100), transform_time(50.0, 100)
    assert alc([10.0, 50.0], [0.4, 0.8], 100) == pytest.approx((x2 - x1) * 0.4 + (1 - x2) * 0.8)
    assert alc([], [], 100) == 0.0
    assert alc([0.0], [0.7], 100) == 0.7
    assert alc([100.0], [0.7], 100) == 0.0  # a prediction at T holds for no time


def test_late_prediction_is_excluded_and_listed():
    assert late_predictions([10.0, 99.0, 100.0, 100.5], 100) == [3]
    assert alc([10.0, 150.0], [0.4, 0.9], 100) == alc([10.0], [0.4], 100)
    solution = one_hot(np.array([0, 1, 0, 1]), 2)
    result = score_arrays(solution, [np.full((4, 2), 0.5), solution], [10.0, 150.0], 100)
    assert result.late == [1]
    assert result.final_nauc == 0.0  # the last prediction that counts
    assert result.nauc == [0.0, 1.0]  # every prediction is still scored and listed
    assert result.alc == 0.0
    assert result.duration == 150.0
    all_late = score_arrays(solution, [solution], [101.0], 100)
    assert all_late.alc == 0.0 and all_late.final_nauc is None and all_late.auc_per_class == []


def test_predictions_must_be_in_time_order():
    solution = one_hot(np.array([0, 1]), 2)
    with pytest.raises(ScoringError, match="before the previous prediction"):
        score_arrays(solution, [solution, solution], [20.0, 10.0], 100)
    with pytest.raises(ScoringError, match="before the start"):
        alc([-1.0], [0.5], 100)


def test_start_file_is_parsed_like_yaml(tmp_path):
    path = tmp_path / "start.txt"
    path.write_text(
        "ingestion_pid: 31315\ntask_name: mini\ntime_budget: 300\n"
        "start_time: 1557269921.7939095\n\n# comment\n0: 1557269953.5586617\n1: 1557269958\n"
    )
    info = read_start_file(path)
    assert info == {
        "ingestion_pid": 31315,
        "task_name": "mini",
        "time_budget": 300,
        "start_time": 1557269921.7939095,
        0: 1557269953.5586617,
        1: 1557269958,
    }


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("start_time: 1.5\n0 1750000002.6\n", 2, "expected 'key: value'"),
        ("start_time: 1.5\n0: soon\n", 2, "time of prediction 0"),
        ("start_time: 1.5\n0: 2.0\n0: 3.0\n", 3, "appears twice"),
        ("task_name: x\nstart_time 1.5\n", 2, "expected 'key: value'"),
    ],
)
def test_bad_start_file_names_the_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "start.txt"
    path.write_text(text)
    with pytest.raises(ScoringError, match=f"start.txt, line {line}: .*{fragment}"):
        read_start_file(path)


def test_start_file_needs_a_start_time(tmp_path):
    (tmp_path / "start.txt").write_text("task_name: x\n0: 12.5\n")
    with pytest.raises(ScoringError, match="start.txt: no 'start_time"):
        read_start_file(tmp_path / "start.txt")


def test_end_file(tmp_path):
    (tmp_path / "end.txt").write_text(
        "ingestion_duration: 212.7139\ningestion_success: 1\nend_time: 1750000212.8389\n"
    )
    assert read_end_file(tmp_path / "end.txt") == {
        "ingestion_duration": 212.7139,
        "ingestion_success": 1,
        "end_time": 1750000212.8389,
    }


def test_prediction_folder(tmp_path):
    solution = one_hot(np.array([0, 1, 2, 1]), 3)
    _, folder = write_run(
        tmp_path, solution, [solution, solution], [2.4917, 14.2731], task="cityweather"
    )
    info = read_prediction_folder(folder)
    assert info.task == "cityweather"
    assert info.time_budget == 300.0
    assert info.start_time == START
    # The same float subtraction as the official scorer: not the decimal written.
    assert info.timestamps == [2.4916999340057373, 14.273099899291992]
    assert [p.name for p in info.files] == ["cityweather.predict_0", "cityweather.predict_1"]
    assert info.end["ingestion_success"] == 1


def test_budget_argument_overrides_start_file(tmp_path):
    solution = one_hot(np.array([0, 1, 2, 1]), 3)
    sol_path, folder = write_run(tmp_path, solution, [solution], [30.0], time_budget=None)
    with pytest.raises(ScoringError, match="no 'time_budget' line"):
        score(sol_path, folder)
    assert score(sol_path, folder, time_budget=60).time_budget == 60.0
    assert score(sol_path, folder, time_budget=20).late == [0]


def test_missing_time_or_gap_in_numbering(tmp_path):
    solution = one_hot(np.array([0, 1]), 2)
    sol_path, folder = write_run(tmp_path, solution, [solution, solution], [1.0, 2.0])
    (folder / "start.txt").write_text(f"time_budget: 60\nstart_time: {START}\n0: {START + 1}\n")
    with pytest.raises(ScoringError, match="no time for prediction 1"):
        score(sol_path, folder)
    (folder / "demo.predict_1").rename(folder / "demo.predict_2")
    with pytest.raises(ScoringError, match="demo.predict_1 is missing"):
        score(sol_path, folder)

"""Metrics: tied ranks, AUC, NAUC, accuracy, against the official algorithm and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from autodl.errors import ScoringError
from autodl.scoring.metrics import (
    accuracy,
    auc_per_class,
    is_multiclass,
    nauc,
    running_mean,
    tiedrank,
    valid_columns,
)
from tests.scoring._folders import one_hot


def official_tiedrank_loop(a: np.ndarray) -> np.ndarray:
    """A plain loop transcription of the official libscores.tiedrank algorithm (reference only)."""
    m = len(a)
    order = a.argsort()
    ranked = a[order]
    r = np.arange(m, dtype=float) + 1
    if len(np.unique(a)) != m:
        start, current = 0, ranked[0]
        for k in range(1, m):
            if ranked[k] == current:
                r[start : k + 1] = r[k - 1] * (k - start) / (k - start + 1) + r[k] / (k - start + 1)
            else:
                start, current = k, ranked[k]
    out = np.empty(m)
    out[order] = r
    return out


def official_mvmean(values) -> float:
    """The official running mean, transcribed with functools.reduce."""
    from functools import reduce

    return reduce(
        lambda i, j: (0, (j[0] / (j[0] + 1.0)) * i[1] + (1.0 / (j[0] + 1)) * j[1]),
        enumerate(values),
    )[1]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("levels", [3, 20, 1000, None])
def test_tiedrank_is_bit_identical_to_the_official_loop(seed, levels):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    a = rng.random(n) if levels is None else rng.integers(0, levels, n) / levels
    assert np.array_equal(tiedrank(a), official_tiedrank_loop(a))


def test_tiedrank_big_groups_use_the_scalar_path_identically():
    # Few huge groups (constant, two-valued) run the per-group Python loop.
    a = np.r_[np.zeros(5000), np.ones(3000), np.arange(40.0)]
    assert np.array_equal(tiedrank(a), official_tiedrank_loop(a))
    # Many pairs (vectorised steps) then three long groups (scalar steps).
    a = np.r_[np.zeros(500), np.ones(400), np.full(300, 2.0), np.repeat(np.arange(3.0, 103.0), 2)]
    a = np.random.default_rng(5).permutation(a)
    assert np.array_equal(tiedrank(a), official_tiedrank_loop(a))
    a = np.random.default_rng(6).integers(0, 100, 50_000) / 100.0  # 100 groups of ~500
    assert np.array_equal(tiedrank(a), official_tiedrank_loop(a))
    assert np.array_equal(tiedrank(np.full(777, 0.3)), official_tiedrank_loop(np.full(777, 0.3)))


def test_tiedrank_differs_from_the_exact_average_where_the_official_does():
    a = np.zeros(1000)
    ours = tiedrank(a)
    assert np.all(ours == official_tiedrank_loop(a))
    assert np.all(ours == ours[0]) and ours[0] == pytest.approx(500.5, abs=1e-9)


@pytest.mark.parametrize("kind", ["quicksort", "mergesort", "heapsort"])
def test_tie_ranks_do_not_depend_on_the_sort_order(kind):
    rng = np.random.default_rng(7)
    a = rng.integers(0, 50, 4000) / 50.0
    order = a.argsort(kind=kind)
    ranks = np.empty(a.size)
    ranks[order] = np.sort(tiedrank(a))  # same value per tie group, whatever order within it
    assert np.array_equal(ranks, tiedrank(a))
    shuffled = rng.permutation(a.size)
    assert np.array_equal(tiedrank(a[shuffled]), tiedrank(a)[shuffled])


def test_tiedrank_of_a_matrix_ranks_each_column():
    rng = np.random.default_rng(3)
    m = rng.integers(0, 5, (200, 6)) / 5.0
    expected = np.column_stack([official_tiedrank_loop(m[:, j]) for j in range(6)])
    assert np.array_equal(tiedrank(m), expected)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_equals_scikit_learn(seed, ties):
    rng = np.random.default_rng(seed)
    n, c = int(rng.integers(20, 2000)), int(rng.integers(1, 8))
    solution = (rng.random((n, c)) < rng.uniform(0.05, 0.6, c)).astype(float)
    solution[0], solution[1] = 1, 0  # every column has both classes
    prediction = rng.random((n, c)) + solution * rng.uniform(0, 0.5, c)
    if ties:
        prediction = np.round(prediction, 1)
    aucs = auc_per_class(solution, prediction)
    for k in range(c):
        assert aucs[k] == pytest.approx(roc_auc_score(solution[:, k], prediction[:, k]), abs=1e-9)
    assert nauc(solution, prediction) == pytest.approx(2 * official_mvmean(aucs) - 1, abs=0)


def test_constant_prediction_gives_zero_and_perfect_gives_one():
    solution = one_hot(np.array([0, 1, 2, 1, 0, 2, 2]), 3)
    assert nauc(solution, np.full(solution.shape, 0.25)) == 0.0
    assert nauc(solution, solution * 0.8 + 0.1) == 1.0
    assert nauc(solution, 1 - solution) == -1.0


def test_valid_columns_follow_the_official_tolerance():
    solution = np.zeros((10, 4))
    solution[:, 1] = 1
    solution[:5, 2] = 1
    solution[0, 3] = 1
    assert valid_columns(solution).tolist() == [2, 3]
    big = np.ones((200_000, 1))
    big[0] = 0  # one negative in 200k: within np.isclose(col_sum, n), as officially
    assert valid_columns(big).tolist() == []


def test_left_out_columns_are_nan_and_do_not_count():
    solution = one_hot(np.array([0, 1, 0, 1, 0]), 3)  # class 2 never occurs
    prediction = np.column_stack([solution[:, 0], solution[:, 1], np.arange(5.0)])
    aucs = auc_per_class(solution, prediction)
    assert aucs[:2].tolist() == [1.0, 1.0] and np.isnan(aucs[2])
    assert nauc(solution, prediction) == 1.0


def test_all_columns_constant_is_an_error():
    with pytest.raises(ScoringError, match="every column is constant"):
        nauc(np.ones((4, 2)), np.random.default_rng(0).random((4, 2)))


def test_running_mean_matches_the_official_reduce():
    values = np.random.default_rng(1).random(37)
    assert running_mean(values) == official_mvmean(values)
    assert running_mean([0.3]) == 0.3


def test_accuracy_is_the_soft_official_accuracy():
    solution = one_hot(np.array([0, 1, 1]), 2)
    prediction = np.array([[0.9, 0.1], [0.4, 0.6], [-1.0, 3.0]])
    soft = (0.9 / (1 + 1e-15) + 0.6 / (1 + 1e-15) + 3.0 / (4 + 1e-15)) / 3
    assert accuracy(solution, prediction) == pytest.approx(soft, abs=1e-15)


def test_is_multiclass_needs_one_hot_rows():
    assert is_multiclass(one_hot(np.array([0, 1, 2]), 3))
    assert not is_multiclass(np.array([[1, 1, 0], [0, 1, 0]]))
    assert not is_multiclass(np.array([[0, 0], [0, 1]]))

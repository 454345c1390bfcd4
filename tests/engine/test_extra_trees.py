"""`ExtraTrees`: one multi-output forest for multi-label, grown by doubling, memory-bounded."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.engine import extra_trees, folds
from autodl.engine.extra_trees import ExtraTrees
from autodl.engine.learner import Features
from autodl.engine.tabular import at_scale, flat, later, plan
from autodl.formats.types import Arrays

from ._data import make


def _data(n=120, **kw):
    spec, x, y = make("tabular", n, output_dim=5, **kw)
    return spec, Arrays(np.arange(n), x, y), x


def test_multilabel_is_one_multi_output_forest_and_a_constant_label_gets_its_rate():
    _, data, x = _data(multilabel=True, absent=True)
    y = data.labels.copy()
    y[:, 0] = 1.0  # a label every training row holds
    data = Arrays(data.ids, data.x, y)
    et = ExtraTrees(features=Features("flat", flat), n_trees=20).fit(data, 30.0)
    assert et._forest.n_outputs_ == 3  # the learnable labels, in one forest
    p = et.predict_proba(x)
    assert p.shape == (len(x), 5)
    np.testing.assert_allclose(p[:, 0], 1 - 1e-3)  # its rate (clipped as every prior)
    assert np.all(p[:, 4] == p[0, 4]) and p[0, 4] <= 1e-3  # never positive
    assert np.ptp(p[:, 1]) > 0.1  # learnt


def test_trees_grow_by_calls_until_n_trees_as_one_forest_grown_at_once():
    _, data, x = _data()
    et = ExtraTrees(features=Features("flat", flat), n_trees=40, seed=1)
    counts = []
    while not et.done:
        et.fit(data, 0.0)  # one step per call
        counts.append(et._trees)
        np.testing.assert_allclose(et.predict_proba(x).sum(axis=1), 1.0, atol=1e-6)
    assert counts == sorted(set(counts)) and counts[-1] == 40 and len(counts) > 2
    # warm start adds trees: the same forest as one grown in one call, seed for seed
    whole = ExtraTrees(features=Features("flat", flat), n_trees=40, seed=1).fit(data, 60.0)
    assert whole.done
    np.testing.assert_allclose(whole.predict_proba(x), et.predict_proba(x))


def test_a_call_stops_near_its_time():
    _, data, _ = _data(2000)
    et = ExtraTrees(features=Features("flat", flat), n_trees=100_000)
    et.fit(data, 0.0)  # one step: one tree per thread
    assert 1 <= et._trees <= 16
    et.fit(data, 0.5)
    assert et._trees < 100_000 and not et.done


def test_memory_bound_makes_leaves_larger_then_grows_fewer_trees(monkeypatch):
    et = ExtraTrees(features=Features("flat", flat), n_trees=300)
    per_tree = extra_trees.tree_bytes(100_000, 1, 14, 2)
    monkeypatch.setattr(extra_trees, "FOREST_MAX", 1e18)  # the machine's share decides
    monkeypatch.setattr(extra_trees.data_, "memory_budget", lambda: 2 * 50 * per_tree)
    leaf, trees = et._size(100_000, 14, 2)  # room for 50 trees of leaf 1: leaves of 2
    assert leaf == 2 and trees == 100
    monkeypatch.setattr(extra_trees.data_, "memory_budget", lambda: 2 * 1000 * per_tree)
    assert et._size(100_000, 14, 2) == (1, 300)
    # k-fold copies hold their forests at once: each gets its share of the room
    monkeypatch.setattr(extra_trees.data_, "memory_budget", lambda: 2 * 50 * per_tree)
    et.shared = {"copies": 2}  # room for 25 trees of leaf 1 each: leaves of 4
    assert et._size(100_000, 14, 2) == (4, 100)
    # whatever the machine, at most FOREST_MAX bytes (here room for 50 trees of leaf 1)
    monkeypatch.setattr(extra_trees.data_, "memory_budget", lambda: 2 * 1000 * per_tree)
    monkeypatch.setattr(extra_trees, "FOREST_MAX", 50 * per_tree)
    et.shared = None
    assert et._size(100_000, 14, 2) == (2, 100)


def test_k_fold_copies_know_how_many_share_the_memory():
    spec, data, x = _data(60)
    f = folds.Folds(
        base=ExtraTrees(features=Features("flat", flat), n_trees=4), assign=np.arange(60) % 3, k=3
    )
    f.fit(data, 5.0)
    assert [m.shared["copies"] for m in f._models] == [3, 3, 3]


def test_large_data_is_subsampled_to_max_rows():
    _, data, x = _data(300)
    et = ExtraTrees(features=Features("flat", flat), n_trees=4, max_rows=100).fit(data, 30.0)
    assert len(et._x) == 100 and et.predict_proba(x).shape == (300, 5)


def test_in_the_tabular_plan_and_later_with_distinct_names():
    spec, _, _ = _data()
    names = [lr.name for lr in plan(spec) + later(spec)]
    assert "extratrees(flat)" in names and "extratrees(flat, leaves of 3+ rows)" in names
    assert "extratrees(flat, 0.5 of the columns, leaves of 3+ rows)" in names
    assert len(set(names)) == len(names)


def test_single_label_extra_trees_run_only_where_tabular_data_is_cross_validated():
    spec, _, _ = _data()
    edge = folds.rows_below("tabular")
    for rows, kept in ((edge - 1, True), (edge, False), (100_000, False)):
        names = [lr.name for lr in at_scale(plan(spec), rows)]
        assert ("extratrees(flat)" in names) == kept, (rows, names)
        assert "extratrees(flat, leaves of 3+ rows)" in names  # multi-label's (the loop's pick)


@pytest.mark.slow
@pytest.mark.parametrize("multilabel", [False, True])
def test_the_loop_runs_the_extra_trees_meant_for_its_labels(multilabel):
    """Leaves of 3+ rows on multi-label data, of 1 row on single-label data, never both."""
    from autodl.engine import Budget, run

    from ._data import splits

    train, test = splits("tabular", multilabel=multilabel)
    logs: list[str] = []
    preds = list(run(train, test, None, Budget(6.0), log=logs.append, threads=1))
    assert preds
    said = "\n".join(logs) + " ".join(p.learner for p in preds)
    assert ("extratrees(flat)" in said) == (not multilabel), said[-2000:]
    assert ("extratrees(flat, leaves of 3+ rows)" in said) == multilabel, said[-2000:]

"""Reading for the engine: the side cap, the memory bound, the background read."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.engine import Budget, data, run
from autodl.formats.images import shrunk_size
from autodl.formats.types import ArraySplit, DatasetSpec

from ._data import splits

MB = 1 << 20


def _images(shape, n=4):
    return ArraySplit(
        "train", DatasetSpec("big", shape, 2, domain="image"), np.zeros((n, 1, 1, 1, 3))
    )


def test_image_splits_that_fit_are_read_whole_at_the_side_cap():
    spec_side = data.max_side(DatasetSpec("x", (1, 512, 512, 3), 2, domain="image"))
    assert spec_side in (128, 224)  # CPU / CUDA: the pretrained network's largest input
    assert data.max_side(DatasetSpec("x", (1, 1, 20, 1), 2, domain="tabular")) is None
    split = _images((1, 512, 512, 3))
    r = data.plan_reading(split, 1000, 500, split.spec, memory=8 << 30)
    assert (r.rows, r.side, r.note) == (None, spec_side, None)


def test_the_side_drops_before_rows_are_given_up():
    split = _images((1, 512, 512, 3))
    top = data.max_side(split.spec)
    per_64 = 64 * 64 * 3 * 4
    r = data.plan_reading(split, 1000, 500, split.spec, memory=1500 * per_64 + 1)
    assert r.rows is None and r.side == 64 and "64 px" in r.note
    assert top > 64


def test_too_little_memory_reads_the_first_training_rows_at_the_smallest_side():
    split = _images((1, 512, 512, 3))
    per_32 = 32 * 32 * 3 * 4
    r = data.plan_reading(split, 5000, 500, split.spec, memory=1500 * per_32)
    assert (r.rows, r.side) == (1000, 32)
    assert "first 1000 of 5000 training rows at 32 px" in r.note
    floor = data.plan_reading(split, 5000, 500, split.spec, memory=per_32)
    assert floor.rows == data.MIN_TRAIN_ROWS


def test_variable_sizes_are_measured_on_the_first_records():
    spec = DatasetSpec("var", (1, -1, -1, 3), 2, domain="image")
    x = [np.zeros((1, 300, 200, 3), np.float32), np.zeros((1, 20, 10, 3), np.float32)]
    split = ArraySplit("train", spec, x)
    top = data.max_side(spec)
    big = np.prod((1, *shrunk_size(300, 200, top), 3)) * 4
    per = (big + 20 * 10 * 3 * 4) / 2  # the mean of the two probed examples
    r = data.plan_reading(split, 100, 0, spec, memory=int(100 * per))
    assert r.rows is None and r.side == top
    r = data.plan_reading(split, 100, 0, spec, memory=int(100 * per) - 1)
    assert r.side < top


def test_series_and_tables_are_bounded_by_rows():
    train, _ = splits("speech", n_train=100)
    per = np.mean([e.nbytes for e in train.load(limit=data.PROBE_ROWS).x])
    r = data.plan_reading(train, 4000, 0, train.spec, memory=int(per * 1000))
    assert r.side is None and r.rows is not None and 900 <= r.rows <= 1100


@pytest.mark.slow
def test_a_run_under_a_tight_memory_bound_reads_fewer_rows_and_predicts_every_test_row(
    monkeypatch,
):
    monkeypatch.setattr(data, "MIN_TRAIN_ROWS", 30)
    train, test = splits("tabular", n_train=400)
    row = 8 * 4
    logs: list[str] = []
    preds = list(run(train, test, None, Budget(3.0), log=logs.append, memory=row * (80 + 100)))
    assert any("memory: reading the first 100 of 400 training rows" in m for m in logs), logs
    assert any("loaded 100 of 400 train rows" in m for m in logs), logs
    assert preds and preds[-1].test.shape == (80, train.spec.output_dim)


def test_background_read_gives_the_arrays_or_the_error():
    train, _ = splits("tabular", n_train=50)
    b = data.Background(train, limit=20)
    assert len(b.result()) == 20 and b.done()

    class Broken(ArraySplit):
        def load(self, limit=None, max_side=None):
            raise OSError("disk gone")

    b = data.Background(Broken("train", train.spec, np.zeros((2, 1, 1, 8, 1))))
    with pytest.raises(OSError, match="disk gone"):
        b.result()


def test_a_background_read_made_not_to_start_waits_for_start_or_result():
    train, _ = splits("tabular", n_train=50)
    b = data.Background(train, start=False, limit=20)
    assert not b.done()  # not started: the loop's quick phase keeps going
    b.start()
    b.start()  # a second start does nothing
    assert len(b.result()) == 20 and b.done()
    lazy = data.Background(train, start=False)
    assert len(lazy.result()) == 50  # result starts it


@pytest.mark.slow
def test_the_rest_of_a_large_train_split_is_read_after_the_first_prediction(monkeypatch):
    """The reader holds the GIL: read beside the first fit, it delayed the first
    prediction (issue 14); it starts once that prediction is out."""
    from autodl.engine import loop

    monkeypatch.setattr(loop, "QUICK_ROWS", 50)
    train, test = splits("tabular", n_train=300)
    reads: list[int | None] = []

    class Watched(type(train)):
        def load(self, limit=None, max_side=None):
            reads.append(limit)
            return super().load(limit, max_side)

    watched = Watched("train", train.spec, train._x, train._labels)
    preds = run(watched, test, None, Budget(4.0))
    first = next(preds)
    assert "first 50 training rows" in first.note and None not in reads  # prefix only
    rest = list(preds)
    assert None in reads and rest and rest[-1].test.shape == (80, train.spec.output_dim)

"""warm_up: the plan's first steps on random data of the dataset's shape, untimed."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.engine import warm
from autodl.formats.types import DatasetSpec
from tests.engine import _data


@pytest.mark.parametrize("case", _data.CASES)
def test_warm_up_runs_every_domains_first_steps(case):
    spec, _, _ = _data.make(case, 8)
    assert warm.warm_up(spec) is None  # no failure, nothing to report


@pytest.mark.parametrize("case", _data.CASES)
def test_synthetic_examples_have_the_specs_shape(case):
    spec, _, _ = _data.make(case, 8)
    x = warm.synthetic(spec, 5)
    assert len(x) == 5
    for e in x:
        assert e.dtype == np.float32 and e.ndim == 4
        for size, want in zip(e.shape, spec.shape, strict=True):
            assert want < 0 or size == want  # fixed sizes kept, varying ones filled
        if spec.domain == "text":
            assert e.min() >= 0 and e.max() < len(spec.vocabulary)
            assert np.all(e == np.round(e))  # token ids


def test_huge_shapes_are_cut_to_a_bounded_warm_up():
    wide = DatasetSpec("wide", (1, 1, 2_000_000, 1), 3, domain="tabular")
    assert warm.synthetic(wide, 24).size <= warm.WARM_ELEMENTS
    long = DatasetSpec("long", (500_000, 1, 1, 1), 3, domain="speech")
    assert warm.synthetic(long, 24).size <= warm.WARM_ELEMENTS
    film = DatasetSpec("film", (300, 720, 1280, 3), 3, domain="video")
    x = warm.synthetic(film, 24)
    assert x.size <= warm.WARM_ELEMENTS and x.shape[2:4] == (64, 64)


def test_a_failing_plan_is_reported_not_raised(monkeypatch):
    from autodl.engine import loop

    def broken(*_a, **_k):
        raise RuntimeError("no plan")

    monkeypatch.setitem(loop.PLANS, "tabular", broken)
    spec, _, _ = _data.make("tabular", 8)
    note = warm.warm_up(spec)
    assert note is not None and "no plan" in note and "starts cold" in note


def _splits(spec: DatasetSpec):
    from autodl.formats.types import ArraySplit

    labels = np.eye(spec.output_dim, dtype=np.float32)[np.arange(24) % spec.output_dim]
    train = ArraySplit("train", spec, warm.synthetic(spec, 24), labels)
    return train, ArraySplit("test", spec, warm.synthetic(spec, 8, 1))


def test_networks_are_warmed_only_on_a_gpu(monkeypatch):
    """No CUDA here: nothing runs. Asked to warm anyway (``gpu=True``: the networks run
    on this machine's CPU), each network of the plan is fitted and predicts once, the
    linear models are left to the CPU warm-up."""
    from autodl.engine import image

    spec = DatasetSpec("img", (1, 16, 16, 1), 3, domain="image")
    train, test = _splits(spec)
    assert warm.warm_networks(spec, train, test) == 0
    fitted = []
    for cls in {type(lr) for lr in image.plan(spec, 0)}:
        original = cls.fit
        monkeypatch.setattr(
            cls, "fit", lambda self, d, s, _o=original: fitted.append(self.name) or _o(self, d, s)
        )
    n = warm.warm_networks(spec, train, test, gpu=True)
    networks = [lr.name for lr in image.plan(spec, 0) if not lr.name.startswith("linear")]
    # (the pretrained features fit a linear probe of their own inside their fit)
    assert n == len(networks) >= 1 and [f for f in fitted if f in networks] == networks
    assert "linear(pixels)" not in fitted

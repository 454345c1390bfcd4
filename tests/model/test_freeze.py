"""Every learner of every domain's plan survives `export.freeze` / `export.thaw`: the
thawed copy predicts what the learner predicts (the saved model's parts)."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.engine import export, image, speech, tabular, text, video
from autodl.engine.bag import Bag
from autodl.engine.learner import clone
from autodl.formats.dataset import open_dataset
from tests.datasets_fixture import *  # noqa: F403

PLANS = {
    "tabular": tabular.plan,
    "image": image.plan,
    "text": text.plan,
    "speech": speech.plan,
    "video": video.plan,
}


def _cases():
    from autodl.formats.types import DatasetSpec

    out = []
    for domain, plan in PLANS.items():
        shape = {
            "tabular": (1, 1, 8, 1),
            "image": (1, 8, 8, 1),
            "text": (-1, 1, 1, 1),
            "speech": (-1, 1, 1, 1),
            "video": (4, 8, 8, 1),
        }[domain]
        spec = DatasetSpec(
            "x", shape, 3, domain=domain, vocabulary={"a": 0} if domain == "text" else None
        )
        for i, learner in enumerate(plan(spec, 0)):
            out.append(pytest.param(domain, i, id=f"{domain}-{i}-{learner.name}"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("domain", "index"), _cases())
def test_a_thawed_learner_predicts_as_the_learner(domain, index, tiny_datasets):
    ds = open_dataset(tiny_datasets[domain])
    learner = PLANS[domain](ds.spec, 0)[index]
    data = ds.train.load()
    x = ds.test.load().x
    try:
        learner.fit(data, 2.0)
    except Exception as e:  # noqa: BLE001 - an optional model that is not installed
        pytest.skip(f"{learner.name} does not fit here: {type(e).__name__}: {e}")
    want = learner.predict_proba(x)
    frozen = export.freeze(learner)
    got = export.thaw(frozen).predict_proba(x)
    assert np.abs(np.asarray(got) - np.asarray(want)).max() < 1e-9
    # and a refit's seed copies (`bag.Bag`), as the loop makes them
    if "seed" in learner.get_params() and domain == "tabular":
        bag = Bag(base=clone(learner), n=2)
        bag.fit(data, 2.0)
        assert (
            np.abs(export.thaw(export.freeze(bag)).predict_proba(x) - bag.predict_proba(x)).max()
            < 1e-9
        )

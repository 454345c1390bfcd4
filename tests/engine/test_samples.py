"""The engine on every sample dataset of ../shared/data, in a short run: its last
prediction beats a constant one (NAUC 0) on the real test labels.

The runs are in-process (the generator, no child process) with a few seconds each;
speed and quality figures are the benchmark's (bench/alc.py), not this test's.
"""

from __future__ import annotations

import pytest

from autodl.engine import Budget, run
from autodl.formats.dataset import open_dataset
from autodl.scoring.metrics import nauc
from tests.conftest import DATASETS, KIT_SAMPLES, SAMPLE_NAMES, needs_shared_data

SECONDS = 6.0
PATHS = [DATASETS / n for n in SAMPLE_NAMES] + [KIT_SAMPLES / n for n in ("miniciao", "Monkeys")]


@needs_shared_data
@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
def test_a_short_run_beats_a_constant_prediction(path):
    ds = open_dataset(path)
    logs: list[str] = []
    preds = list(run(ds.train, ds.test, ds.unlabelled, Budget(SECONDS), log=logs.append))
    assert preds, logs
    constant = nauc(ds.solution, 0 * preds[-1].test + 0.5)
    score = nauc(ds.solution, preds[-1].test)
    assert constant == 0.0
    assert score > 0.1, (path.name, score, logs)

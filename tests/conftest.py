"""Shared fixtures.

``shared_data`` points at the read-only compatibility reference ``../shared/data``
(beside the clone). On a user's machine it is absent and the tests that need it
skip with that reason; every other test runs anywhere.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The engine's process lets idle OpenMP threads sleep (`autodl._engine_process._size_pools`);
# engines the tests run in this process do the same, set before LightGBM or torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DATASETS = SHARED_DATA / "datasets"
KIT_SAMPLES = SHARED_DATA / "starting-kit-samples"
REFERENCE_SCORING = SHARED_DATA / "reference-scoring"

SAMPLE_NAMES = [
    "handdigits",
    "cityweather",
    "emailspam",
    "moviegenres",
    "convention2012",
    "osuleaf",
    "spokendigits",
    "movingdigits",
]

# The keys of `autodl check --json`, in their documented order (issue 2).
CHECK_JSON_KEYS = [
    "name",
    "domain",
    "output_dim",
    "label_names",
    "shape",
    "format",
    "train",
    "test",
    "unlabelled",
    "problems",
]

# Parametrized cases over ~3 s on 2 cores, marked here since marking their function would
# also leave its quick cases out of `pytest -m "not slow"`: the image plans' third learner
# (EfficientNet-Lite0 on ImageNet weights, 3 epochs).
SLOW_CASES = (
    "tests/engine/test_learners.py::test_learner_conformance[image-2-",
    "tests/engine/test_learners.py::test_learner_conformance[image-variable-2-",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW_CASES):
            item.add_marker(pytest.mark.slow)


needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(),
    reason=f"compatibility reference data not found at {SHARED_DATA} (only in the project's CI)",
)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"compatibility reference data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_autodl(*args, cwd=None, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m autodl ARGS`` as a user does (text output captured); no traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "autodl", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc

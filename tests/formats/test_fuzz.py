"""A fixed, seeded sample of bench/fuzz.py: mutated inputs to every reader end in a
result or one of our errors, never another exception (issue 12, point 10)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fuzz", Path(__file__).resolve().parents[2] / "bench" / "fuzz.py"
)
fuzz = importlib.util.module_from_spec(_spec)
sys.modules["fuzz"] = fuzz  # dataclasses look their module up while the class is built
_spec.loader.exec_module(fuzz)


@pytest.mark.parametrize(
    ("targets", "n"),
    [
        (("tfrecord", "record", "metadata", "solution", "image"), 2500),
        (("layout",), 250),
    ],
    ids=["readers", "layouts"],
)
def test_fuzz_sample_has_no_crash(targets, n):
    s = fuzz.run(n, seed=12, targets=targets)
    assert s.tried == n
    assert s.crashes == [], "\n".join(
        f"{c.error} at {c.where}; replay: bench/fuzz.py --seed {c.seed} --target {c.target} "
        f"--start {c.index} --n 1"
        for c in s.crashes[:5]
    )
    assert s.clean > n // 10  # the mutations do reach the error paths
    # Peak memory is bench/fuzz.py's figure: ru_maxrss here counts every earlier test.

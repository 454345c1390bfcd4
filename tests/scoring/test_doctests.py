"""The examples in the scoring modules' docstrings run."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "autodl.scoring",
    "autodl.scoring._arrays",
    "autodl.scoring._figures",
    "autodl.scoring._keyvalue",
    "autodl.scoring._result",
    "autodl.scoring._score",
    "autodl.scoring.curve",
    "autodl.scoring.metrics",
    "autodl.scoring.report",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

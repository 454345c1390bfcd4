"""The examples in every module's docstrings run (``>>>`` lines), in the package and in the
test helpers that carry some.

Modules are found from the files, so a new module's examples run without a change here.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Importing these runs something: the CLI, or Alembic's migration environment.
NOT_IMPORTABLE = {"autodl.service.migrations.env"}
# A `>>>` line that is meant to run (not `# doctest: +SKIP`).
EXAMPLE = re.compile(r"^\s*>>> (?!.*doctest: \+SKIP)", re.MULTILINE)


def _modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "autodl").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in NOT_IMPORTABLE:
            names.append(name)
    return [*names, "tests.scaleout.servers"]


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} of {name}'s examples failed (printed above)"
    # An example the finder never reaches (in a comment, a private helper inside a function)
    # never runs: each module that shows examples must run at least one.
    if EXAMPLE.search(Path(module.__file__).read_text()):
        assert result.attempted > 0, f"{name} has >>> examples, but none of them ran"


def test_every_package_module_is_covered():
    assert "autodl.scoring.metrics" in MODULES and "autodl.formats.spec" in MODULES
    assert len(MODULES) > 100

from __future__ import annotations

import pytest

from autodl.formats.dataset import open_dataset
from autodl.formats.samples import make_tabular


@pytest.fixture(scope="session")
def tabular_dataset(tmp_path_factory):
    """A tiny tabular dataset with label names, a solution and an unlabelled part."""
    root = make_tabular(tmp_path_factory.mktemp("tab") / "tab", unlabelled=True)
    return root, open_dataset(root)

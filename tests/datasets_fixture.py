"""A pytest plugin module: tiny generated datasets of every domain.

Use it from any test folder::

    from tests.datasets_fixture import *  # noqa: F403

    def test_something(tiny_datasets):
        path = tiny_datasets["image"]      # tabular, image, text, speech, video

The datasets are written once per session by ``autodl.formats.samples`` (a few
hundred records in all, deterministic) in the official layout, each with an
unlabelled part; ``tiny_datasets["digits"]`` is scikit-learn's digits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["tiny_datasets"]


@pytest.fixture(scope="session")
def tiny_datasets(tmp_path_factory) -> dict[str, Path]:
    """domain -> dataset root folder (plus "digits" -> scikit-learn's digits)."""
    from autodl.formats import samples

    root = tmp_path_factory.mktemp("tiny_datasets")
    paths = samples.make_all(root)
    paths["digits"] = samples.make_digits(root)
    return paths

"""Fixtures of the format tests: the reference datasets, opened and loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATASETS, KIT_SAMPLES, SAMPLE_NAMES, SHARED_DATA

ALL_NAMES = SAMPLE_NAMES + ["miniciao", "Monkeys"]
UNLABELLED_ANSWERS = SHARED_DATA / "unlabelled-answers"


def dataset_path(name: str) -> Path:
    """Root folder of a reference dataset (8 converted sets + 2 starting-kit samples)."""
    return (KIT_SAMPLES if name in ("miniciao", "Monkeys") else DATASETS) / name


_cache: dict = {}


def loaded(name: str):
    """(dataset, {split: Arrays}) of a reference dataset, read once per session."""
    if name not in _cache:
        from autodl.formats.dataset import open_dataset

        ds = open_dataset(dataset_path(name))
        arrays = {"train": ds.train.load(), "test": ds.test.load()}
        if ds.unlabelled is not None:
            arrays["unlabelled"] = ds.unlabelled.load()
        _cache[name] = (ds, arrays)
    return _cache[name]


@pytest.fixture
def tmp_copy(tmp_path):
    """Copy a reference dataset into tmp_path (to break it); returns the copy's root."""
    import shutil

    def copy(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(dataset_path(name), dest)
        for p in dest.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        dest.chmod(0o755)
        return dest

    return copy

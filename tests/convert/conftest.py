"""Helpers of the converter tests: convert, open, and look records up by input name."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from autodl.formats.convert import format_dataset
from autodl.formats.dataset import open_dataset


class Converted:
    """A conversion's result with its dataset opened and every record by input name."""

    def __init__(self, result):
        self.result = result
        self.ds = open_dataset(result.dataset)
        self.classes = result.classes
        self.records = {}  # (source, row) -> (split, id)
        with open(result.records, newline="", encoding="utf-8") as f:
            self.manifest_rows = list(csv.DictReader(f))
        for r in self.manifest_rows:
            self.records[(r["source"], r["row"])] = (r["split"], int(r["id"]))
        self.examples = {}
        for split in ("train", "test", "unlabelled"):
            part = getattr(self.ds, split)
            if part is not None:
                for pos, ex in enumerate(part):
                    self.examples[(split, ex.id)] = (pos, ex)

    def get(self, source: str, row: str | int | None = None):
        """(split, x, label names) of the record made from ``source`` (and ``row``)."""
        if row is None:
            (key,) = [k for k in self.records if k[0] == source]
        else:
            key = (source, str(row))
        split, rid = self.records[key]
        pos, ex = self.examples[(split, rid)]
        y = self.ds.solution[pos] if split == "test" else ex.labels
        names = [self.classes[i] for i in np.flatnonzero(y)]
        return split, ex.x, names


@pytest.fixture
def convert(tmp_path):
    """convert(input, **options) -> Converted (output in tmp_path/out, one worker by default)."""

    def run(input: Path, **options) -> Converted:
        options.setdefault("workers", 1)
        return Converted(format_dataset(input, tmp_path / "out", **options))

    return run

"""Labels of the input records, and the train/test split.

`LabelTable` keeps one list of class names per record in two flat arrays (a
table may have millions of rows: a Python tuple per row would cost ~100 bytes,
this costs 4–12). Class columns are fixed by `finish`: natural order of the
names ('2' before '10'), or the order the user's ``label.name`` gives.

`plan_split` makes the split: the one the input gives (a split column, a split
file, train/ and test/ folders), else a stratified random one with
``--test-size`` and ``--seed``. Multi-label records are stratified by their
rarest class, so every class lands in both parts when it has two records or more.
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable

import numpy as np

from autodl.errors import FormatError

TRAIN, TEST, UNLABELLED, SKIPPED = 0, 1, 2, -1
PART_NAMES = {TRAIN: "train", TEST: "test", UNLABELLED: "unlabelled"}
_SPLIT_WORDS = {
    "train": TRAIN, "training": TRAIN, "test": TEST, "testing": TEST,
    "unlabelled": UNLABELLED, "unlabeled": UNLABELLED,
}  # fmt: skip
_TRUE = {"1", "1.0", "true", "t", "yes", "y"}
_FALSE = {"0", "0.0", "false", "f", "no", "n", ""}


def natural_key(s: str) -> list:
    """Sort key that puts 'class2' before 'class10' and ignores case."""
    return [int(t) if t.isdigit() else t.casefold() for t in re.split(r"(\d+)", s)]


def split_word(value: str) -> int | None:
    """'train' / 'Test' / 'unlabelled' -> TRAIN / TEST / UNLABELLED; anything else None."""
    return _SPLIT_WORDS.get(str(value).strip().lower())


def flag(value: object) -> bool | None:
    """A 0/1 cell of a class column (1, 0, true, no, empty ...) -> bool; None if it is not one."""
    s = "" if value is None else str(value).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE or s == "nan":
        return False
    return None


class LabelTable:
    """Class names per record, appended in record order."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self.offsets = array("q", [0])
        self.values = array("i")
        self.classes: list[str] = []
        self._remap: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def add(self, names: Iterable[str] = ()) -> None:
        """Append one record with these class names (none: no label)."""
        for n in dict.fromkeys(names):  # a class named twice counts once
            i = self._index.get(n)
            if i is None:
                i = self._index[n] = len(self._names)
                self._names.append(n)
            self.values.append(i)
        self.offsets.append(len(self.values))

    def finish(self, order: list[str] | None = None) -> list[str]:
        """Fix the class columns (``order``, else natural order); returns them."""
        names = list(order) if order is not None else sorted(self._names, key=natural_key)
        col = {n: i for i, n in enumerate(names)}
        self._remap = np.array([col[n] for n in self._names], np.int64)
        self.classes = names
        return names

    def row(self, i: int) -> np.ndarray:
        """Class indices of record ``i`` (after `finish`)."""
        assert self._remap is not None, "finish() first"
        return self._remap[np.asarray(self.values[self.offsets[i] : self.offsets[i + 1]], np.int64)]

    def sizes(self) -> np.ndarray:
        """Number of classes of each record."""
        return np.diff(np.asarray(self.offsets, np.int64))

    @property
    def multilabel(self) -> bool:
        return bool(len(self) and self.sizes().max(initial=0) > 1)

    def counts(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Records per class (among ``mask`` when given)."""
        assert self._remap is not None, "finish() first"
        vals = self._remap[np.asarray(self.values, np.int64)]
        if mask is not None:
            rows = np.repeat(np.arange(len(self)), self.sizes())
            vals = vals[mask[rows]]
        return np.bincount(vals, minlength=len(self.classes))

    def strata(self) -> np.ndarray:
        """One group per record: its class, or its rarest class (multi-label); -1 for none."""
        assert self._remap is not None, "finish() first"
        vals = self._remap[np.asarray(self.values, np.int64)]
        sizes = self.sizes()
        if not len(vals):
            return np.full(len(self), -1, np.int64)
        rank = np.argsort(np.argsort(np.bincount(vals, minlength=len(self.classes)), kind="stable"))
        keyed = rank[vals]
        out = np.full(len(self), -1, np.int64)
        has = sizes > 0
        starts = np.asarray(self.offsets, np.int64)[:-1][has]
        out[has] = np.minimum.reduceat(keyed, starts) if len(starts) else []
        inverse = np.argsort(rank)  # rank -> class
        out[has] = inverse[out[has]]
        return out


#: A label column with more distinct numeric values than this (and than a tenth of its
#: records) is taken for a measurement rather than categories.
MANY_NUMERIC_CLASSES = 20


def _number(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def check_classes(labels: LabelTable, what: str, *, force: bool) -> list[str]:
    """Warnings about classes a user probably did not mean; FormatError when the labels
    look continuous (a measurement, not categories) unless ``force``.

    ``what`` names the labels for the messages (e.g. "the label column 'price'").
    Classes with a single record are warned about: they cannot be in both the training
    and the test part, so the score cannot measure them.
    """
    classes = labels.classes
    numbers = [_number(c) for c in classes]
    if classes and all(v is not None for v in numbers):
        fractional = any(v != int(v) for v in numbers if v == v and abs(v) != float("inf"))
        many = len(classes) > MANY_NUMERIC_CLASSES and len(classes) > len(labels) / 10
        if fractional or many:
            examples = ", ".join(classes[:5]) + (", …" if len(classes) > 5 else "")
            why = (
                "values with decimals"
                if fractional
                else f"{len(classes)} distinct numbers among {len(labels)} records"
            )
            message = (
                f"{what} looks continuous ({why}: {examples}); each distinct value would "
                f"become a class of its own ({len(classes)} classes)"
            )
            if not force:
                raise FormatError(
                    message + ".",
                    "Choose a column of categories with --label, or group the values into "
                    "ranges first; --force converts it anyway, one class per value.",
                )
            return [message + " (converted anyway: --force)."]
    counts = labels.counts()
    single = [c for c, n in zip(classes, counts.tolist(), strict=True) if n < 2]
    if single:
        shown = ", ".join(repr(c) for c in single[:10]) + (", …" if len(single) > 10 else "")
        return [
            f"{len(single)} class(es) of {what} have fewer than 2 records ({shown}): a class "
            "needs one in training and one in test to be learned and scored."
        ]
    return []


def _allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` test records over groups in proportion to their sizes
    (largest remainders), leaving at least one record of every group in train."""
    cap = np.maximum(sizes - 1, 0)
    exact = sizes * (total / max(sizes.sum(), 1))
    out = np.minimum(np.floor(exact).astype(np.int64), cap)
    for g in np.argsort(-(exact - out), kind="stable"):
        if out.sum() >= total:
            break
        if out[g] < cap[g]:
            out[g] += 1
    while out.sum() < total and (out < cap).any():  # rare: caps left records over
        out[np.argmax(cap - out)] += 1
    return out


def plan_split(
    labels: LabelTable,
    part: np.ndarray,
    *,
    test_size: float,
    seed: int,
    explicit: bool,
) -> np.ndarray:
    """Fill ``part`` (per record TRAIN / TEST / UNLABELLED / SKIPPED, -2 = to decide)
    with a stratified random split of the records still to decide."""
    todo = np.flatnonzero(part == -2)
    if explicit or not len(todo):
        part[todo] = TRAIN
    else:
        n_test = int(round(test_size * len(todo))) if test_size < 1 else int(test_size)
        if n_test >= len(todo):
            raise FormatError(
                f"--test-size {test_size:g} leaves no training record ({len(todo)} labelled records).",
                "Choose a fraction such as 0.35, or a count smaller than the number of records.",
            )
        strata = labels.strata()[todo]
        groups, inverse = np.unique(strata, return_inverse=True)
        alloc = _allocate(np.bincount(inverse), n_test)
        rng = np.random.default_rng(seed)
        part[todo] = TRAIN
        for g in range(len(groups)):
            members = todo[inverse == g]
            part[rng.permutation(members)[: alloc[g]]] = TEST
    for p, what in ((TRAIN, "training"), (TEST, "test")):
        if not (part == p).any():
            raise FormatError(
                f"the split leaves no {what} record.",
                "Give both train and test records (split column or folders), "
                "or leave the split to --test-size.",
            )
    return part


def record_places(part: np.ndarray, seed: int, keep_order: bool) -> np.ndarray | None:
    """Each record's position in its split: a seeded shuffle of the train and the test
    records (so that the first records of a split hold every class even when the input
    is sorted by label); -1 for the others (unlabelled records stay in input order, as
    their predictions are read back in record order; skipped ones are not written).
    None with ``keep_order``: every split in input order."""
    if keep_order:
        return None
    places = np.full(len(part), -1, np.int64)
    rng = np.random.default_rng([seed, 1])  # a stream of its own: the split uses `seed`
    for p in (TEST, TRAIN):
        members = np.flatnonzero(part == p)
        places[members] = rng.permutation(len(members))
    return places

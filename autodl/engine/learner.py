"""The Learner contract every model follows, and the pieces learners share.

A learner is a scikit-learn-style estimator on raw AutoDL data:

- the constructor only stores keyword arguments (`get_params` returns them, `clone`
  makes a fresh copy); parameter rules are declared as data in ``_rules`` and checked
  in one place (`Learner._check_params`) with one message template;
- ``fit(data, seconds)`` trains on an `Arrays` for about ``seconds`` and returns self;
  calling it again with the same `Arrays` continues training (warm start), with other
  data it starts over. `Learner.fit` is that template, written once: check the
  parameters, ``_setup`` on new data, then the learner's own ``_fit`` step;
- ``predict_proba(x)`` -> float (n, output_dim) in [0, 1]; works after any ``fit``;
- ``done`` is True once more ``fit`` calls would not change the model;
- ``threads``: the thread count the loop runs learners with (the loop sets this
  attribute before each ``fit``; None: every core). Learners give it to their
  libraries (LightGBM's ``num_threads``, scikit-learn's ``n_jobs``) rather than read
  the libraries' settings back; wrappers (`bag.Bag`) pass it to what they wrap;
- ``shared``: a dict the copies of one learner share (`folds.Folds` gives its k copies
  one): what every copy would compute alike from the same rows (a pretrained
  network's features of an image) is made once, by whichever copy needs it first
  (`Learner.share`); None (each copy on its own) outside k-fold;
- learners that grow by steps stop one ``fit`` call by one rule, `Learner._room`: a
  next step is started only when, costing ``growth`` times the last one, it ends
  within the call's ``seconds``.

Labels decide the task: any training row with other than one positive makes it
multi-label (one independent probability per class), else multi-class (softmax).
A class absent from training still gets its column, at a constant low probability.

`Features` is a named map from raw examples (float32 (N, T, H, W, C) or a list of
(T, H, W, C)) to a feature matrix; domain modules define them and plans share them
between learners, so a split is featurised once (memoised by object identity).
"""

from __future__ import annotations

import inspect
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from autodl.formats.types import Arrays

RawX = np.ndarray | list[np.ndarray]
LOW = 1e-3  # probability given to a class with no positive training example

PARAM_MESSAGE = "{learner}: parameter {name!r} must be {rule}, got {value!r}."


# ---- parameter rules, declared as data ---------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A number of ``kind`` in [low, high] (None = unbounded); ``open_low`` excludes low."""

    kind: type
    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def __call__(self, v: Any) -> bool:
        kinds = (int, np.integer) + ((float, np.floating) if self.kind is float else ())
        if isinstance(v, bool) or not isinstance(v, kinds):
            return False
        if self.low is not None and (v <= self.low if self.open_low else v < self.low):
            return False
        return self.high is None or v <= self.high

    def __str__(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        return f"{'an int' if self.kind is int else 'a number'} in {'(' if self.open_low else '['}{lo}, {hi}]"


@dataclass(frozen=True)
class OneOf:
    """One of the listed values."""

    values: tuple

    def __call__(self, v: Any) -> bool:
        return v in self.values

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Instance:
    """An instance of ``kind``, or None when ``optional``."""

    kind: type
    optional: bool = False

    def __call__(self, v: Any) -> bool:
        return (self.optional and v is None) or isinstance(v, self.kind)

    def __str__(self) -> str:
        return f"a {self.kind.__name__}" + (" or None" if self.optional else "")


@dataclass(frozen=True)
class OrNone:
    """None or what ``rule`` accepts."""

    rule: Any

    def __call__(self, v: Any) -> bool:
        return v is None or self.rule(v)

    def __str__(self) -> str:
        return f"None or {self.rule}"


# ---- features ----------------------------------------------------------------------------


class Features:
    """A named, stateless map raw examples -> 2-D feature matrix (dense or scipy sparse),
    each example mapped on its own (a list of examples of varying shapes may be sized
    by the list: the widest row, the most channels).

    Results are memoised by the identity of the input (a reference to it is kept, so
    the id cannot be reused while cached): the engine passes the same split objects to
    every learner of a plan, which then featurise each split once. The least recently
    used entry goes first (a run meets 7-9 splits: the quick prefix's, the full
    split's, test and unlabelled; the test split is used after every improvement).
    Within `parts_of` (the k-fold copies' turns), a part of a split is not featurised
    on its own: the whole split is, once, and the part's rows are taken from it.
    """

    def __init__(self, name: str, fn: Callable[..., Any], memo: int = 6, **kwargs: Any):
        self.name = name
        self.fn = fn
        self.kwargs = kwargs
        self._memo: dict[int, tuple[Any, Any]] = {}
        self._size = memo
        self.calls = 0  # splits featurised (not served from the memo)

    def __call__(self, x: RawX) -> Any:
        hit = self._memo.pop(id(x), None)
        if hit is not None and hit[0] is x:
            self._memo[id(x)] = hit  # least recently used last: the test split stays
            return hit[1]
        part = (_PARTS.get() or {}).get(id(x))
        if part is not None and part[0] is x:  # rows of a larger split: taken from it
            whole, idx = self(part[1]), part[2]
            return [whole[i] for i in idx] if isinstance(whole, list) else whole[idx]
        out = self.fn(x, **self.kwargs)
        self.calls += 1
        if len(self._memo) >= self._size:
            self._memo.pop(next(iter(self._memo)))
        self._memo[id(x)] = (x, out)
        return out

    def __repr__(self) -> str:
        return f"Features({self.name!r})"


#: id(part) -> (part, the split it was taken from, its rows there) inside `parts_of`
_PARTS: ContextVar[dict[int, tuple[RawX, RawX, np.ndarray]] | None] = ContextVar(
    "parts", default=None
)


@contextmanager
def parts_of(whole: RawX, parts: list[tuple[RawX, np.ndarray]]) -> Iterator[None]:
    """Within it, `Features` of a part (examples ``whole[idx]`` for ``(part, idx)`` in
    ``parts``) are rows of the features of ``whole``, featurised once: the k-fold copies
    (`folds.Folds`) fit on four fifths of the rows and predict the fifth, so that each
    copy featurising its own parts featurised every row five times (ROCKET's 1,000
    kernels, log-mel spectrograms), and more, as the memo forgot the parts."""
    token = _PARTS.set({id(p): (p, whole, idx) for p, idx in parts})
    try:
        yield
    finally:
        _PARTS.reset(token)


# ---- labels ------------------------------------------------------------------------------


@dataclass
class LabelCoding:
    """How training labels map to model outputs and back to ``output_dim`` columns.

    Multi-class: ``classes`` are the present class indices; a model predicts over them.
    Multi-label: ``classes`` are the columns with both values present; one binary model
    each. Other columns get ``prior`` (LOW for a class never seen positive).
    """

    output_dim: int
    multilabel: bool
    classes: np.ndarray
    prior: np.ndarray

    @classmethod
    def fit(cls, labels: np.ndarray) -> LabelCoding:
        labels = np.asarray(labels) > 0.5
        n, k = labels.shape
        pos = labels.sum(axis=0)
        multilabel = bool(np.any(labels.sum(axis=1) != 1))
        if multilabel:
            classes = np.flatnonzero((pos > 0) & (pos < n))
            prior = np.clip(pos / max(n, 1), LOW, 1 - LOW)
        else:
            classes = np.flatnonzero(pos > 0)
            prior = np.where(pos > 0, pos / max(n, 1), LOW)
        return cls(k, multilabel, classes, prior.astype(np.float64))

    def targets(self, labels: np.ndarray) -> list[np.ndarray]:
        """One integer target vector per model to train (none when nothing is learnable)."""
        labels = np.asarray(labels) > 0.5
        if self.multilabel:
            return [labels[:, c].astype(np.int64) for c in self.classes]
        if len(self.classes) < 2:
            return []
        return [np.searchsorted(self.classes, labels.argmax(axis=1))]

    def expand(self, outputs: list[np.ndarray], n: int) -> np.ndarray:
        """Model outputs (as `targets`) -> float (n, output_dim) probabilities in [0, 1]."""
        if self.multilabel:
            out = np.tile(self.prior, (n, 1))
            for c, p in zip(self.classes, outputs, strict=True):
                out[:, c] = p
        else:
            out = np.full((n, self.output_dim), LOW)
            p = outputs[0] if outputs else np.ones((n, len(self.classes)))
            # keep rows summing to 1 with the absent classes' LOW share taken out
            out[:, self.classes] = p * (1.0 - LOW * (self.output_dim - len(self.classes)))
        return np.clip(np.nan_to_num(out, nan=0.5), 0.0, 1.0)


def stratified_indices(labels: np.ndarray, n_take: int, rng: np.random.Generator) -> np.ndarray:
    """``n_take`` row indices, sorted, drawn in proportion to each row's first positive class.

    Every group with at least two rows keeps at least one row on each side (taken and
    not taken) when ``n_take`` allows it, so hold-outs and subsamples see every class.
    """
    n = len(labels)
    n_take = int(min(max(n_take, 0), n))
    key = np.where(labels.max(axis=1) > 0.5, labels.argmax(axis=1), -1)
    groups = [np.flatnonzero(key == g) for g in np.unique(key)]
    frac = n_take / max(n, 1)
    taken = []
    for g in groups:
        m = int(round(frac * len(g)))
        if len(g) >= 2:
            m = min(max(m, 1), len(g) - 1)
        taken.append(rng.permutation(g)[:m])
    idx = np.concatenate(taken) if taken else np.zeros(0, np.int64)
    if len(idx) > n_take:  # rounding: drop extras at random
        idx = rng.permutation(idx)[:n_take]
    elif len(idx) < n_take:  # rounding: top up from the rest
        rest = np.setdiff1d(np.arange(n), idx)
        idx = np.concatenate([idx, rng.permutation(rest)[: n_take - len(idx)]])
    return np.sort(idx).astype(np.int64)


def take(x: RawX, idx: np.ndarray) -> RawX:
    """Rows ``idx`` of an array or a list of arrays."""
    return x[idx] if isinstance(x, np.ndarray) else [x[i] for i in idx]


# ---- the contract ------------------------------------------------------------------------


class Learner:
    """Base class. Subclasses define ``__init__`` (keyword-only, store only), ``_rules``,
    ``_setup`` and ``_fit`` (the hooks of the `fit` template), ``predict_proba`` and
    ``done``."""

    _rules: ClassVar[dict[str, Any]] = {}
    # seed copies averaged when the loop refits the converged learner on all rows
    refit_copies: ClassVar[int] = 1
    #: a torch network (its first turns on a GPU pay CUDA's set-up: `warm.warm_networks`)
    network: ClassVar[bool] = False
    #: the loop's thread count (the loop sets it before each ``fit``); None: every core
    threads: int | None = None
    #: a dict shared with the other copies of this learner (`folds.Folds`), or None
    shared: dict[Any, Any] | None = None

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, as stored."""
        return {name: getattr(self, name) for name in self._param_names()}

    def _check_params(self) -> None:
        """Check every parameter against ``_rules`` (called at the start of ``fit``)."""
        for name, rule in self._rules.items():
            value = getattr(self, name)
            if not rule(value):
                raise ValueError(
                    PARAM_MESSAGE.format(
                        learner=type(self).__name__, name=name, rule=rule, value=value
                    )
                )

    @property
    def name(self) -> str:
        return type(self).__name__.lower()

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def fit(self, data: Arrays, seconds: float) -> Learner:
        """Train on ``data`` for about ``seconds``; call again with the same ``data`` to
        continue, with other data to start over (on a fresh `_setup`).

        The template every learner shares, so the contract is kept in one place: the
        clock starts first (checking and setting up count against ``seconds``), the
        parameters are checked at every call, and ``data`` is compared by identity
        (the loop passes the same split objects)."""
        start = time.monotonic()
        self._check_params()
        if data is not getattr(self, "_data", None):
            self._setup(data, seconds)
            self._data = data
        self._fit(data, start, seconds)
        return self

    def share(self, key: Any, make: Callable[[], Any]) -> Any:
        """``make()``, made once for all the copies that share ``shared`` (the first to
        ask makes it, the others get the same object); without ``shared``, ``make()``."""
        if self.shared is None:
            return make()
        if key not in self.shared:
            self.shared[key] = make()
        return self.shared[key]

    def _n_threads(self) -> int:
        """The thread count to give a library: ``threads``, else every core."""
        return self.threads or len(os.sched_getaffinity(0))

    @staticmethod
    def _room(start: float, seconds: float, step_began: float, growth: float = 2.0) -> bool:
        """The stop rule of learners grown by steps, written once: True when one more
        step, costing ``growth`` times the one that began at ``step_began`` (monotonic),
        ends within ``seconds`` of ``start``."""
        now = time.monotonic()
        return now - start + growth * (now - step_began) <= seconds

    def _setup(self, data: Arrays, seconds: float) -> None:
        """Start over on ``data``: featurise, code the labels, build the model.
        ``seconds`` is the first call's time (a learner may size itself by it)."""
        raise NotImplementedError

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        """One ``fit`` call's training: stop by about ``start + seconds`` (monotonic)."""
        raise NotImplementedError

    def predict_proba(self, x: RawX) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def clone(learner: Learner) -> Learner:
    """A fresh, unfitted learner with the same parameters."""
    return type(learner)(**learner.get_params())

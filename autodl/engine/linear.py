"""The linear learner: scikit-learn logistic regression grown in timed steps.

`Linear` (logistic regression, optionally on random Fourier features) is built on
`_Stepped`: featurise with a `Features`, optionally
subsample ``max_rows`` rows (stratified), code the labels (`LabelCoding`: one softmax
model, or one binary model per class for multi-label), fit the preprocessing once,
then grow the models by steps of iterations, doubling the step each time, with warm
start. ``fit(data, seconds)`` runs at least one step and stops before a step it
expects to overrun ``seconds`` (a step is assumed to cost twice the last one:
`Learner._room`, the rule every stepped learner shares).
"""

from __future__ import annotations

import time
import warnings
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.impute import SimpleImputer
from sklearn.kernel_approximation import RBFSampler
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from autodl.engine.learner import (
    Features,
    Instance,
    Interval,
    LabelCoding,
    Learner,
    OneOf,
    OrNone,
    RawX,
    stratified_indices,
)
from autodl.formats.types import Arrays


def _inf_to_nan(x: np.ndarray) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    x[np.isinf(x)] = np.nan
    return x


class _NonEmptyColumns(TransformerMixin, BaseEstimator):
    """Keep the columns with a non-zero training value (hashed text spaces are mostly empty)."""

    def fit(self, x: Any, y: Any = None) -> _NonEmptyColumns:
        nz = np.asarray((x != 0).sum(axis=0)).ravel()
        self.cols_ = np.flatnonzero(nz) if nz.any() else np.arange(min(1, x.shape[1]))
        return self

    def transform(self, x: Any) -> Any:
        return sp.csr_matrix(x)[:, self.cols_] if sp.issparse(x) else x[:, self.cols_]


def _preprocessor(kind: str) -> Any:
    if kind == "standardise":
        # NaN -> column median plus a missing indicator for the columns that had NaN
        return make_pipeline(
            FunctionTransformer(_inf_to_nan),
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
    if kind == "tfidf":
        return make_pipeline(_NonEmptyColumns(), TfidfTransformer(sublinear_tf=True))
    return None


class _Stepped(Learner):
    """Shared machinery of the step-grown scikit-learn learners (see the module doc)."""

    first_step: ClassVar[int] = 10
    _rules: ClassVar[dict[str, Any]] = {
        "features": Instance(Features),
        "max_rows": OrNone(Interval(int, 1)),
        "max_iter": Interval(int, 1),
        "seed": Interval(int, 0),
    }

    # subclasses: the estimator for one target, its preprocessing, how to grow it
    def _estimator(self, n_rows: int) -> Any:
        raise NotImplementedError

    def _grow(self, est: Any, step: int, x: Any, y: np.ndarray) -> bool:
        """Fit ``step`` more iterations on (x, y); True when the estimator has converged."""
        raise NotImplementedError

    def _steps(self) -> list[Any]:
        return []

    def _setup(self, data: Arrays, seconds: float) -> None:
        x, y = self.features(data.x), np.asarray(data.labels)
        if self.max_rows is not None and len(y) > self.max_rows:
            idx = stratified_indices(y, self.max_rows, np.random.default_rng(self.seed))
            x, y = x[idx], y[idx]
        self._coding = LabelCoding.fit(y)
        self._prep = [s for s in self._steps() if s is not None]
        for s in self._prep:
            x = s.fit_transform(x)
        self._x = x
        self._models = [(self._estimator(len(y)), t) for t in self._coding.targets(y)]
        self._converged = [False] * len(self._models)
        self._iters, self._step = 0, self.first_step

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        while not self.done:
            s0 = time.monotonic()
            step = min(self._step, self.max_iter - self._iters)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                for i, (est, target) in enumerate(self._models):
                    if not self._converged[i]:
                        self._converged[i] = self._grow(est, step, self._x, target)
            self._iters += step
            self._step *= 2
            if not self._room(start, seconds, s0):  # a doubled step would overrun
                break

    @property
    def done(self) -> bool:
        if not hasattr(self, "_models"):
            return False
        return all(self._converged) or self._iters >= self.max_iter

    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_models"):
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        z = self.features(x)
        for s in self._prep:
            z = s.transform(z)
        n = z.shape[0]
        outputs = []
        for est, _ in self._models:
            p = est.predict_proba(z)
            if self._coding.multilabel:
                col = list(est.classes_).index(1) if 1 in est.classes_ else None
                outputs.append(p[:, col] if col is not None else np.zeros(n))
            else:
                full = np.zeros((n, len(self._coding.classes)))
                full[:, est.classes_.astype(int)] = p
                outputs.append(full)
        return self._coding.expand(outputs, n)


class Linear(_Stepped):
    """Logistic regression (L-BFGS, warm-started) after ``preprocess`` and optional
    random Fourier features (``kernel="rff"``, ``n_components``, gamma = 1 / n_features)."""

    _rules: ClassVar[dict[str, Any]] = {
        **_Stepped._rules,
        "preprocess": OneOf(("standardise", "tfidf", "none")),
        "kernel": OneOf((None, "rff")),
        "n_components": Interval(int, 1),
        "C": Interval(float, 0, open_low=True),
    }

    def __init__(
        self,
        *,
        features: Features,
        preprocess: str = "standardise",
        kernel: str | None = None,
        n_components: int = 1000,
        C: float = 1.0,
        max_rows: int | None = None,
        max_iter: int = 1000,
        seed: int = 0,
    ):
        self.features = features
        self.preprocess = preprocess
        self.kernel = kernel
        self.n_components = n_components
        self.C = C
        self.max_rows = max_rows
        self.max_iter = max_iter
        self.seed = seed

    @property
    def name(self) -> str:
        extra = "".join(
            [
                f", rff{self.n_components}" if self.kernel else "",
                f", <={self.max_rows} rows" if self.max_rows else "",
            ]
        )
        return f"linear({self.features.name}{extra})"

    def _steps(self) -> list[Any]:
        steps = [_preprocessor(self.preprocess)]
        if self.kernel == "rff":
            steps.append(_RFF(self.n_components, self.seed))
        return steps

    def _estimator(self, n_rows: int) -> Any:
        return LogisticRegression(C=self.C, warm_start=True, max_iter=self.first_step, tol=1e-4)

    def _grow(self, est: Any, step: int, x: Any, y: np.ndarray) -> bool:
        est.set_params(max_iter=step)
        est.fit(x, y)
        return bool(np.max(est.n_iter_) < step)


def cap_linear(learners: list[Learner], max_rows: int) -> list[Learner]:
    """``learners`` with each `Linear` model that has no row cap trained on ``max_rows``
    rows (a stratified subsample) instead: the plans' first step at scale."""
    return [
        type(lr)(**{**lr.get_params(), "max_rows": max_rows})
        if isinstance(lr, Linear) and lr.max_rows is None
        else lr
        for lr in learners
    ]


class _RFF:
    """Random Fourier features with gamma = 1 / n_features of the (standardised) input."""

    def __init__(self, n_components: int, seed: int):
        self.n_components, self.seed = n_components, seed

    def fit_transform(self, x: Any) -> Any:
        gamma = 1.0 / max(1, x.shape[1])
        self.rbf = RBFSampler(gamma=gamma, n_components=self.n_components, random_state=self.seed)
        return self.rbf.fit_transform(x)

    def transform(self, x: Any) -> Any:
        return self.rbf.transform(x)

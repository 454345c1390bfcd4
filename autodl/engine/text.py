"""Text plan: bag of words, TF-IDF, logistic regression; then word bigrams.

Examples are token ids (T, 1, 1, 1). The vocabulary size comes from
``spec.vocabulary`` (largest id + 1); without one, ids are hashed into 2**20
columns. Ids outside the range wrap around. Columns never seen in training are
dropped before TF-IDF (`models._NonEmptyColumns`), so hashed spaces stay small.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from autodl.engine.learner import Features, Learner
from autodl.engine.models import Linear
from autodl.formats.types import DatasetSpec

HASHED = 2**20


def _docs(x: np.ndarray | list[np.ndarray]) -> list[np.ndarray]:
    docs = [np.rint(np.ravel(e)).astype(np.int64) for e in x]
    return [d[d >= 0] for d in docs]


def _sparse(rows: list[np.ndarray], dim: int) -> sp.csr_matrix:
    lens = [len(r) for r in rows]
    r = np.repeat(np.arange(len(rows)), lens)
    c = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    # duplicates are summed: counts
    return sp.csr_matrix((np.ones(len(c), np.float32), (r, c % dim)), shape=(len(rows), dim))


def counts(x: np.ndarray | list[np.ndarray], dim: int = HASHED) -> sp.csr_matrix:
    """(N, dim) sparse token counts."""
    return _sparse(_docs(x), dim)


def bigrams(
    x: np.ndarray | list[np.ndarray], dim: int = HASHED, buckets: int = HASHED
) -> sp.csr_matrix:
    """(N, dim + buckets) sparse counts of tokens and of hashed adjacent token pairs."""
    docs = _docs(x)
    pairs = [(d[:-1] * 1_000_003 + d[1:]) % buckets for d in docs]
    return sp.hstack([_sparse(docs, dim), _sparse(pairs, buckets)], format="csr")


def vocabulary_size(spec: DatasetSpec) -> int:
    if not spec.vocabulary:
        return HASHED
    return max(len(spec.vocabulary), max(spec.vocabulary.values()) + 1)


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The text learners, cheapest first."""
    dim = vocabulary_size(spec)
    return [
        Linear(features=Features("words", counts, dim=dim), preprocess="tfidf", C=10.0, seed=seed),
        Linear(
            features=Features("bigrams", bigrams, dim=dim), preprocess="tfidf", C=10.0, seed=seed
        ),
    ]

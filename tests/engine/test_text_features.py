"""Text features built once: character n-grams from each vocabulary word's n-grams."""

from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import HashingVectorizer

from autodl.engine import text
from autodl.engine.learner import Features


def _by_vectoriser(x, words):
    """The definition: the char_wb vectoriser over every text's words joined."""
    n = len(words)
    docs = [" ".join(words[t] if t < n else "" for t in d) for d in text._docs(x)]
    vec = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), n_features=text.HASHED, alternate_sign=False,
        norm=None,
    )  # fmt: skip
    return vec.transform(docs).astype(np.float32)


def test_char_ngrams_equal_the_vectoriser_over_whole_texts():
    rng = np.random.default_rng(0)
    words = ("", "Über", "a b", "chat", "x", "日本語", "  spaced ", "chat")  # repeats too
    x = [rng.integers(-1, 12, size=(k, 1, 1, 1)).astype(np.float32) for k in (0, 1, 5, 30)]
    x.append(np.array([3, 3, 3, 1], np.float32).reshape(4, 1, 1, 1))  # a repeated word
    got, want = text.chars(x, words), _by_vectoriser(x, words)
    assert got.shape == want.shape == (5, text.HASHED)
    assert (got != want).nnz == 0 and got.nnz > 0
    assert text.chars(x, ()).nnz == 0  # no vocabulary: no words


def test_text_learners_featurise_each_split_once():
    spec_words = tuple(f"w{i}" for i in range(50))
    f = Features("char-ngrams", text.chars, words=spec_words)
    x = [np.arange(k, dtype=np.float32).reshape(k, 1, 1, 1) for k in (3, 7)]
    first = f(x)
    for _ in range(3):  # another learner of the plan, a refit, a prediction
        assert f(x) is first
    assert f.calls == 1

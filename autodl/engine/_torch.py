"""The torch side of the engine: device, threads, seeds, and one training loop.

`TorchLearner` is the Learner contract for a network on prepared inputs. A subclass
gives ``features`` (raw examples -> float32 array (N, ...) of one shape, or int64 ids
for text), ``_net(shape, n_out)`` and optionally ``_augment`` / ``_views`` (test-time
views, e.g. flips). The loop here is nanoGPT-like and linear:

- inputs standardised with the training mean/std (floats only), kept as one tensor;
- AdamW, one-cycle schedule over ``epochs`` (warm-up then cosine), batch ``batch_size``;
- loss: cross-entropy with balanced class weights (multi-class), or BCE with
  ``pos_weight`` (multi-label) over the learnable columns of `LabelCoding`;
- ``fit(data, seconds)`` trains until the step count doubles (at least one epoch) or
  the time is up, checked before every batch, so a call never overruns by more than
  one batch; the next call continues (warm start). ``done`` after ``epochs``.
- CUDA with bfloat16 autocast when available, else CPU with the loop's threads.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodl.engine.learner import Features, Instance, Interval, LabelCoding, Learner, RawX
from autodl.formats.types import Arrays

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PREDICT_BATCH = 512


def set_threads(n: int) -> None:
    """Use ``n`` intra-op threads (the loop's count; LightGBM and BLAS get the same)."""
    if n > 0 and torch.get_num_threads() != n:
        torch.set_num_threads(n)


def autocast() -> Any:
    """bfloat16 autocast on CUDA; a no-op on CPU (float32 is faster there)."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=DEVICE.type == "cuda")


def targets(coding: LabelCoding, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Training targets for the learnable columns of ``coding`` and their weights:
    multi-label, float (n, k) and ``pos_weight`` sqrt(negatives / positives) in
    [1, 10]; multi-class, class indices and balanced class weights (at most 10)."""
    if coding.multilabel:
        t = torch.from_numpy(y[:, coding.classes].astype(np.float32))
        pos = t.sum(0)
        return t, ((len(t) - pos) / pos.clamp_min(1)).sqrt().clamp(1, 10)
    k = len(coding.classes)
    t = torch.from_numpy(np.searchsorted(coding.classes, y.argmax(axis=1)))
    counts = torch.bincount(t, minlength=k).float()
    return t, (len(t) / (max(k, 1) * counts.clamp_min(1))).clamp(max=10)


def weighted_loss(
    logits: torch.Tensor, yb: torch.Tensor, multilabel: bool, weight: torch.Tensor
) -> torch.Tensor:
    """BCE with ``pos_weight`` (multi-label) or weighted cross-entropy, in float32."""
    logits, w = logits.float(), weight.to(logits.device)
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, yb, pos_weight=w)
    return F.cross_entropy(logits, yb, weight=w)


def one_cycle(lr: float, step: int, total: int) -> float:
    """Learning rate at ``step`` of ``total``: linear warm-up over the first tenth, then
    cosine down to 2% of ``lr``."""
    warm = max(1, total // 10)
    if step < warm:
        return lr * (step + 1) / warm
    done = (step - warm) / max(1, total - warm)
    return lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


class TorchLearner(Learner):
    """A network trained by the shared loop (see the module doc)."""

    network: ClassVar[bool] = True
    _rules: ClassVar[dict[str, Any]] = {
        "features": Instance(Features),
        "epochs": Interval(int, 1),
        "batch_size": Interval(int, 1),
        "lr": Interval(float, 0, open_low=True),
        "weight_decay": Interval(float, 0),
        "width": Interval(int, 1),
        "seed": Interval(int, 0),
        "flip": Instance(bool),
    }

    def __init__(
        self,
        *,
        features: Features,
        epochs: int = 30,
        batch_size: int = 64,
        lr: float = 3e-3,
        weight_decay: float = 5e-4,
        width: int = 32,
        seed: int = 0,
        flip: bool = False,
    ):
        self.features = features
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.width = width
        self.seed = seed
        self.flip = flip  # mirror augmentation and test-time views, where a subclass uses them

    # ---- subclass hooks
    def _net(self, shape: tuple[int, ...], n_out: int) -> nn.Module:
        raise NotImplementedError

    def _augment(self, xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return xb

    def _views(self, xb: torch.Tensor) -> list[torch.Tensor]:
        return [xb]

    @property
    def name(self) -> str:
        return f"{type(self).__name__.lower()}({self.features.name})"

    # ---- shared loop
    def _inputs(self, x: RawX) -> torch.Tensor:
        z = torch.from_numpy(np.ascontiguousarray(self.features(x)))
        if z.is_floating_point():
            z = (z.float() - self._mean) / self._std
        return z

    def _setup(self, data: Arrays, seconds: float) -> None:
        torch.manual_seed(self.seed)
        self._gen = torch.Generator().manual_seed(self.seed)
        raw = torch.from_numpy(np.ascontiguousarray(self.features(data.x)))
        if raw.is_floating_point():
            dims = [0] + list(range(2, raw.ndim))  # per channel (axis 1)
            self._mean = raw.float().mean(dim=dims, keepdim=True)[:1]
            self._std = raw.float().std(dim=dims, keepdim=True)[:1].clamp_min(1e-6)
        self._x = self._inputs(data.x)
        y = np.asarray(data.labels) > 0.5
        self._coding = c = LabelCoding.fit(y)
        n_out = len(c.classes)
        t, self._weight = targets(c, y)
        self._y = t
        self._model = self._net(tuple(self._x.shape[1:]), max(n_out, 1)).to(DEVICE)
        self._opt = torch.optim.AdamW(
            self._model.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        self._per_epoch = math.ceil(len(t) / self.batch_size)
        self._total = self.epochs * self._per_epoch
        self._step = 0
        self._order = torch.zeros(0, dtype=torch.long)
        self._trainable = n_out >= (1 if c.multilabel else 2)

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        deadline = start + seconds
        if not self._trainable:
            self._step = self._total
        target = min(self._total, max(2 * self._step, self._per_epoch))
        self._model.train()
        while self._step < target:
            if len(self._order) == 0:
                self._order = torch.randperm(len(self._y), generator=self._gen)
            idx, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
            xb = self._augment(self._x[idx], self._gen).to(DEVICE, non_blocking=True)
            yb = self._y[idx].to(DEVICE)
            for group in self._opt.param_groups:
                group["lr"] = one_cycle(self.lr, self._step, self._total)
            with autocast():
                loss = weighted_loss(self._model(xb), yb, self._coding.multilabel, self._weight)
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            self._step += 1
            if time.monotonic() > deadline:
                break

    @property
    def done(self) -> bool:
        return hasattr(self, "_model") and self._step >= self._total

    @torch.no_grad()
    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_model"):
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        z = self._inputs(x)
        self._model.eval()
        out = []
        for i in range(0, len(z), PREDICT_BATCH):
            xb = z[i : i + PREDICT_BATCH].to(DEVICE)
            ps = []
            for v in self._views(xb):
                with autocast():
                    logits = self._model(v).float()
                ps.append(torch.sigmoid(logits) if self._coding.multilabel else logits.softmax(1))
            out.append(torch.stack(ps).mean(0).cpu().numpy().astype(np.float64))
        p = np.concatenate(out) if out else np.zeros((0, max(len(self._coding.classes), 1)))
        if not self._trainable:
            return self._coding.expand([], len(z))
        outputs = list(p.T) if self._coding.multilabel else [p]
        return self._coding.expand(outputs, len(z))

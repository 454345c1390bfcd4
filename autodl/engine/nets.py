"""Small networks in plain torch, each with its `TorchLearner`.

- `CNN`: images (N, C, H, W) or log-mel spectrograms (N, 1, bands, frames): three
  conv-BN-ReLU blocks (``width``, 2x, 4x channels), max-pooling between them, global
  average + max pooling, dropout, a linear head. Augmentation: random shifts of up to
  1/8 of the size (zero padded) and, with ``flip``, horizontal flips, which are also
  the test-time views. Flips are on for colour photographs only (digits, spectrograms
  and motion directions change meaning when mirrored).
- `VideoCNN`: clips (N, C, T, H, W): the same 2-D trunk on every frame, then a
  temporal convolution (so the order of frames, i.e. the direction of motion, is
  seen) and pooling over time. Random shifts, no flips.
- `TextCNN`: token ids (N, L) (0 = padding): embeddings, a convolution over 1-3
  neighbouring tokens, masked max + mean pooling, a linear head (a fastText/Kim CNN).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from autodl.engine._torch import TorchLearner
from autodl.engine.learner import Features, Interval


def block(c_in: int, c_out: int, dims: int = 2) -> nn.Sequential:
    conv, bn = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv1d, nn.BatchNorm1d)
    return nn.Sequential(conv(c_in, c_out, 3, padding=1, bias=False), bn(c_out), nn.ReLU())


class Trunk(nn.Module):
    """(N, C, H, W) -> (N, 8 * width): conv blocks, pooling, global avg + max."""

    def __init__(self, c_in: int, width: int, min_side: int):
        super().__init__()
        layers: list[nn.Module] = [block(c_in, width)]
        c, side = width, min_side
        for _ in range(2):
            if side >= 4:  # pool only while the map is big enough
                layers.append(nn.MaxPool2d(2))
                side //= 2
            layers.append(block(c, 2 * c))
            c *= 2
        self.body = nn.Sequential(*layers)
        self.out_dim = 2 * c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


def shift(xb: torch.Tensor, g: torch.Generator, frac: float = 0.125) -> torch.Tensor:
    """Shift each example along its last two axes by up to ``frac`` of the size (zeros in)."""
    h, w = xb.shape[-2], xb.shape[-1]
    ph, pw = max(1, int(h * frac)), max(1, int(w * frac))
    padded = nn.functional.pad(xb, (pw, pw, ph, ph))
    out = torch.empty_like(xb)
    dy = torch.randint(0, 2 * ph + 1, (len(xb),), generator=g)
    dx = torch.randint(0, 2 * pw + 1, (len(xb),), generator=g)
    for i in range(len(xb)):
        out[i] = padded[i, ..., dy[i] : dy[i] + h, dx[i] : dx[i] + w]
    return out


class CNN(TorchLearner):
    """A small 2-D CNN (see the module doc); ``flip`` adds mirror augmentation and TTA."""

    def _net(self, shape: tuple[int, ...], n_out: int) -> nn.Module:
        trunk = Trunk(shape[0], self.width, min(shape[1:]))
        return nn.Sequential(trunk, nn.Dropout(0.3), nn.Linear(trunk.out_dim, n_out))

    def _augment(self, xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        xb = shift(xb, g)
        if self.flip:
            mirror = torch.rand(len(xb), generator=g) < 0.5
            xb[mirror] = xb[mirror].flip(-1)
        return xb

    def _views(self, xb: torch.Tensor) -> list[torch.Tensor]:
        return [xb, xb.flip(-1)] if self.flip else [xb]


class _VideoNet(nn.Module):
    def __init__(self, c_in: int, t: int, side: int, width: int, n_out: int):
        super().__init__()
        self.trunk = Trunk(c_in, width, side)
        d = self.trunk.out_dim
        self.time = nn.Sequential(block(d, d, dims=1), block(d, d, dims=1))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(2 * d, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        f = self.trunk(x.transpose(1, 2).reshape(n * t, c, h, w)).view(n, t, -1)
        z = self.time(f.transpose(1, 2))  # (n, d, t)
        return self.head(torch.cat([z.mean(2), z.amax(2)], dim=1))


class VideoCNN(TorchLearner):
    """Frame-level CNN, temporal convolutions, pooling over time (see the module doc)."""

    def _net(self, shape: tuple[int, ...], n_out: int) -> nn.Module:
        return _VideoNet(shape[0], shape[1], min(shape[2:]), self.width, n_out)

    def _augment(self, xb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return shift(xb, g)


class _TextNet(nn.Module):
    def __init__(self, vocab: int, width: int, n_out: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(width, width, k, padding=k // 2) for k in (1, 2, 3))
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(6 * width, n_out))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids > 0).unsqueeze(1).float()  # (n, 1, L)
        e = self.embed(ids).transpose(1, 2)  # (n, d, L)
        pooled = []
        for conv in self.convs:
            h = torch.relu(conv(e))[..., : ids.shape[1]] * mask
            pooled += [h.amax(2), h.sum(2) / mask.sum(2).clamp_min(1)]
        return self.head(torch.cat(pooled, dim=1))


class TextCNN(TorchLearner):
    """Token embeddings and n-gram convolutions (ids shifted by one; 0 pads)."""

    _rules: ClassVar[dict[str, Any]] = {**TorchLearner._rules, "vocab": Interval(int, 2)}

    def __init__(
        self,
        *,
        features: Features,
        vocab: int,
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        width: int = 64,
        seed: int = 0,
    ):
        super().__init__(
            features=features,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            width=width,
            seed=seed,
        )
        self.vocab = vocab

    def _net(self, shape: tuple[int, ...], n_out: int) -> nn.Module:
        return _TextNet(self.vocab, self.width, n_out)

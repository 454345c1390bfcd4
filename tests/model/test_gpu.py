"""Networks trained on a GPU (issue 16): their saved model loads and predicts on a GPU
and on a machine without one. Skipped where no CUDA device is visible (this project's
CI machines have none); run on a GPU machine with ``pytest tests/model/test_gpu.py``.

On a GPU the networks run under bfloat16 autocast (`_torch.autocast`), on a CPU in
float32, so a GPU-trained model's probabilities on a CPU are close, not equal, to the
run's; on a GPU they are the run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("needs a CUDA device (none is visible here)", allow_module_level=True)

from autodl.engine import calibrate, export, image, speech  # noqa: E402
from autodl.formats.dataset import open_dataset  # noqa: E402
from autodl.model import load_model  # noqa: E402
from tests.conftest import DATASETS, run_autodl  # noqa: E402
from tests.datasets_fixture import *  # noqa: E402,F403

PLANS = {"image": image.plan, "speech": speech.plan}
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
PROBE = (
    "import sys, json, numpy as np, torch, autodl; m = autodl.load_model(sys.argv[1]); "
    "from autodl.formats.dataset import open_dataset; "
    "x = open_dataset(sys.argv[2]).test.load(max_side=m.max_side).x; "
    "print(json.dumps({'cuda': torch.cuda.is_available(), 'p': m.predict_proba(x).tolist()}))"
)


def _modules(learner) -> list:
    return [v for v in vars(learner).values() if isinstance(v, torch.nn.Module)]


def _probe(model, dataset, env) -> tuple[bool, np.ndarray]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(model), str(dataset)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["cuda"], np.asarray(got["p"])


@pytest.mark.slow
@pytest.mark.parametrize("domain", list(PLANS))
def test_a_network_trained_on_the_gpu_predicts_on_the_gpu_and_without_one(
    domain, tiny_datasets, tmp_path
):
    ds = open_dataset(tiny_datasets[domain])
    cnn = next(lr for lr in PLANS[domain](ds.spec, 0) if lr.name.startswith("cnn"))
    data = ds.train.load()
    cnn.fit(data, 5.0)
    assert any(p.is_cuda for m in _modules(cnn) for p in m.parameters()), "trained on the CPU"
    x = ds.test.load().x
    raw = cnn.predict_proba(x)
    multiclass = bool((data.labels.sum(1) == 1).all())
    cal = calibrate.fit(cnn.predict_proba(data.x), data.labels, multiclass=multiclass)
    recipe = export.Recipe.of([cnn], [cnn.name])
    info = {"learner": cnn.name, "spec": export.spec_json(ds.spec), "max_side": None}
    export.write(tmp_path / "model", recipe.snapshot(), recipe.names, cal, info)
    want = cal.probabilities(raw)

    here = load_model(tmp_path / "model")  # this process: back on the GPU
    assert np.abs(here.predict_proba(x) - want).max() < 1e-4
    cuda, on_gpu = _probe(tmp_path / "model", tiny_datasets[domain], None)
    assert cuda and np.abs(on_gpu - want).max() < 1e-4
    cuda, on_cpu = _probe(tmp_path / "model", tiny_datasets[domain], CPU_ONLY)
    assert not cuda
    # bfloat16 on the GPU, float32 on the CPU: close, and the same top class almost always
    diff = np.abs(on_cpu - want).max()
    agree = np.mean(on_cpu.argmax(1) == want.argmax(1))
    print(f"{domain}: GPU-trained model on the CPU: max diff {diff:.2e}, top class {agree:.1%}")
    assert diff < 0.05 and agree >= 0.9


@pytest.mark.slow
def test_a_gpu_run_saves_a_model_that_predicts_its_predictions(tmp_path):
    src = DATASETS / "handdigits"
    if not src.is_dir():
        pytest.skip(f"the sample datasets are not at {DATASETS}")
    out = tmp_path / "run"
    proc = run_autodl("run", src, "--time-budget", 60, "--output", out, timeout=240)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "model" / "model.json").read_text())
    ref = np.loadtxt(out / "predictions" / f"handdigits.predict_{doc['prediction_index']}")
    for env, tol in ((None, 1e-4), (CPU_ONLY, 0.1)):
        target = tmp_path / f"p-{'cpu' if env else 'gpu'}.predict"
        args = ["predict", out / "model", src, "--split", "test", "--format", "predict"]
        proc = run_autodl(*args, "--output", target, env=env)
        assert proc.returncode == 0, proc.stderr
        got = np.loadtxt(target)
        diff = np.abs(got - ref).max()
        agree = np.mean(got.argmax(1) == ref.argmax(1))
        where = "the CPU" if env else "the GPU"
        print(f"{doc['learner']} on {where}: max diff {diff:.2e}, top class {agree:.1%}")
        # the GPU: the run's own scores; the CPU: float32 for the GPU's bfloat16 (module doc)
        assert diff < tol and agree >= (1.0 if env is None else 0.98)

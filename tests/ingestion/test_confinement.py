"""The engine's process is confined: no secrets in its environment, the kernel's first
choice to kill, a file-size limit, a memory limit whose breach is a typed failure that
keeps the predictions made before it, and a channel that never unpickles."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from autodl import _confine
from autodl._engine_process import _Channel, _unpack
from autodl.ingestion import FILE_SIZE, MEMORY, ingest
from autodl.scoring.curve import read_end_file

ENGINES = "tests.ingestion.engines"
GIB = 1024**3
SECRETS = {
    "AUTODL_SECRET_KEY": "s3cret-key",
    "AUTODL_DATABASE_URL": "postgresql://u:pw@db/autodl",
    "AUTODL_BROKER_URL": "redis://:pw@broker:6379/0",
    "AWS_SECRET_ACCESS_KEY": "aws",
    "PGPASSWORD": "pw",
    "GITHUB_TOKEN": "gh",
}


def _facts(out) -> dict:
    for line in (out / "engine.log").read_text().splitlines():
        if "CONFINEMENT " in line:
            return json.loads(line.split("CONFINEMENT ", 1)[1])
    raise AssertionError("the engine did not report")


@pytest.mark.slow
def test_the_engine_sees_no_secret_and_is_the_kernels_first_choice(
    tabular_dataset, tmp_path, monkeypatch
):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUTODL_MAX_CLASSES", "77")  # a reader's cap: the engine keeps it
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    limits = _confine.Limits(memory_bytes=6 * GIB, file_bytes=123 * 1024**2, address_space=True)
    res = ingest(
        tabular_dataset[0],
        tmp_path / "o",
        30,
        engine=f"{ENGINES}:report_confinement",
        limits=limits,
    )
    assert res.success, res.error
    facts = _facts(tmp_path / "o")
    for name in SECRETS:
        assert name not in facts["environ"]
        assert name not in facts["proc_environ"]  # not even in the exec'd environment block
    assert "AUTODL_MAX_CLASSES" in facts["environ"] and "PYTHONPATH" in facts["environ"]
    assert facts["oom_score_adj"] == 1000
    assert facts["fsize"] == 123 * 1024**2
    assert facts["as"] == 6 * GIB


@pytest.mark.slow
def test_without_limits_the_secrets_still_stay_out(tabular_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODL_SECRET_KEY", "s3cret-key")
    res = ingest(tabular_dataset[0], tmp_path / "o", 30, engine=f"{ENGINES}:report_confinement")
    facts = _facts(tmp_path / "o")
    assert res.success and "AUTODL_SECRET_KEY" not in facts["proc_environ"]
    assert facts["oom_score_adj"] == 1000
    assert facts["as"] == resource.RLIM_INFINITY


@pytest.mark.slow
def test_breaking_the_memory_limit_fails_typed_and_keeps_the_predictions(tabular_dataset, tmp_path):
    limits = _confine.Limits(memory_bytes=int(1.5 * GIB), address_space=True)
    res = ingest(
        tabular_dataset[0], tmp_path / "o", 60, engine=f"{ENGINES}:predict_then_hog", limits=limits
    )
    assert not res.success and res.failure == MEMORY
    assert res.error == "the model needed more than 1.5 GB of memory"
    assert len(res.predictions) == 1 and res.predictions[0].path.exists()
    assert read_end_file(tmp_path / "o" / "predictions" / "end.txt")["ingestion_success"] == 0


@pytest.mark.slow
def test_memory_limit_before_the_first_prediction(tabular_dataset, tmp_path):
    limits = _confine.Limits(memory_bytes=2 * GIB, address_space=True)
    res = ingest(
        tabular_dataset[0],
        tmp_path / "o",
        60,
        engine=f"{ENGINES}:hog_before_predicting",
        limits=limits,
    )
    assert res.failure == MEMORY and res.predictions == []
    assert res.error == "the model needed more than 2.0 GB of memory"


@pytest.mark.slow
def test_a_file_past_the_file_size_limit_fails_typed(tabular_dataset, tmp_path):
    limits = _confine.Limits(file_bytes=8 * 1024**2)
    res = ingest(
        tabular_dataset[0],
        tmp_path / "o",
        60,
        engine=f"{ENGINES}:predict_then_write_big_file",
        limits=limits,
    )
    assert res.failure == FILE_SIZE and len(res.predictions) == 1
    assert "larger than 8.0 MB" in res.error


def test_address_space_limit_is_skipped_where_cuda_is_visible(tmp_path):
    # The one fake: a device node standing for the NVIDIA driver's (no GPU here).
    node = tmp_path / "nvidiactl"
    node.touch()
    code = (
        "import resource, sys; from autodl import _confine as c; "
        f"c.CUDA_DEVICE_NODES = ({str(node)!r},); "
        "c.apply(c.Limits(memory_bytes=3 * 1024**3)); "
        "print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    )
    for env, expected in (({}, resource.RLIM_INFINITY), ({"CUDA_VISIBLE_DEVICES": "-1"}, 3 * GIB)):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**_confine.scrubbed_environ(), **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert int(out.stdout) == expected


def test_auto_job_memory_is_a_share_of_the_machine_per_slot():
    total = _confine.total_memory()
    assert _confine.job_memory_bytes(0, 4) == int(total * 0.8 / 4)
    assert _confine.job_memory_bytes(123, 4) == 123


class _Bytes:
    """A connection holding one raw message (what a compromised engine could send)."""

    def __init__(self, data: bytes):
        self.data = data

    def recv_bytes(self, maxlength=None):
        return self.data


def test_the_channel_never_unpickles():
    import pickle

    header = json.dumps([{"nd": "|O", "shape": [1]}]).encode()
    with pytest.raises(ValueError, match="refused"):
        _Channel(_Bytes(len(header).to_bytes(4, "little") + header + b"x" * 8)).recv()
    bomb = pickle.dumps(("log", "x"))
    with pytest.raises(ValueError):
        _unpack(len(bomb).to_bytes(4, "little") + bomb)

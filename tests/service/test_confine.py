"""Validation of an upload runs in a confined child process, never in the server's own:
a memory limit, a wall-clock limit, an environment without secrets, 422 naming the limit."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from autodl.formats.archive import zip_folder
from autodl.service import confine
from autodl.service.app import create_app
from autodl.service.models import Job
from tests.service.conftest import NullDispatcher, add_user, upload

GIB = 1024**3


def _client(settings, **changes) -> TestClient:
    return TestClient(create_app(replace(settings, **changes), dispatcher=NullDispatcher()))


def _rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def huge_classes_zip(tabular_dir, tmp_path_factory):
    """The issue's upload: every split declares two billion classes (a few hundred bytes)."""
    root = tmp_path_factory.mktemp("huge") / "tinytabular"
    shutil.copytree(tabular_dir, root)
    for meta in root.rglob("metadata.textproto"):
        text = meta.read_text()
        meta.write_text(text.replace("output_dim: 3", "output_dim: 2000000000"))
    return zip_folder(root, tmp_path_factory.mktemp("zips") / "huge.zip")


def test_the_server_process_never_calls_check_dataset(settings, tabular_zip, monkeypatch):
    import autodl.formats.check

    def refuse(*_a, **_k):
        raise AssertionError("check_dataset ran in the server's process")

    monkeypatch.setattr(autodl.formats.check, "check_dataset", refuse)
    with _client(settings) as client:
        r = upload(client, add_user(client, "ann"), tabular_zip)
        assert r.status_code == 201, r.text
        with client.app.state.service.db.session() as s:
            # The child's report came back: the dataset's name is read from it.
            assert s.get(Job, r.json()["id"]).dataset_name == "tinytabular"


def test_a_memory_hungry_dataset_breaks_the_memory_limit_not_the_server(settings, huge_classes_zip):
    # The readers' cap on classes is lifted, so only the process's limit stands.
    with _client(settings, validate_memory_bytes=GIB, max_classes=2_000_000_000) as client:
        token = add_user(client, "ann")
        before = _rss()
        r = upload(client, token, huge_classes_zip)
        grown = _rss() - before
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "needs more than 1.0 GB of memory (AUTODL_VALIDATE_MEMORY_BYTES)" in detail
    assert grown < 50 * 1024**2, f"the server grew by {grown / 1024**2:.0f} MB"
    assert not list((settings.data_dir / "tmp").glob("upload-*"))


def test_the_wall_clock_limit_stops_the_check(settings, tabular_zip):
    with _client(settings, validate_wall_seconds=0.05) as client:
        r = upload(client, add_user(client, "ann"), tabular_zip)
    assert r.status_code == 422
    assert "longer than 0.05 s (AUTODL_VALIDATE_WALL_SECONDS)" in r.json()["detail"]


def test_the_check_runs_confined_and_without_secrets(settings, tabular_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODL_SECRET_KEY", "from-the-environment")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws")
    s = replace(settings, database_url="postgresql://u:pw@db/x", broker_url="redis://b:6379/0")
    env = confine.child_environ(s)
    for name in (
        "AUTODL_SECRET_KEY",
        "AUTODL_DATABASE_URL",
        "AUTODL_BROKER_URL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert name not in env
    assert env["AUTODL_MAX_CLASSES"] == str(s.max_classes)  # the readers' caps travel
    limits = confine.check_limits(s)
    assert limits.memory_bytes == s.validate_memory_bytes and limits.oom_score_adj == 1000
    answer = confine.check_in_child(tabular_dir, tmp_path, s)
    assert answer["errors"] == 0 and answer["report"]["name"] == "tinytabular"


@pytest.mark.slow
def test_the_cpu_time_limit_stops_the_check(settings, tmp_path_factory):
    from autodl.formats.samples import make_tabular

    # About 2 s of CPU to check 120,000 records, against a limit of 1 s. (40,000 took
    # 1.5 s only while importing `autodl` loaded the engine too: 0.5 s since.)
    root = make_tabular(tmp_path_factory.mktemp("cpu") / "t", n_train=120_000, n_test=20)
    with pytest.raises(confine.LimitBroken) as e:
        confine.check_in_child(
            root, tmp_path_factory.mktemp("w"), replace(settings, validate_cpu_seconds=1)
        )
    assert e.value.limit == "AUTODL_VALIDATE_CPU_SECONDS" and e.value.status == 422
    assert "more than 1 s of CPU time" in e.value.message

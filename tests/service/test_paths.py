"""Names and paths: a job's files are read only from inside that job's folder.

The attack of issue 12: a data folder named ``.data/`` gave an empty dataset name,
the form's ``name`` was taken instead, and the download of
``results/unlabelled/{name}.predict`` with ``name=../../../<A>/results/unlabelled/<task>``
served user A's predictions to user B.
"""

from __future__ import annotations

import os
import shutil
import zipfile

import pytest
from fastapi.testclient import TestClient

from autodl.formats.archive import zip_folder
from autodl.service.app import create_app
from autodl.service.jobs.runner import run_job
from autodl.service.models import Job
from autodl.service.storage import OutsideJob, Storage
from tests.service.conftest import NullDispatcher, add_user, bearer, upload


@pytest.fixture
def two_users(settings, tabular_zip):
    """A client, Ann's finished job (with predictions) and the tokens of Ann and Bob."""
    with TestClient(create_app(settings, dispatcher=NullDispatcher())) as client:
        ann, bob = add_user(client, "ann"), add_user(client, "bob")
        a = upload(client, ann, tabular_zip).json()["id"]
        assert run_job(a, settings) == "finished"
        yield client, a, ann, bob


def _a_predictions(client, a) -> bytes:
    storage = client.app.state.service.storage
    return (storage.results_dir(a) / "unlabelled" / "tinytabular.predict").read_bytes()


def _nameless_zip(tabular_dir, tmp_path):
    """The tiny dataset with its folder renamed ``.data/`` (and ``.solution``)."""
    root = tmp_path / "nameless"
    shutil.copytree(tabular_dir, root)
    (root / "tinytabular.data").rename(root / ".data")
    (root / "tinytabular.solution").rename(root / ".solution")
    return zip_folder(root, tmp_path / "nameless.zip")


@pytest.mark.slow
def test_the_exact_attack_is_refused_and_never_serves_another_users_predictions(
    two_users, settings, tabular_dir, tmp_path
):
    client, a, ann, bob = two_users
    theirs = _a_predictions(client, a)
    attack = f"../../../{a}/results/unlabelled/tinytabular"
    r = upload(client, bob, _nameless_zip(tabular_dir, tmp_path), name=attack)
    if r.status_code == 201:  # before the fix: queued under the form's name; run it
        b = r.json()["id"]
        run_job(b, settings)
        got = client.get(f"/api/v1/jobs/{b}/download/predictions.predict", headers=bearer(bob))
        assert got.status_code == 404 or got.content != theirs, "Bob got Ann's predictions"
    assert r.status_code == 422, r.text
    (problem,) = [p for p in r.json()["problems"] if p["field"] == "name"]
    assert problem["file"] == ".data/" and "[A-Za-z0-9][A-Za-z0-9._-]{0,63}" in problem["expected"]
    assert "''" in problem["message"] and "Rename" in problem["message"]
    # Nothing was queued and nothing is left in tmp.
    storage = client.app.state.service.storage
    assert list((storage.root / "tmp").iterdir()) == []
    assert client.get("/api/v1/jobs", headers=bearer(bob)).json()["jobs"] == []


@pytest.mark.slow
def test_a_stored_dataset_name_that_climbs_out_of_the_job_folder_is_never_followed(
    two_users, tabular_zip
):
    """Defence in depth: a row written before the name rule (or by hand) cannot reach A's files."""
    client, a, ann, bob = two_users
    service = client.app.state.service
    b = upload(client, bob, tabular_zip).json()["id"]
    (service.storage.results_dir(b) / "unlabelled").mkdir(parents=True)
    with service.db.session() as s:
        job = s.get(Job, b)
        job.dataset_name = f"../../../{a}/results/unlabelled/tinytabular"
        job.state = "finished"
    got = client.get(f"/api/v1/jobs/{b}/download/predictions.predict", headers=bearer(bob))
    assert got.status_code == 404, got.content[:80]
    assert (
        "predictions.predict"
        not in client.get(f"/api/v1/jobs/{b}", headers=bearer(bob)).json()["downloads"]
    )


@pytest.mark.slow
def test_links_in_a_job_folder_are_not_followed(two_users, tabular_zip, settings):
    client, a, ann, bob = two_users
    storage = client.app.state.service.storage
    b = upload(client, bob, tabular_zip).json()["id"]
    assert run_job(b, settings) == "finished"
    mine = storage.results_dir(b)
    theirs = storage.results_dir(a)
    (theirs / "engine.log").write_text("ANN'S SECRET LOG\n")
    for rel in ("engine.log", "unlabelled/predictions.csv", "scores.json"):
        (mine / rel).unlink()
        os.symlink(theirs / rel, mine / rel)
    log = client.get(f"/api/v1/jobs/{b}/log", headers=bearer(bob))
    assert log.status_code == 200 and "ANN'S SECRET" not in log.text
    for name in ("predictions.csv", "scores.json"):
        r = client.get(f"/api/v1/jobs/{b}/download/{name}", headers=bearer(bob))
        assert r.status_code == 404, (name, r.content[:80])
    r = client.get(f"/api/v1/jobs/{b}/download/results.zip", headers=bearer(bob))
    assert r.status_code == 200
    names = (tmp := storage.root / "got.zip").write_bytes(r.content) and zipfile.ZipFile(
        tmp
    ).namelist()
    assert "engine.log" not in names and "unlabelled/predictions.csv" not in names
    assert "scores.txt" in names  # the job's own files are still there
    assert client.get(f"/api/v1/jobs/{b}/curve", headers=bearer(bob)).status_code == 200


def test_job_file_resolves_and_refuses_what_lies_outside(tmp_path):
    storage = Storage(tmp_path / "data")
    inside = storage.job_dir(3) / "results"
    inside.mkdir(parents=True)
    (inside / "ok.txt").write_text("ok")
    assert storage.job_file(3, "results", "ok.txt") == inside / "ok.txt"
    other = storage.job_dir(4)
    other.mkdir()
    (other / "secret").write_text("x")
    for parts in (
        ("results", "..", "..", "4", "secret"),
        ("..", "4", "secret"),
        ("/etc/passwd",),
        ("results/../../4/secret",),
    ):
        with pytest.raises(OutsideJob):
            storage.job_file(3, *parts)
    os.symlink(other / "secret", inside / "link")
    with pytest.raises(OutsideJob):
        storage.job_file(3, "results", "link")
    os.symlink(other, inside / "dirlink")
    with pytest.raises(OutsideJob):
        storage.job_file(3, "results", "dirlink", "secret")
    assert storage.find_job_file(3, "results", "link") is None
    assert storage.find_job_file(3, "results", "missing") is None
    assert storage.find_job_file(3, "results", "ok.txt") == inside / "ok.txt"


def test_a_job_id_too_large_for_the_database_is_a_clear_error(app_client):
    from tests.service.conftest import add_user, bearer

    token = add_user(app_client, "ann")
    for url in ("/api/v1/jobs/99999999999999999999", "/api/v1/jobs/0/curve"):
        r = app_client.get(url, headers=bearer(token))
        assert r.status_code == 422 and "job_id" in r.json()["detail"]

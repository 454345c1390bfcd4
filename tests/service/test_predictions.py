"""Predicting on new data with a run's model: the endpoints, their permissions, the checks
made before queueing, deletion, and the whole path through the embedded supervisor."""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select, update

from autodl.service.jobs import create_prediction_job
from autodl.service.models import Job
from autodl.service.quotas import usage
from tests.service.conftest import add_user, assert_not_found, bad_zip, bearer, upload

# ------------------------------------------------------------------ helpers


def _service(client):
    return client.app.state.service


def _queued_prediction(client, job_id: int, name: str = "p") -> int:
    """A queued prediction job under run ``job_id`` (5 s budget, nothing stored yet)."""
    with _service(client).db.session() as s:
        parent = s.get(Job, job_id)
        return create_prediction_job(
            s, parent.user, parent, name=name, time_budget=5, stored_bytes=0
        ).id


def finished_run(client, token: str, zip_path: Path, *, model: bool = True) -> int:
    """A run, queued by the API, then marked finished with (or without) a model folder:
    the endpoints look at the job's state and files, not at how they were made."""
    r = upload(client, token, zip_path)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    service = _service(client)
    with service.db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="finished"))
    if model:
        folder = service.storage.model_dir(job_id)
        folder.mkdir(parents=True)
        (folder / "model.json").write_text(json.dumps({"kind": "test"}))
        (folder / "weights.bin").write_bytes(b"\0" * 1000)
    return job_id


def post_data(client, token: str, job_id: int, path: Path):
    with open(path, "rb") as f:
        return client.post(
            f"/api/v1/jobs/{job_id}/predictions",
            headers=bearer(token),
            files={"file": (path.name, f, "application/zip")},
        )


def prediction_rows(client) -> list[Job]:
    with _service(client).db.session() as s:
        return list(s.scalars(select(Job).where(Job.kind == "predict")))


# ------------------------------------------------------------------ endpoints


def test_model_download_is_a_zip_of_the_model_folder(app_client, tabular_zip, tmp_path):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    r = app_client.get(f"/api/v1/jobs/{job_id}/model", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert f"job{job_id}-model.zip" in r.headers["content-disposition"]
    (tmp_path / "m.zip").write_bytes(r.content)
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        assert sorted(zf.namelist()) == ["model/model.json", "model/weights.bin"]
        assert json.loads(zf.read("model/model.json")) == {"kind": "test"}
    # Made for each answer and not kept (stranger 16, item 8: jobs/N/model.zip took disk
    # space the storage quota did not count): nothing is left beside the job or in tmp/.
    storage = _service(app_client).storage
    assert not (storage.job_dir(job_id) / "model.zip").exists()
    assert list((storage.root / "tmp").iterdir()) == []
    again = app_client.get(f"/api/v1/jobs/{job_id}/model", headers=bearer(token))
    with zipfile.ZipFile(io.BytesIO(again.content)) as zf:
        assert sorted(zf.namelist()) == ["model/model.json", "model/weights.bin"]
    assert list((storage.root / "tmp").iterdir()) == []
    # A zip cached there by an earlier version goes at the next download.
    (storage.job_dir(job_id) / "model.zip").write_bytes(r.content)
    assert app_client.get(f"/api/v1/jobs/{job_id}/model", headers=bearer(token)).status_code == 200
    assert not (storage.job_dir(job_id) / "model.zip").exists()


def test_a_download_folder_left_behind_is_swept(app_client, tabular_zip):
    storage = _service(app_client).storage
    old = storage.temp_dir("download-")
    (old / "model.zip").write_bytes(b"x")
    os.utime(old / "model.zip", (0, 0))
    os.utime(old, (0, 0))
    assert storage.sweep_tmp() == [old.name] and not old.exists()


def test_a_job_without_a_model_answers_404_with_the_reason(app_client, tabular_zip, tmp_path):
    token = add_user(app_client, "ann")
    queued = upload(app_client, token, tabular_zip).json()["id"]
    r = app_client.get(f"/api/v1/jobs/{queued}/model", headers=bearer(token))
    assert r.status_code == 404 and "still queued" in r.json()["detail"]
    no_model = finished_run(app_client, token, tabular_zip, model=False)
    r = app_client.get(f"/api/v1/jobs/{no_model}/model", headers=bearer(token))
    assert r.status_code == 404 and "saved no model" in r.json()["detail"]
    r = post_data(app_client, token, no_model, tabular_zip)
    assert r.status_code == 404 and "saved no model" in r.json()["detail"]
    with _service(app_client).db.session() as s:
        s.execute(update(Job).where(Job.id == queued).values(state="failed", reason="x"))
    r = post_data(app_client, token, queued, tabular_zip)
    assert r.status_code == 404 and "failed" in r.json()["detail"]
    assert prediction_rows(app_client) == []
    # The page shows neither button.
    page = app_client.get(f"/jobs/{no_model}", headers=bearer(token)).text
    assert "Download model" not in page and "Predict on new data" not in page


def test_another_users_model_and_predictions_are_404(app_client, tabular_zip):
    ann = add_user(app_client, "ann")
    bob = add_user(app_client, "bob")
    job_id = finished_run(app_client, ann, tabular_zip)
    pid = _queued_prediction(app_client, job_id)
    mine = app_client.get(f"/api/v1/jobs/{job_id}/predictions/{pid}", headers=bearer(ann))
    assert mine.status_code == 200 and mine.json()["state"] == "queued"
    assert mine.json()["download"] is None
    assert_not_found(
        app_client,
        bob,
        job_id,
        [
            ("GET", f"/api/v1/jobs/{job_id}/model"),
            ("GET", f"/api/v1/jobs/{job_id}/predictions"),
            ("GET", f"/api/v1/jobs/{job_id}/predictions/{pid}"),
            ("GET", f"/api/v1/jobs/{job_id}/predictions/{pid}/predictions.csv"),
            ("DELETE", f"/api/v1/jobs/{job_id}/predictions/{pid}"),
        ],
    )
    r = post_data(app_client, bob, job_id, tabular_zip)
    assert r.status_code == 404 and f"No job {job_id}" in r.json()["detail"]
    # A prediction id under another of one's own runs is not found either.
    other = finished_run(app_client, ann, tabular_zip)
    r = app_client.get(f"/api/v1/jobs/{other}/predictions/{pid}", headers=bearer(ann))
    assert r.status_code == 404
    # Prediction jobs are not in "My jobs", and not readable as jobs.
    listed = [j["id"] for j in app_client.get("/api/v1/jobs", headers=bearer(ann)).json()["jobs"]]
    assert pid not in listed and job_id in listed
    assert app_client.get(f"/api/v1/jobs/{pid}", headers=bearer(ann)).status_code == 404


@pytest.mark.parametrize(
    "entries,links,words,hint",
    [
        ({"../evil.csv": b"a,b\n1,2\n"}, None, "..", "paths that leave the folder"),
        ({"/abs/evil.csv": b"a,b\n1,2\n"}, None, "absolute", "paths that leave the folder"),
        ({"data.csv": b"a,b\n"}, {"link": "/etc/passwd"}, "link", "not links"),
        ({"zeros.csv": bytes(4 << 20)}, None, "zip bombs", "compress"),
        ({"a.csv": b"a\n", "A/../a.csv": b"b\n"}, None, "..", "paths that leave the folder"),
        ({"a.csv": b"a\n", "./a.csv": b"b\n"}, None, "twice", "each name is in it once"),
    ],
)
def test_a_hostile_archive_is_refused_before_queueing(
    app_client, tabular_zip, tmp_path, entries, links, words, hint
):
    """Refused with what is wrong and a hint that says what to do (stranger 16, item 5:
    the hint was null)."""
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    before = app_client.get("/api/v1/me", headers=bearer(token)).json()["usage"]
    hostile = bad_zip(entries, tmp_path / "hostile.zip", links)
    r = post_data(app_client, token, job_id, hostile)
    assert r.status_code == 400, r.text
    assert words in r.json()["detail"]
    assert hint in (r.json()["hint"] or ""), r.json()
    assert prediction_rows(app_client) == []
    assert app_client.get("/api/v1/me", headers=bearer(token)).json()["usage"] == before
    assert list((_service(app_client).storage.root / "tmp").iterdir()) == []


def test_not_a_zip_and_no_file_are_refused(app_client, tabular_zip, tmp_path):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    r = post_data(app_client, token, job_id, junk)
    assert r.status_code == 400 and "zip" in r.json()["detail"]
    assert "Zip one file (a CSV) too" in str(r.json()), r.json()  # not a dataset's hint
    r = app_client.post(
        f"/api/v1/jobs/{job_id}/predictions",
        headers=bearer(token) | {"content-type": "application/zip"},
        content=b"",
    )
    assert r.status_code == 422 and "No data was sent" in r.json()["detail"]
    assert prediction_rows(app_client) == []


def test_an_upload_larger_than_the_limit_is_refused(settings, tabular_zip, tmp_path):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from autodl.service.app import create_app
    from tests.service.conftest import NullDispatcher

    app = create_app(replace(settings, max_upload_bytes=2000), dispatcher=NullDispatcher())
    with TestClient(app) as client:
        token = add_user(client, "ann")
        with app.state.service.db.session() as s:
            from autodl.service.jobs import create_job
            from autodl.service.models import User

            user = s.scalar(select(User).where(User.name == "ann"))
            job = create_job(
                s, user, name="r", time_budget=5, report={"name": "tiny"}, stored_bytes=0
            )
            job.state = "finished"
            job_id = job.id
        model = app.state.service.storage.model_dir(job_id)
        model.mkdir(parents=True)
        (model / "model.json").write_text("{}")
        big = bad_zip({"a.bin": os.urandom(5000)}, tmp_path / "big.zip")
        r = post_data(client, token, job_id, big)
        assert r.status_code == 413, r.text
        assert "larger than" in r.json()["detail"]
        assert prediction_rows(client) == []


def test_multipart_is_refused_on_other_addresses(app_client):
    token = add_user(app_client, "ann")
    r = app_client.post(
        "/api/v1/jobs/1/predictions/2",
        headers=bearer(token),
        files={"file": ("x.zip", b"PK", "application/zip")},
    )
    assert r.status_code in (405, 415)


def test_deleting_a_run_deletes_its_prediction_jobs_and_files(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    service = _service(app_client)
    pids = [_queued_prediction(app_client, job_id, n) for n in ("a", "b")]
    for pid in pids:
        results = service.storage.results_dir(pid)
        results.mkdir(parents=True)
        (results / "predictions.csv").write_text("id,a,b\n")
    assert app_client.get(f"/api/v1/jobs/{job_id}/model", headers=bearer(token)).status_code == 200
    r = app_client.delete(f"/api/v1/jobs/{job_id}", headers=bearer(token))
    assert r.status_code == 204
    assert not service.storage.job_dir(job_id).exists()
    for pid in pids:
        assert not service.storage.job_dir(pid).exists()
    with service.db.session() as s:
        rows = s.scalars(select(Job).where(Job.id.in_(pids))).all()
        assert len(rows) == 2  # tombstones: the quota still counts them
        assert all(j.deleted_at is not None and j.state == "cancelled" for j in rows)


def test_deleting_one_prediction_keeps_the_run(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    pid = _queued_prediction(app_client, job_id)
    r = app_client.delete(f"/api/v1/jobs/{job_id}/predictions/{pid}", headers=bearer(token))
    assert r.status_code == 204
    assert app_client.get(f"/api/v1/jobs/{job_id}/predictions", headers=bearer(token)).json() == {
        "predictions": []
    }
    assert app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 200


def test_prediction_jobs_count_against_the_quota(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    service = _service(app_client)
    with service.db.session() as s:
        parent = s.get(Job, job_id)
        before = usage(s, parent.user, service.settings)
        create_prediction_job(
            s,
            parent.user,
            parent,
            name="p",
            time_budget=service.settings.predict_budget,
            stored_bytes=10,
        )
        after = usage(s, parent.user, service.settings)
    assert after.jobs_today == before.jobs_today + 1
    assert after.compute_used == before.compute_used + service.settings.predict_budget
    assert after.storage_used == before.storage_used + 10


def test_out_of_quota_is_refused_before_reading(app_client, tabular_zip, tmp_path):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    service = _service(app_client)
    with service.db.session() as s:
        from autodl.service.models import User

        s.execute(update(User).where(User.name == "ann").values(compute_seconds_per_day=10))
    r = post_data(app_client, token, job_id, tabular_zip)
    assert r.status_code == 429 and "compute time" in r.json()["detail"]
    assert r.headers.get("connection") == "close"
    assert prediction_rows(app_client) == []


# ------------------------------------------------------------------ the whole path


@pytest.fixture
def live_app(settings):
    """The app with its embedded supervisor and the real engine (which saves a model)."""
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from autodl.engine.protocol import DEFAULT_ENGINE
    from autodl.service.app import create_app

    app = create_app(replace(settings, engine=DEFAULT_ENGINE, predict_budget=120))
    with TestClient(app) as client:
        yield client


def _until_done(client, token: str, url: str, timeout: float = 240) -> dict:
    from tests.service.conftest import wait_for

    def done():
        body = client.get(url, headers=bearer(token)).json()
        return body if body["state"] in ("finished", "failed", "cancelled") else None

    return wait_for(done, timeout=timeout, interval=0.5)


@pytest.mark.slow
def test_a_run_then_predictions_through_the_embedded_supervisor(
    live_app, tabular_zip, tabular_dir, tmp_path
):
    """A real short run saves a model; its zip loads; new data of the wrong kind is refused
    before queueing; a prediction job yields the CSV `predict_to_csv` writes; both count
    against the quota; deleting the run deletes the prediction's files."""
    from autodl.model import load_model, predict_to_csv

    client, service = live_app, _service(live_app)
    token = add_user(client, "ann")
    job_id = upload(client, token, tabular_zip, time_budget=5).json()["id"]
    job = _until_done(client, token, f"/api/v1/jobs/{job_id}")
    assert job["state"] == "finished", job

    page = client.get(f"/jobs/{job_id}", headers=bearer(token)).text
    assert "Download model" in page and "Predict on new data" in page
    r = client.get(f"/api/v1/jobs/{job_id}/model", headers=bearer(token))
    assert r.status_code == 200
    (tmp_path / "model.zip").write_bytes(r.content)
    assert len(load_model(tmp_path / "model.zip").classes_) == 3

    # Wrong data for this model: refused with the model's words, nothing queued.
    wrong = bad_zip({"new.csv": b"colour,size\nred,1\nblue,2\n"}, tmp_path / "wrong.zip")
    r = post_data(client, token, job_id, wrong)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("The data does not fit this model:")
    assert "new.csv" in r.json()["detail"] and str(service.storage.root) not in r.text
    assert prediction_rows(client) == []
    used = client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["jobs_today"]
    assert used == 1

    r = post_data(client, token, job_id, tabular_zip)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    assert r.headers["location"] == f"/api/v1/jobs/{job_id}/predictions/{pid}"
    done = _until_done(client, token, f"/api/v1/jobs/{job_id}/predictions/{pid}")
    assert done["state"] == "finished", done
    got = client.get(done["download"], headers=bearer(token))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = predict_to_csv(service.storage.model_dir(job_id), tabular_dir, tmp_path / "want.csv")
    assert done["rows"] == rows > 0
    assert got.content == (tmp_path / "want.csv").read_bytes()
    header = next(csv.reader(got.text.splitlines()))
    assert header[0] == "id" and header[-1] == "top_class"

    me = client.get("/api/v1/me", headers=bearer(token)).json()["usage"]
    assert me["jobs_today"] == 2
    assert me["compute_seconds_used"] <= job["time_budget"] + done["duration"] + 1
    listed = client.get(f"/api/v1/jobs/{job_id}/predictions", headers=bearer(token)).json()
    assert [p["id"] for p in listed["predictions"]] == [pid]

    assert client.delete(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 204
    assert not service.storage.job_dir(pid).exists()
    r = client.get(f"/api/v1/jobs/{job_id}/predictions/{pid}", headers=bearer(token))
    assert r.status_code == 404


# ------------------------------------------------------------------ the page


def test_the_page_form_needs_its_csrf_token(app_client, tabular_zip):
    from tests.service.test_pages import csrf_of, sign_up

    sign_up(app_client)
    with open(tabular_zip, "rb") as f:
        new = app_client.get("/jobs/new")
        r = app_client.post(
            "/jobs/new",
            files={"file": ("t.zip", f, "application/zip")},
            data={"csrf_token": csrf_of(new.text), "time_budget": "4"},
            follow_redirects=False,
        )
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    service = _service(app_client)
    with service.db.session() as s:
        s.execute(update(Job).where(Job.id == job_id).values(state="finished"))
    service.storage.model_dir(job_id).mkdir(parents=True)
    (service.storage.model_dir(job_id) / "model.json").write_text("{}")
    page = app_client.get(f"/jobs/{job_id}").text
    assert 'id="download-model"' in page and 'id="predict-form"' in page
    for token in ("forged", None):
        with open(tabular_zip, "rb") as f:
            r = app_client.post(
                f"/jobs/{job_id}/predictions",
                files={"file": ("t.zip", f, "application/zip")},
                data={"csrf_token": token} if token else {},
                follow_redirects=False,
            )
        assert r.status_code == 403, r.text
    assert prediction_rows(app_client) == []
    assert list((service.storage.root / "tmp").iterdir()) == []
    # Deleting one prediction from the page.
    pid = _queued_prediction(app_client, job_id)
    page = app_client.get(f"/jobs/{job_id}").text
    assert f'action="/jobs/{job_id}/predictions/{pid}/delete"' in page
    r = app_client.post(
        f"/jobs/{job_id}/predictions/{pid}/delete",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"/jobs/{job_id}?")
    assert 'id="prediction-jobs"' not in app_client.get(f"/jobs/{job_id}").text


# ------------------------------------------------------------------ the job process's part


def _record():
    calls = []

    def transition(state, **values):
        calls.append((state, values))
        return True

    return calls, transition


@pytest.mark.slow
def test_run_prediction_fails_with_a_reason(settings, tabular_dir, tmp_path):
    """A model that cannot be loaded fails the job as the platform's fault (the quota is
    given back) without naming the server's folders; a prediction past its budget is
    stopped, as the data's fault, and says which setting bounds it."""
    import shutil

    from autodl.service.predictions import run_prediction
    from autodl.service.storage import Storage

    storage = Storage(settings.data_dir)
    storage.model_dir(1).mkdir(parents=True)
    (storage.model_dir(1) / "model.json").write_text("{not json")
    shutil.copytree(tabular_dir, storage.dataset_dir(2))
    calls, transition = _record()
    run_prediction(2, 1, 60, settings, storage, transition, {"input": "t.zip"})
    [(state, values)] = calls
    assert state == "failed" and values["fault"] == "platform", calls
    assert values["message"].startswith("The model could not be used:")
    assert "model.json" in values["message"] and str(storage.root) not in values["message"]
    assert values["duration"] > 0
    assert not (storage.results_dir(2) / "predictions.csv").exists()

    calls, transition = _record()
    run_prediction(2, 1, 0.05, settings, storage, transition)
    [(state, values)] = calls
    assert state == "failed" and values["fault"] == "data"
    assert "AUTODL_PREDICT_BUDGET" in values["message"]


@pytest.mark.slow
def test_a_model_that_cannot_be_loaded_is_refused_before_queueing(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)  # its model.json is no model
    r = post_data(app_client, token, job_id, tabular_zip)
    assert r.status_code == 409, r.text
    assert r.json()["detail"].startswith("This job's model cannot be used:")
    assert str(_service(app_client).storage.root) not in r.text
    assert prediction_rows(app_client) == []


# ------------------------------------------------------------------ the upload's form field


@pytest.mark.parametrize("route", ["/api/v1/jobs", "/api/v1/jobs/{job}/predictions"])
def test_the_file_is_read_from_the_field_file_only(app_client, tabular_zip, route):
    """Stranger 16, item 9: ``-F other=@data.zip`` was accepted; the docs say ``file``."""
    token = add_user(app_client, "ann")
    job_id = finished_run(app_client, token, tabular_zip)
    jobs_before = len(app_client.get("/api/v1/jobs", headers=bearer(token)).json()["jobs"])
    with open(tabular_zip, "rb") as f:
        r = app_client.post(
            route.format(job=job_id),
            headers=bearer(token),
            files={"other": (tabular_zip.name, f, "application/zip")},
        )
    assert r.status_code == 422, r.text
    assert "'other'" in r.json()["detail"] and "'file'" in r.json()["detail"]
    assert "-F file=@" in r.json()["hint"]
    assert prediction_rows(app_client) == []
    assert len(app_client.get("/api/v1/jobs", headers=bearer(token)).json()["jobs"]) == jobs_before
    assert list((_service(app_client).storage.root / "tmp").iterdir()) == []


# ------------------------------------------------------------------ autodl submit-predict


def _submit_predict(monkeypatch, client, token: str, *args: str):
    """`autodl submit-predict` against the app in this process (the real command and
    client; the requests go to the app through its in-process transport)."""
    from click.testing import CliRunner

    from autodl.cli import main
    from autodl.service import client as client_module

    sent: list[str] = []

    class InProcess(client_module.Client):
        def __init__(self, server: str, api_token: str, timeout: float = 60.0):
            self.base = server
            self.http = client
            client.headers["Authorization"] = f"Bearer {api_token}"
            client.event_hooks["request"] = [lambda request: sent.append(request.method)]

    monkeypatch.setattr(client_module, "Client", InProcess)
    result = CliRunner().invoke(
        main, ["submit-predict", *args, "--server", "http://testserver", "--token", token]
    )
    return result, sent


def test_submit_predict_checks_the_job_before_sending_and_says_the_hint(
    app_client, tabular_zip, tmp_path, monkeypatch
):
    """A wrong job id or another user's job: the server's 404 before anything is sent
    (stranger 16, item 9: the whole file was uploaded first); a refused archive: its
    hint on a ``Hint:`` line (item 5)."""
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    job_id = finished_run(app_client, ann, tabular_zip)
    for user, job in ((ann, 99), (bob, job_id)):
        result, sent = _submit_predict(monkeypatch, app_client, user, str(job), str(tabular_zip))
        assert result.exit_code == 1, result.output
        assert f"No job {job} among your jobs." in result.output
        assert "Uploading" not in result.output and sent == ["GET"]
    hostile = bad_zip({"../evil.csv": b"a,b\n1,2\n"}, tmp_path / "hostile.zip")
    result, sent = _submit_predict(monkeypatch, app_client, ann, str(job_id), str(hostile))
    assert result.exit_code == 1, result.output
    assert "'../evil.csv'" in result.output
    assert "Hint: Zip the files again without links or paths that leave the folder" in (
        result.output
    )
    assert "POST" in sent and prediction_rows(app_client) == []


# ------------------------------------------------------------------ the model's words


def test_a_refusal_names_the_upload_by_its_file_name(settings, tmp_path):
    """The model's message names the user's file (``wine.zip``), not a server folder or
    "the upload"; a name with folders in it keeps only its last part."""
    from autodl.formats.archive import zip_folder
    from autodl.formats.samples import make_image, make_tabular
    from autodl.service.predictions import prepare_input
    from autodl.service.uploads import UploadRefused
    from tests.model.test_model import write_model

    write_model(tmp_path / "model", make_tabular(tmp_path / "tab"))
    images = zip_folder(make_image(tmp_path / "img"), tmp_path / "images.zip")
    for sent, shown in (("wine.zip", "wine.zip"), ("C:\\data\\../photos.zip", "photos.zip")):
        work = tmp_path / f"work-{shown}"
        work.mkdir()
        with pytest.raises(UploadRefused) as e:
            prepare_input(images, work, settings, 10**9, tmp_path / "model", sent)
        assert e.value.status == 422 and shown in str(e.value), str(e.value)
        assert "image data" in str(e.value) and str(tmp_path) not in str(e.value)

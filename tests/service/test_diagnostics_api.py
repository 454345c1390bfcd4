"""GET /api/v1/jobs/<id>/diagnostics: the stored confusion matrix, per-class table and
curves, as the job's scoring wrote them (scores.json, curves.json)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from autodl.formats.archive import zip_folder
from autodl.formats.samples import make_tabular
from autodl.scoring import score_arrays, write_scores
from autodl.service import jobs as J
from autodl.service.models import Job
from tests.scoring._folders import one_hot
from tests.service.conftest import add_user, bearer, upload


def _job(client, token, tmp_path, name: str) -> int:
    folder = make_tabular(tmp_path / name, n_train=30, n_test=12, unlabelled=False, name=name)
    return upload(client, token, zip_folder(folder, tmp_path / f"{name}.zip")).json()["id"]


def _finish(client, job_id: int, result) -> None:
    service = client.app.state.service
    write_scores(result, service.storage.results_dir(job_id))
    with service.db.session() as s:
        job = s.get(Job, job_id)
        J.set_state(s, job, "running")
        J.set_state(s, job, "finished", n_predictions=result.n_predictions, alc=result.alc)


@pytest.mark.slow
def test_diagnostics_of_a_finished_multiclass_job(app_client, tmp_path):
    token = add_user(app_client, "ann")
    job_id = _job(app_client, token, tmp_path, "pets")
    url = f"/api/v1/jobs/{job_id}/diagnostics"
    r = app_client.get(url, headers=bearer(token))
    assert r.status_code == 404 and "yet (it is queued)" in r.json()["detail"]

    rng = np.random.default_rng(0)
    true = rng.integers(0, 4, 200)
    solution, prediction = one_hot(true, 4), rng.random((200, 4)) + one_hot(true, 4) * 0.5
    names = ["cat", "dog", "owl", "yak"]
    _finish(app_client, job_id, score_arrays(solution, [prediction], [3.0], 60, label_names=names))
    data = app_client.get(url, headers=bearer(token)).json()
    assert data["task"] == "multi-class" and data["label_names"] == names
    assert data["confusion_matrix"] == (
        skm.confusion_matrix(true, prediction.argmax(axis=1), labels=range(4)).tolist()
    )
    p, rec, f, s = skm.precision_recall_fscore_support(true, prediction.argmax(axis=1))
    assert [row["support"] for row in data["per_class"]] == s.tolist()
    assert [row["precision"] for row in data["per_class"]] == list(p)
    assert [row["f1"] for row in data["per_class"]] == list(f)
    assert data["top_confusions"][0]["count"] == max(
        c for i, row in enumerate(data["confusion_matrix"]) for j, c in enumerate(row) if i != j
    )
    curves = data["curves"]
    assert [c["label"] for c in curves["classes"]] == names and curves["macro"]["roc"]["auc"] > 0.5

    # The same curves as a download, listed with the job's downloads.
    job = app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()
    assert "curves.json" in job["downloads"]
    got = app_client.get(job["downloads"]["curves.json"], headers=bearer(token))
    assert got.status_code == 200 and json.loads(got.content) == curves

    # Another user's job does not exist for them.
    other = add_user(app_client, "bob")
    assert app_client.get(url, headers=bearer(other)).status_code == 404


def test_diagnostics_of_a_multilabel_job(app_client, tmp_path):
    token = add_user(app_client, "ann")
    job_id = _job(app_client, token, tmp_path, "tags")
    rng = np.random.default_rng(1)
    solution = (rng.random((150, 3)) < 0.4).astype(float)
    prediction = np.clip(solution * 0.4 + rng.random((150, 3)) * 0.6, 0, 1)
    _finish(app_client, job_id, score_arrays(solution, [prediction], [3.0], 60))
    data = app_client.get(f"/api/v1/jobs/{job_id}/diagnostics", headers=bearer(token)).json()
    assert data["task"] == "multi-label" and data["confusion_matrix"] is None
    decided = (prediction >= 0.5).astype(int)
    mcm = skm.multilabel_confusion_matrix(solution.astype(int), decided)
    assert [[[c["tn"], c["fp"]], [c["fn"], c["tp"]]] for c in data["label_confusion"]] == (
        mcm.tolist()
    )
    assert {row["threshold"] for row in data["per_class"]} == {0.5}
    assert len(data["error_cooccurrence"]) == 3


def test_a_finished_job_without_scores_has_no_diagnostics(app_client, tmp_path):
    token = add_user(app_client, "ann")
    job_id = _job(app_client, token, tmp_path, "plain")
    with app_client.app.state.service.db.session() as s:
        job = s.get(Job, job_id)
        J.set_state(s, job, "running")
        J.set_state(s, job, "failed", message="the engine crashed")
    r = app_client.get(f"/api/v1/jobs/{job_id}/diagnostics", headers=bearer(token))
    assert r.status_code == 404 and r.json()["detail"] == f"Job {job_id} has no diagnostics."

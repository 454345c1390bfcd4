"""Quotas: jobs per day, stored bytes; platform failures and early cancels give the quota back."""

from __future__ import annotations

from dataclasses import replace

from fastapi.testclient import TestClient

from autodl.service import jobs as J
from autodl.service.app import create_app
from autodl.service.models import Job
from autodl.service.storage import tree_size
from tests.service.conftest import NullDispatcher, add_user, bearer, upload


def test_jobs_per_day(settings, tabular_zip):
    with TestClient(
        create_app(replace(settings, jobs_per_day=2), dispatcher=NullDispatcher())
    ) as client:
        token = add_user(client, "ann")
        assert upload(client, token, tabular_zip).status_code == 201
        assert upload(client, token, tabular_zip).status_code == 201
        r = upload(client, token, tabular_zip)
        assert (
            r.status_code == 429
            and "2 jobs" in r.json()["detail"]
            and "tomorrow" in r.json()["hint"]
        )
        # Another user has their own quota.
        assert upload(client, add_user(client, "bob"), tabular_zip).status_code == 201


def test_a_platform_failure_gives_the_job_back(settings, tabular_zip):
    with TestClient(
        create_app(replace(settings, jobs_per_day=1), dispatcher=NullDispatcher())
    ) as client:
        token = add_user(client, "ann")
        job_id = upload(client, token, tabular_zip).json()["id"]
        assert upload(client, token, tabular_zip).status_code == 429
        with client.app.state.service.db.session() as s:
            job = s.get(Job, job_id)
            J.set_state(s, job, "running")
            J.set_state(s, job, "failed", message="The engine crashed.", fault="platform")
        assert client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["jobs_today"] == 0
        assert upload(client, token, tabular_zip).status_code == 201


def test_a_data_failure_keeps_counting(settings, tabular_zip):
    with TestClient(
        create_app(replace(settings, jobs_per_day=1), dispatcher=NullDispatcher())
    ) as client:
        token = add_user(client, "ann")
        job_id = upload(client, token, tabular_zip).json()["id"]
        with client.app.state.service.db.session() as s:
            job = s.get(Job, job_id)
            J.set_state(s, job, "running")
            J.set_state(s, job, "failed", message="Your dataset could not be read.", fault="data")
        assert upload(client, token, tabular_zip).status_code == 429


def test_deleting_a_finished_job_frees_storage_but_not_the_days_count(settings, tabular_zip):
    with TestClient(
        create_app(replace(settings, jobs_per_day=1), dispatcher=NullDispatcher())
    ) as client:
        token = add_user(client, "ann")
        job_id = upload(client, token, tabular_zip).json()["id"]
        with client.app.state.service.db.session() as s:
            job = s.get(Job, job_id)
            J.set_state(s, job, "running")
            J.set_state(s, job, "finished")
        assert client.delete(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 204
        me = client.get("/api/v1/me", headers=bearer(token)).json()["usage"]
        assert me["jobs_today"] == 1 and me["storage_used_bytes"] == 0
        assert upload(client, token, tabular_zip).status_code == 429


def test_storage_quota(settings, tabular_zip, tabular_dir):
    size = tree_size(tabular_dir)
    with TestClient(
        create_app(
            replace(settings, storage_quota_bytes=tabular_zip.stat().st_size // 2),
            dispatcher=NullDispatcher(),
        )
    ) as client:
        token = add_user(client, "ann")
        r = upload(client, token, tabular_zip)
        assert r.status_code == 413 and "storage quota" in r.json()["detail"], r.json()
    with TestClient(
        create_app(
            replace(settings, storage_quota_bytes=int(size * 1.5)), dispatcher=NullDispatcher()
        )
    ) as client:
        token = add_user(client, "bob")
        assert upload(client, token, tabular_zip).status_code == 201
        r = upload(client, token, tabular_zip)
        assert r.status_code == 413, r.json()

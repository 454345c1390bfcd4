"""Quotas: jobs per day, stored bytes; platform failures and early cancels give the quota back."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from autodl.service import jobs as J
from autodl.service.app import create_app
from autodl.service.models import Job
from autodl.service.storage import tree_size
from tests.service.conftest import NullDispatcher, add_user, bearer, upload


def _client(settings, **quota) -> TestClient:
    """A client of an app with ``settings`` but for the ``quota`` fields."""
    return TestClient(create_app(replace(settings, **quota), dispatcher=NullDispatcher()))


def _end(client, job_id: int, state: str, **why) -> None:
    """Run the job, then move it to ``state`` (``why``: message, fault)."""
    with client.app.state.service.db.session() as s:
        job = s.get(Job, job_id)
        J.set_state(s, job, "running")
        J.set_state(s, job, state, **why)


def _usage(client, token: str) -> dict:
    return client.get("/api/v1/me", headers=bearer(token)).json()["usage"]


def test_jobs_per_day(settings, tabular_zip):
    with _client(settings, jobs_per_day=2) as client:
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


@pytest.mark.parametrize(
    ("fault", "message", "jobs_today", "next_upload"),
    [
        ("platform", "The engine crashed.", 0, 201),
        ("data", "Your dataset could not be read.", 1, 429),
    ],
    ids=["a_platform_failure_gives_the_job_back", "a_data_failure_keeps_counting"],
)
def test_a_failure_and_the_days_count(
    settings, tabular_zip, fault, message, jobs_today, next_upload
):
    with _client(settings, jobs_per_day=1) as client:
        token = add_user(client, "ann")
        job_id = upload(client, token, tabular_zip).json()["id"]
        assert upload(client, token, tabular_zip).status_code == 429
        _end(client, job_id, "failed", message=message, fault=fault)
        assert _usage(client, token)["jobs_today"] == jobs_today
        assert upload(client, token, tabular_zip).status_code == next_upload


def test_deleting_a_finished_job_frees_storage_but_not_the_days_count(settings, tabular_zip):
    with _client(settings, jobs_per_day=1) as client:
        token = add_user(client, "ann")
        job_id = upload(client, token, tabular_zip).json()["id"]
        _end(client, job_id, "finished")
        assert client.delete(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 204
        me = _usage(client, token)
        assert me["jobs_today"] == 1 and me["storage_used_bytes"] == 0
        assert upload(client, token, tabular_zip).status_code == 429


def test_storage_quota(settings, tabular_zip, tabular_dir):
    size = tree_size(tabular_dir)
    with _client(settings, storage_quota_bytes=tabular_zip.stat().st_size // 2) as client:
        token = add_user(client, "ann")
        r = upload(client, token, tabular_zip)
        assert r.status_code == 413 and "storage quota" in r.json()["detail"], r.json()
    with _client(settings, storage_quota_bytes=int(size * 1.5)) as client:
        token = add_user(client, "bob")
        assert upload(client, token, tabular_zip).status_code == 201
        r = upload(client, token, tabular_zip)
        assert r.status_code == 413, r.json()

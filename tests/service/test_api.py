"""Every API route, with its permission checks: another user's job answers 404."""

from __future__ import annotations

from autodl.formats.archive import zip_folder
from autodl.formats.samples import make_tabular
from autodl.service import jobs as J
from autodl.service.models import Job
from tests.service.conftest import add_user, assert_not_found, bearer, upload


def test_health_and_openapi_describe_the_jobs_resource(app_client):
    assert app_client.get("/api/v1/health").json() == {"status": "ok"}
    schema = app_client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/jobs",
        "/api/v1/jobs/{job_id}",
        "/api/v1/jobs/{job_id}/download/{name}",
        "/api/v1/tokens",
    ):
        assert path in schema["paths"]
    assert (
        "multipart/form-data" in schema["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]
    )


def test_without_or_with_a_bad_token_the_api_answers_401_in_json(app_client):
    r = app_client.get("/api/v1/jobs")
    assert (
        r.status_code == 401
        and "Bearer" in r.json()["hint"]
        and r.headers["www-authenticate"] == "Bearer"
    )
    r = app_client.get("/api/v1/jobs", headers=bearer("adl_wrong"))
    assert r.status_code == 401 and "not valid" in r.json()["detail"]


def test_unknown_api_address_answers_json_404(app_client):
    r = app_client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["detail"]


def test_submit_list_read_a_job(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, tabular_zip, name="my run", time_budget=7)
    assert r.status_code == 201, r.text
    job = r.json()
    assert r.headers["location"] == f"/api/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["queue_position"] == 1 and job["name"] == "my run"
    assert (
        job["time_budget"] == 7
        and job["dataset"]["name"] == "tinytabular"
        and job["dataset"]["classes"] == 3
    )
    assert job["dataset"]["unlabelled"] == 10 and job["events"][0]["state"] == "queued"
    assert app_client.app.state.service.dispatcher.notified == [job["id"]]
    listing = app_client.get("/api/v1/jobs", headers=bearer(token)).json()
    assert [j["id"] for j in listing["jobs"]] == [job["id"]]
    assert listing["usage"]["jobs_today"] == 1 and listing["usage"]["storage_used_bytes"] > 0
    assert (
        app_client.get(f"/api/v1/jobs/{job['id']}", headers=bearer(token)).json()["state"]
        == "queued"
    )


def test_submit_a_raw_zip_body_with_query_fields(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    r = app_client.post(
        "/api/v1/jobs?name=raw&time_budget=3",
        content=tabular_zip.read_bytes(),
        headers={**bearer(token), "Content-Type": "application/zip"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "raw" and r.json()["time_budget"] == 3


def test_the_default_budget_and_the_budget_limits(app_client, tabular_zip, settings):
    token = add_user(app_client, "ann")
    assert upload(app_client, token, tabular_zip).json()["time_budget"] == settings.time_budget
    r = upload(app_client, token, tabular_zip, time_budget=settings.max_time_budget + 1)
    assert r.status_code == 422 and "between 1 and 60" in r.json()["detail"]
    r = upload(app_client, token, tabular_zip, time_budget="soon")
    assert r.status_code == 422 and "not a number" in r.json()["detail"]


def test_another_users_job_is_not_found_anywhere(app_client, tabular_zip):
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    job_id = upload(app_client, ann, tabular_zip).json()["id"]
    assert_not_found(
        app_client,
        bob,
        job_id,
        [
            ("GET", f"/api/v1/jobs/{job_id}"),
            ("DELETE", f"/api/v1/jobs/{job_id}"),
            ("POST", f"/api/v1/jobs/{job_id}/cancel"),
            ("GET", f"/api/v1/jobs/{job_id}/curve"),
            ("GET", f"/api/v1/jobs/{job_id}/log"),
            ("GET", f"/api/v1/jobs/{job_id}/download/predictions.csv"),
            ("GET", f"/api/v1/jobs/{job_id}/download/results.zip"),
        ],
    )
    assert app_client.get("/api/v1/jobs", headers=bearer(bob)).json()["jobs"] == []
    # The owner still has it, untouched.
    assert app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(ann)).json()["state"] == "queued"


def test_an_admin_sees_every_job(app_client, tabular_zip):
    ann, root = add_user(app_client, "ann"), add_user(app_client, "root", admin=True)
    job_id = upload(app_client, ann, tabular_zip).json()["id"]
    assert app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(root)).json()["owner"] == "ann"
    assert app_client.get("/api/v1/jobs", headers=bearer(root)).json()["jobs"] == []
    assert [
        j["id"]
        for j in app_client.get("/api/v1/jobs?all=true", headers=bearer(root)).json()["jobs"]
    ] == [job_id]


def test_cancel_a_queued_job_gives_the_quota_back(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = upload(app_client, token, tabular_zip).json()["id"]
    r = app_client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(token))
    assert r.status_code == 200 and r.json()["state"] == "cancelled" and r.json()["quota_refunded"]
    assert [e["state"] for e in r.json()["events"]] == ["queued", "cancelled"]
    assert app_client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["jobs_today"] == 0
    r = app_client.post(f"/api/v1/jobs/{job_id}/cancel", headers=bearer(token))
    assert r.status_code == 409 and "cancelled" in r.json()["detail"]


def test_delete_removes_files_and_the_job(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = upload(app_client, token, tabular_zip).json()["id"]
    storage = app_client.app.state.service.storage
    assert storage.dataset_dir(job_id).is_dir()
    assert app_client.delete(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 204
    assert not storage.job_dir(job_id).exists()
    assert app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).status_code == 404
    assert (
        app_client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["storage_used_bytes"]
        == 0
    )
    with app_client.app.state.service.db.session() as s:
        row = s.get(Job, job_id)
        assert row.deleted_at is not None and row.name == "(deleted)" and row.dataset_info == "{}"


def test_curve_log_and_downloads_of_a_queued_job(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    job_id = upload(app_client, token, tabular_zip).json()["id"]
    curve = app_client.get(f"/api/v1/jobs/{job_id}/curve", headers=bearer(token)).json()
    assert curve["points"] == [] and curve["alc"] is None and curve["time_budget"] == 5
    assert app_client.get(f"/api/v1/jobs/{job_id}/log", headers=bearer(token)).text == ""
    r = app_client.get(f"/api/v1/jobs/{job_id}/download/predictions.csv", headers=bearer(token))
    assert r.status_code == 404 and "queued" in r.json()["detail"]
    r = app_client.get(f"/api/v1/jobs/{job_id}/download/secrets.txt", headers=bearer(token))
    assert r.status_code == 404 and "predictions.csv" in r.json()["hint"]


def _move(client, job_id: int, *states: str, **values) -> None:
    """Move the job through ``states`` (the last a failure needs a reason: ``message``)."""
    with client.app.state.service.db.session() as s:
        job = s.get(Job, job_id)
        for state in states[:-1]:
            J.set_state(s, job, state)
        J.set_state(s, job, states[-1], **values)


def test_a_missing_download_says_why_not_when_the_job_has_ended(app_client, tmp_path):
    token = add_user(app_client, "ann")
    folder = make_tabular(tmp_path / "plain", n_train=40, n_test=20, unlabelled=False)
    plain = zip_folder(folder, tmp_path / "plain.zip")

    def missing(job_id, name):
        r = app_client.get(f"/api/v1/jobs/{job_id}/download/{name}", headers=bearer(token))
        assert r.status_code == 404, (name, r.status_code)
        return r.json()["detail"], r.json()["hint"]

    # Finished, with predictions, but no unlabelled part: nothing to hand back, and why.
    done = upload(app_client, token, plain).json()["id"]
    _move(app_client, done, "running", "finished", n_predictions=2)
    for name in ("predictions.csv", "predictions.predict"):
        detail, hint = missing(done, name)
        assert detail == (
            f"Job {done} has no {name}: its dataset has no unlabelled part, "
            "so there are no predictions to hand back."
        )
        assert "unlabelled part" in hint and "/help/predictions" in hint
        assert "when the job has finished" not in hint
    detail, hint = missing(done, "learning-curve.png")
    assert detail == f"Job {done} has no learning-curve.png: the run did not write it."
    assert hint == f"GET /api/v1/jobs/{done} lists its downloads."
    # Failed without a prediction: nothing was scored.
    failed = upload(app_client, token, plain).json()["id"]
    _move(app_client, failed, "running", "failed", message="No prediction.", fault="data")
    for name in ("learning-curve.png", "scores.json"):
        assert missing(failed, name)[0] == (
            f"Job {failed} has no {name}: the engine made no prediction before the job failed."
        )
    assert "only a finished job" in missing(failed, "results.zip")[0]
    # Cancelled while queued: the engine never started.
    cancelled = upload(app_client, token, plain).json()["id"]
    _move(app_client, cancelled, "cancelled")
    assert missing(cancelled, "engine.log")[0] == (
        f"Job {cancelled} has no engine.log: the job was cancelled before its engine started."
    )
    # Only a job that has not ended is told to wait.
    queued = upload(app_client, token, plain).json()["id"]
    assert missing(queued, "predictions.csv") == (
        f"Job {queued} has no predictions.csv yet (it is queued).",
        "Downloads appear when the job has finished.",
    )


def test_sorting_is_validated_and_applied(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    for name in ("b", "a", "c"):
        upload(app_client, token, tabular_zip, name=name)
    names = [
        j["name"]
        for j in app_client.get("/api/v1/jobs?sort=name", headers=bearer(token)).json()["jobs"]
    ]
    assert names == ["a", "b", "c"]
    names = [
        j["name"]
        for j in app_client.get("/api/v1/jobs?sort=-name", headers=bearer(token)).json()["jobs"]
    ]
    assert names == ["c", "b", "a"]
    r = app_client.get("/api/v1/jobs?sort=secret", headers=bearer(token))
    assert r.status_code == 422 and r.json()["detail"].startswith("The request is not valid")


def test_queue_positions_follow_submission_order(app_client, tabular_zip):
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    first = upload(app_client, ann, tabular_zip).json()
    second = upload(app_client, bob, tabular_zip).json()
    assert first["queue_position"] == 1 and second["queue_position"] == 2
    app_client.post(f"/api/v1/jobs/{first['id']}/cancel", headers=bearer(ann))
    assert (
        app_client.get(f"/api/v1/jobs/{second['id']}", headers=bearer(bob)).json()["queue_position"]
        == 1
    )


def test_tokens_create_list_revoke(app_client):
    token = add_user(app_client, "ann")
    r = app_client.post("/api/v1/tokens", json={"name": "laptop"}, headers=bearer(token))
    assert r.status_code == 201
    new = r.json()
    assert new["token"].startswith("adl_") and new["prefix"] == new["token"][:10]
    names = [
        t["name"] for t in app_client.get("/api/v1/tokens", headers=bearer(new["token"])).json()
    ]
    assert names == ["tests", "laptop"]
    assert "token" not in app_client.get("/api/v1/tokens", headers=bearer(token)).json()[1]
    assert (
        app_client.delete(f"/api/v1/tokens/{new['id']}", headers=bearer(token)).status_code == 204
    )
    assert app_client.get("/api/v1/me", headers=bearer(new["token"])).status_code == 401
    assert (
        app_client.post("/api/v1/tokens", json={"name": ""}, headers=bearer(token)).status_code
        == 422
    )


def test_a_user_cannot_revoke_another_users_token(app_client):
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    ann_token_id = app_client.get("/api/v1/tokens", headers=bearer(ann)).json()[0]["id"]
    assert (
        app_client.delete(f"/api/v1/tokens/{ann_token_id}", headers=bearer(bob)).status_code == 404
    )
    assert app_client.get("/api/v1/me", headers=bearer(ann)).status_code == 200


def test_admin_lists_users_and_changes_quotas(app_client, settings):
    ann, root = add_user(app_client, "ann"), add_user(app_client, "root", admin=True)
    assert app_client.get("/api/v1/admin/users", headers=bearer(ann)).status_code == 403
    users = app_client.get("/api/v1/admin/users", headers=bearer(root)).json()
    ann_id = next(u["id"] for u in users if u["name"] == "ann")
    assert (
        app_client.patch(
            f"/api/v1/admin/users/{ann_id}", json={"jobs_per_day": 9}, headers=bearer(ann)
        ).status_code
        == 403
    )
    r = app_client.patch(
        f"/api/v1/admin/users/{ann_id}",
        json={"jobs_per_day": 9, "storage_quota_bytes": 1000},
        headers=bearer(root),
    )
    assert r.status_code == 200 and r.json()["usage"]["jobs_per_day"] == 9
    assert (
        app_client.get("/api/v1/me", headers=bearer(ann)).json()["usage"]["storage_quota_bytes"]
        == 1000
    )
    r = app_client.patch(
        f"/api/v1/admin/users/{ann_id}", json={"jobs_per_day": None}, headers=bearer(root)
    )
    assert r.json()["usage"]["jobs_per_day"] == settings.jobs_per_day
    assert (
        app_client.patch("/api/v1/admin/users/999", json={}, headers=bearer(root)).status_code
        == 404
    )
    assert (
        app_client.patch(
            f"/api/v1/admin/users/{ann_id}", json={"jobs_per_day": -1}, headers=bearer(root)
        ).status_code
        == 422
    )


def test_cookie_sessions_need_the_csrf_token_for_unsafe_api_calls(app_client, tabular_zip):
    add_user(app_client, "ann")
    page = app_client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = app_client.post(
        "/login",
        data={"name": "ann", "password": "password123", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert app_client.get("/api/v1/me").json()["name"] == "ann"  # reads need no token
    r = app_client.post("/api/v1/tokens", json={"name": "x"})
    assert r.status_code == 403 and "security token" in r.json()["detail"]
    page = app_client.get("/jobs/new")
    csrf = page.text.split('data-csrf="')[1].split('"')[0]
    assert (
        app_client.post(
            "/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 201
    )


def test_a_running_job_says_how_many_others_run_beside_it(app_client, tabular_zip):
    from autodl.service import jobs as J

    ann = add_user(app_client, "ann")
    ids = [upload(app_client, ann, tabular_zip).json()["id"] for _ in range(3)]
    with app_client.app.state.service.db.session() as s:
        for job_id in ids[:2]:
            J.set_state(s, s.get(Job, job_id), "running")
    seen = [app_client.get(f"/api/v1/jobs/{i}", headers=bearer(ann)).json() for i in ids]
    assert [j["other_jobs"] for j in seen] == [1, 1, None]  # the queued one is not running
    assert seen[2]["jobs_running"] == 2 and seen[0]["jobs_running"] is None
    page = app_client.get(f"/jobs/{ids[0]}", headers=bearer(ann)).text
    assert "1 other job is running beside it." in page

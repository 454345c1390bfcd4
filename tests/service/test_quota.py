"""Quotas: jobs per day, stored bytes; platform failures and early cancels give the quota back."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace

import httpx
import pytest
from fastapi.testclient import TestClient

from autodl.service import jobs as J
from autodl.service.app import create_app
from autodl.service.jobs.runner import run_job
from autodl.service.models import Job
from autodl.service.storage import tree_size
from tests.service.conftest import LiveServer, NullDispatcher, add_user, bearer, upload
from tests.service.test_pages import csrf_of, sign_up


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


@pytest.mark.slow
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


ENGINES = "tests.ingestion.engines"


@pytest.mark.parametrize(
    ("engine", "state", "fault", "words"),
    [
        ("never_predicts", "failed", "data", "made no prediction within the time budget"),
        ("hang_without_predicting", "failed", "data", "made no prediction within the time budget"),
        ("crash_at_once", "failed", "data", "this data breaks the engine on purpose"),
        ("hog_before_predicting", "failed", "data", "needed more than 1.5 GB of memory"),
        ("predict_then_hog", "finished", None, "needed more than 1.5 GB of memory"),
        ("no_such_engine", "failed", "platform", "could not be run"),
    ],
)
@pytest.mark.slow
def test_who_pays_for_a_failure(settings, tabular_zip, engine, state, fault, words):
    """The data's failures cost quota; only the platform's are given back."""
    s = replace(settings, engine=f"{ENGINES}:{engine}", job_memory_bytes=int(1.5 * 1024**3))
    with _client(s, jobs_per_day=5) as client:
        token = add_user(client, "ann")
        # The hog must reach the limit before the deadline even on a loaded machine (it
        # takes ~1 s there); the run ends at the memory error, not at the budget.
        budget = 15 if engine == "predict_then_hog" else 3
        job_id = upload(client, token, tabular_zip, time_budget=budget).json()["id"]
        assert run_job(job_id, s, client.app.state.service.db) == state
        with client.app.state.service.db.session() as db:
            job = db.get(Job, job_id)
            assert job.fault == fault
            assert job.quota_refunded == (fault == "platform")
            assert words in (job.reason or job.note), (job.reason, job.note)
            if state == "finished":  # the prediction before the limit is kept and scored
                assert job.n_predictions == 1 and job.alc is not None
        assert _usage(client, token)["jobs_today"] == (0 if fault == "platform" else 1)


@pytest.mark.slow
def test_compute_time_per_day(settings, tabular_zip):
    with _client(settings, compute_seconds_per_day=10, max_time_budget=60) as client:
        token = add_user(client, "ann")
        assert upload(client, token, tabular_zip, time_budget=6).status_code == 201
        r = upload(client, token, tabular_zip, time_budget=6)
        assert r.status_code == 429
        assert "asks for 6 s but you have 4 s of compute time left" in r.json()["detail"]
        assert "smaller time budget" in r.json()["hint"]
        assert upload(client, token, tabular_zip, time_budget=4).status_code == 201
        me = _usage(client, token)
        assert me["compute_seconds_per_day"] == 10 and me["compute_seconds_left"] == 0
        r = upload(client, token, tabular_zip, time_budget=1)  # refused before reading
        assert r.status_code == 429 and "0 s of compute time left" in r.json()["detail"]
        # Another user has their own budget.
        assert (
            upload(client, add_user(client, "bob"), tabular_zip, time_budget=6).status_code == 201
        )


def test_compute_time_counts_what_a_job_ran_and_nothing_for_the_platforms_faults(
    settings, tabular_zip
):
    with _client(settings, compute_seconds_per_day=10, max_time_budget=60) as client:
        token = add_user(client, "ann")
        a = upload(client, token, tabular_zip, time_budget=6).json()["id"]
        b = upload(client, token, tabular_zip, time_budget=4).json()["id"]
        _end(client, a, "finished", duration=2.5)  # converged early: 3.5 s come back
        _end(client, b, "failed", message="The worker was lost.", fault="platform")
        assert _usage(client, token)["compute_seconds_used"] == 2.5


def test_an_administrator_sets_a_users_compute_time(settings, tabular_zip):
    with _client(settings, compute_seconds_per_day=5) as client:
        token, admin = add_user(client, "ann"), add_user(client, "root", admin=True)
        assert upload(client, token, tabular_zip, time_budget=10).status_code == 429
        ann = client.get("/api/v1/me", headers=bearer(token)).json()["id"]
        r = client.patch(
            f"/api/v1/admin/users/{ann}",
            headers=bearer(admin),
            json={"compute_seconds_per_day": 3600},
        )
        assert r.status_code == 200 and r.json()["usage"]["compute_seconds_per_day"] == 3600
        assert upload(client, token, tabular_zip, time_budget=10).status_code == 201


def test_the_account_and_new_job_pages_show_the_compute_time(settings):
    from tests.service.test_pages import sign_up

    with _client(settings, compute_seconds_per_day=7200) as client:
        sign_up(client)
        for page in ("/account", "/jobs/new"):
            text = client.get(page).text
            assert "Compute time" in text and "2 h" in text, page


# ------------------------------------------------ refused before the upload is read

CHUNK = 1 << 20
BOUNDARY = "b0undary"


def _post(app, path: str, headers: dict, chunks: int, fields: dict | None = None, query=""):
    """POST ``chunks`` MB straight to the ASGI app, one chunk per receive(): the status,
    the answer's headers and body, and how many bytes of the body the app read."""
    if fields is None:  # a raw zip body
        parts = [b"PK" + b"\0" * (CHUNK - 2)] * chunks
        ctype = "application/zip"
    else:  # a form: the fields, then the file
        head = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        )
        head += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.zip"\r\n\r\n'
        parts = [head.encode()] + [b"\0" * CHUNK] * chunks + [f"\r\n--{BOUNDARY}--\r\n".encode()]
        ctype = f"multipart/form-data; boundary={BOUNDARY}"
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers += [
        (b"content-type", ctype.encode()),
        (b"content-length", str(sum(map(len, parts))).encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": raw_headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    read, answer = 0, {"body": b""}

    async def receive():
        nonlocal read
        if not parts:
            return {"type": "http.request", "body": b"", "more_body": False}
        part = parts.pop(0)
        read += len(part)
        return {"type": "http.request", "body": part, "more_body": bool(parts)}

    async def send(message):
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    # In a thread of its own: an earlier test may leave an event loop running in this one.
    failed: list[BaseException] = []

    def call() -> None:
        try:
            asyncio.run(app(scope, receive, send))
        except BaseException as e:  # noqa: BLE001 - raised again below, in the test's thread
            failed.append(e)

    worker = threading.Thread(target=call)
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
    return answer["status"], answer["headers"], answer["body"].decode(), read


def _tmp_empty(client) -> bool:
    tmp = client.app.state.service.storage.root / "tmp"
    return not tmp.exists() or list(tmp.iterdir()) == []


@pytest.mark.parametrize("form", [False, True], ids=["raw_body", "form"])
def test_out_of_jobs_is_refused_before_a_byte_of_the_body_is_read(settings, form):
    with _client(settings, jobs_per_day=0) as client:
        auth = bearer(add_user(client, "ann"))
        fields = {"name": "big"} if form else None
        status, headers, body, read = _post(client.app, "/api/v1/jobs", auth, 64, fields)
        assert status == 429 and "used your 0 jobs" in json.loads(body)["detail"]
        assert read == 0, f"the server read {read} bytes of a refused upload"
        assert headers["connection"] == "close"  # so the server reads none of the rest
        assert _tmp_empty(client)


def test_a_budget_over_the_compute_time_left_is_refused_before_the_file(settings):
    with _client(settings, compute_seconds_per_day=10, max_time_budget=60) as client:
        auth = bearer(add_user(client, "ann"))
        # A raw body: the budget is in the query string (or the default, 5 s, fits).
        status, headers, body, read = _post(
            client.app, "/api/v1/jobs", auth, 64, query="time_budget=20"
        )
        assert status == 429 and "asks for 20 s but you have 10 s" in json.loads(body)["detail"]
        assert read == 0 and headers["connection"] == "close"
        # A form: the budget field comes before the file; only the fields are read.
        status, headers, body, read = _post(
            client.app, "/api/v1/jobs", auth, 64, fields={"time_budget": "20"}
        )
        assert status == 429 and "asks for 20 s" in json.loads(body)["detail"]
        assert read < CHUNK, f"the server read {read} bytes of a refused upload"
        assert headers["connection"] == "close" and _tmp_empty(client)
        # A budget that is not a number is refused as early.
        status, _, body, read = _post(client.app, "/api/v1/jobs", auth, 8, query="time_budget=x")
        assert status == 422 and "not a number" in json.loads(body)["detail"] and read == 0


def test_the_upload_page_is_refused_before_the_file_too(settings):
    with _client(settings, jobs_per_day=0) as client:
        sign_up(client)
        new = client.get("/jobs/new")
        headers = {
            "cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items()),
            "origin": "http://testserver",
        }
        status, answer, body, read = _post(
            client.app, "/jobs/new", headers, 64, fields={"csrf_token": csrf_of(new.text)}
        )
        assert status == 429 and "used your 0 jobs" in body and "<form" in body
        assert read == 0 and answer["connection"] == "close" and _tmp_empty(client)


@pytest.mark.slow
def test_a_client_over_http_gets_the_refusal_and_stops_sending(settings, tmp_path):
    """Through a real server: the answer closes the connection, so a client that sends its
    whole body before reading (httpx, a browser) gets the 429 after a few MB, not 256."""
    server = LiveServer(replace(settings, jobs_per_day=0), tmp_path / "server.log").start()
    try:
        token = add_user(create_app(server.settings, dispatcher=NullDispatcher()), "ann")
        sent = 0

        def body():
            nonlocal sent
            for _ in range(256):
                sent += CHUNK
                yield b"\0" * CHUNK

        r = httpx.post(
            f"{server.url}/api/v1/jobs",
            content=body(),
            headers={**bearer(token), "Content-Type": "application/zip"},
            timeout=60,
        )
        assert r.status_code == 429 and "used your 0 jobs" in r.json()["detail"]
        assert sent <= 64 * CHUNK, f"the client sent {sent >> 20} MB before the refusal"
    finally:
        server.stop()

"""Issue 12, accounts: the secret key, sessions that really end, password change, rate
limits, account deletion, and the admin form's validation."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import func, select

from autodl.errors import AutoDLError
from autodl.service import auth
from autodl.service.app import create_app
from autodl.service.models import ApiToken, Job, User
from autodl.settings import Settings
from tests.service.conftest import ROOT, LiveServer, NullDispatcher, add_user, bearer, upload
from tests.service.test_pages import csrf_of, sign_up

# ------------------------------------------------------------- the secret key


@pytest.fixture
def keyless(settings):
    """Development settings with AUTODL_SECRET_KEY at its default: the service makes its own."""
    return replace(settings, secret_key=Settings().secret_key)


def test_without_a_key_one_is_generated_private_and_shared(keyless):
    first = create_app(keyless, dispatcher=NullDispatcher())
    path = keyless.data_dir / auth.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert len(key) >= 32
    second = create_app(keyless, dispatcher=NullDispatcher())  # a later start, or a 2nd process
    assert path.read_text().strip() == key
    with TestClient(first) as a, TestClient(second) as b:
        sign_up(a, "carol")
        b.cookies.set(auth.COOKIE_NAME, a.cookies[auth.COOKIE_NAME])
        assert b.get("/api/v1/me").json()["name"] == "carol"  # both sign with one key


def test_processes_starting_together_agree_on_one_key(keyless):
    code = (
        "import sys; from pathlib import Path; from autodl.settings import Settings; "
        "from autodl.service.auth import secret_key; "
        "print(secret_key(Settings(data_dir=Path(sys.argv[1]))))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(keyless.data_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert [p.name for p in keyless.data_dir.iterdir() if "secret" in p.name] == ["secret_key"]


def test_a_cookie_signed_with_the_old_public_key_is_refused(keyless):
    app = create_app(keyless, dispatcher=NullDispatcher())
    with TestClient(app) as client:
        add_user(client, "root", admin=True)
        with app.state.service.db.session() as s:
            root = s.scalar(select(User).where(User.name == "root"))
            stamp = auth.user_stamp(root)
        forger = URLSafeTimedSerializer("change-me-development-only", salt="autodl-session")
        forged = forger.dumps({"u": root.id, "c": stamp, "v": 0, "s": "forged"})
        client.cookies.set(auth.COOKIE_NAME, forged)
        assert client.get("/api/v1/me").status_code == 401
        assert client.get("/admin", follow_redirects=False).status_code == 303


def test_production_demands_an_explicit_long_key(settings):
    with pytest.raises(AutoDLError, match="not set while AUTODL_ENV is 'production'"):
        create_app(replace(settings, secret_key="", env="production"))
    for env in ("production", "development"):
        with pytest.raises(AutoDLError, match="shorter than 32 characters"):
            create_app(replace(settings, secret_key="change-me-development-only", env=env))
    assert not (settings.data_dir / auth.SECRET_FILE).exists()


# ----------------------------------------------------------------- sessions


def test_sign_out_ends_every_session_even_a_copied_cookie(app_client):
    sign_up(app_client)
    copied = app_client.cookies[auth.COOKIE_NAME]
    page = app_client.get("/account").text
    r = app_client.post("/logout", data={"csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303
    app_client.cookies.clear()
    app_client.cookies.set(auth.COOKIE_NAME, copied)
    assert app_client.get("/api/v1/me").status_code == 401


def test_a_deleted_accounts_cookie_does_not_open_the_account_that_reuses_its_id(app_client):
    sign_up(app_client, "carol")
    cookie = app_client.cookies[auth.COOKIE_NAME]
    page = app_client.get("/account/delete").text
    app_client.post(
        "/account/delete", data={"password": "password123", "csrf_token": csrf_of(page)}
    )
    app_client.cookies.clear()
    sign_up(app_client, "carol")  # SQLite gives the new account the same id
    me = app_client.get("/api/v1/me").json()
    app_client.cookies.clear()
    app_client.cookies.set(auth.COOKIE_NAME, cookie)
    assert app_client.get("/api/v1/me").status_code == 401, me


def test_change_password_on_the_page(app_client):
    sign_up(app_client)
    copied = app_client.cookies[auth.COOKIE_NAME]
    assert 'href="/account/password"' in app_client.get("/account").text
    page = app_client.get("/account/password")
    assert page.status_code == 200 and "Current password" in page.text
    form = {"csrf_token": csrf_of(page.text), "new_password": "new-secret-1"}
    r = app_client.post(
        "/account/password",
        data={**form, "current_password": "wrong-one", "new_password2": "new-secret-1"},
    )
    assert r.status_code == 403 and "The password is wrong." in r.text
    r = app_client.post(
        "/account/password",
        data={**form, "current_password": "password123", "new_password2": "other-secret"},
    )
    assert r.status_code == 422 and "The two new passwords differ." in r.text
    r = app_client.post(
        "/account/password",
        data={**form, "current_password": "password123", "new_password2": "new-secret-1"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/account?done=password"
    assert "Your password was changed" in app_client.get(r.headers["location"]).text
    fresh = app_client.cookies[auth.COOKIE_NAME]
    app_client.cookies.clear()
    app_client.cookies.set(auth.COOKIE_NAME, copied)
    assert app_client.get("/api/v1/me").status_code == 401  # every other session ended
    app_client.cookies.clear()
    app_client.cookies.set(auth.COOKIE_NAME, fresh)
    assert app_client.get("/api/v1/me").status_code == 200


def test_change_password_in_the_api(app_client):
    token = add_user(app_client, "ann")
    schema = app_client.get("/api/v1/openapi.json").json()
    assert "post" in schema["paths"]["/api/v1/account/password"]
    url = "/api/v1/account/password"
    r = app_client.post(
        url, json={"current_password": "nope-nope", "new_password": "x"}, headers=bearer(token)
    )
    assert r.status_code == 422  # too short, said before any password is checked
    r = app_client.post(
        url,
        json={"current_password": "nope-nope", "new_password": "brand-new-pw"},
        headers=bearer(token),
    )
    assert r.status_code == 403 and r.json()["detail"] == "The password is wrong."
    r = app_client.post(
        url,
        json={"current_password": "password123", "new_password": "brand-new-pw"},
        headers=bearer(token),
    )
    assert r.status_code == 204
    login = csrf_of(app_client.get("/login").text)
    r = app_client.post(
        "/login",
        data={"name": "ann", "password": "brand-new-pw", "csrf_token": login},
        follow_redirects=False,
    )
    assert r.status_code == 303


def test_the_csrf_token_is_never_taken_from_the_url(app_client):
    sign_up(app_client)
    page = app_client.get("/jobs/new").text
    assert "csrf_token=" not in page  # no form address carries it
    token = csrf_of(page)
    r = app_client.post(f"/account/tokens?csrf_token={token}", data={"name": "laptop"})
    assert r.status_code == 403
    r = app_client.post(
        f"/jobs/new?csrf_token={token}",
        files={"file": ("t.zip", b"PK\x05\x06" + bytes(18), "application/zip")},
    )
    assert r.status_code == 403 and "security token" in r.text


def test_an_upload_form_needs_its_token_before_the_file(app_client, tabular_zip, settings):
    sign_up(app_client)
    token = csrf_of(app_client.get("/jobs/new").text)
    body = tabular_zip.read_bytes()
    # The token after the file: the file would have been stored before the check.
    boundary = "b0undary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.zip"\r\n\r\n'.encode()
        + body,
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\n{token}'.encode(),
        f"\r\n--{boundary}--\r\n".encode(),
    ]
    r = app_client.post(
        "/jobs/new",
        content=b"".join(parts),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 403
    assert list((settings.data_dir / "tmp").iterdir()) == []
    with open(tabular_zip, "rb") as f:
        r = app_client.post(
            "/jobs/new",
            files={"file": ("t.zip", f, "application/zip")},
            data={"csrf_token": token},
            follow_redirects=False,
        )
    assert r.status_code == 303


# -------------------------------------------------------------- rate limits


@pytest.fixture
def strict(settings):
    """Three attempts per 60 s; the app and a second client from another address."""
    app = create_app(
        replace(settings, login_attempts=3, login_window_seconds=60), dispatcher=NullDispatcher()
    )
    with TestClient(app) as client:
        yield app, client


def _login(client, name, password):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_sign_in_is_limited_per_address_and_per_name(strict):
    app, client = strict
    add_user(client, "ann")
    add_user(client, "bob")
    for _ in range(3):
        assert _login(client, "ann", "wrong-password").status_code == 401
    r = _login(client, "bob", "password123")  # another name, same address
    assert r.status_code == 429 and 0 < int(r.headers["Retry-After"]) <= 61
    assert "Too many sign-in attempts" in r.text
    elsewhere = TestClient(app, client=("203.0.113.9", 4000))
    r = _login(elsewhere, "ann", "password123")  # the right password, from elsewhere
    assert r.status_code == 429  # ann's name has used its attempts
    assert _login(elsewhere, "bob", "password123").status_code == 303


def test_a_successful_sign_in_resets_the_names_count_not_the_addresss(strict):
    app, client = strict
    add_user(client, "ann")
    assert _login(client, "ann", "wrong-password").status_code == 401
    assert _login(client, "ann", "wrong-password").status_code == 401
    assert _login(client, "ann", "password123").status_code == 303
    client.cookies.clear()
    assert _login(client, "ann", "wrong-password").status_code == 401
    assert _login(client, "ann", "wrong-password").status_code == 429  # the address: 3 failures


def test_a_burst_of_sign_ins_cannot_outrun_the_count(strict):
    app, client = strict
    add_user(client, "ann")
    token = csrf_of(client.get("/login").text)
    form = {"name": "ann", "password": "wrong-password", "csrf_token": token}
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.post("/login", data=form).status_code, range(8)))
    assert sorted(codes) == [401] * 3 + [429] * 5, codes


def test_sign_up_is_limited_and_a_taken_name_counts(strict):
    app, client = strict
    add_user(client, "ann")

    def attempt(c, name):
        token = csrf_of(c.get("/signup").text)
        form = {"name": name, "password": "password123", "password2": "password123"}
        return c.post("/signup", data={**form, "csrf_token": token}, follow_redirects=False)

    r = attempt(client, "ann")
    assert r.status_code == 422 and "taken" in r.text  # the documented choice
    assert attempt(client, "a").status_code == 422
    client.cookies.clear()
    assert attempt(client, "carol").status_code == 303
    client.cookies.clear()
    r = attempt(client, "dave")
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_password_hashing_is_bounded(app_client, monkeypatch):
    monkeypatch.setattr(auth, "HASH_WAIT_SECONDS", 0.3)
    add_user(app_client, "ann")
    token = csrf_of(app_client.get("/login").text)
    for _ in range(auth.HASH_CONCURRENCY):
        assert auth._hashing.acquire(timeout=1)  # every slot busy
    try:
        started = time.monotonic()
        r = app_client.post(
            "/login", data={"name": "ann", "password": "password123", "csrf_token": token}
        )
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert time.monotonic() - started < 5
    finally:
        for _ in range(auth.HASH_CONCURRENCY):
            auth._hashing.release()
    # Many at once: never more than HASH_CONCURRENCY hashes run together.
    running, peak, lock = [0], [0], threading.Lock()
    real = auth._hasher

    class Counted:
        def hash(self, password):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                return real.hash(password)
            finally:
                with lock:
                    running[0] -= 1

    monkeypatch.setattr(auth, "HASH_WAIT_SECONDS", 30)
    monkeypatch.setattr(auth, "_hasher", Counted())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(auth.hash_password, ["password123"] * 8))
    assert peak[0] == auth.HASH_CONCURRENCY


# --------------------------------------------------------- account deletion


def _count(app, model, *where):
    with app.state.service.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_delete_the_account_on_the_page(app_client, tabular_zip, settings):
    app = app_client.app
    sign_up(app_client, "carol")
    page = app_client.get("/account").text
    app_client.post("/account/tokens", data={"name": "laptop", "csrf_token": csrf_of(page)})
    token = add_user(app_client, "dan")  # someone else, untouched
    other = upload(app_client, token, tabular_zip).json()["id"]
    with open(tabular_zip, "rb") as f:
        r = app_client.post(
            "/jobs/new",
            files={"file": ("t.zip", f, "application/zip")},
            data={"csrf_token": csrf_of(page)},
            follow_redirects=False,
        )
    job_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert (settings.data_dir / "jobs" / str(job_id)).exists()
    page = app_client.get("/account/delete")
    assert page.status_code == 200 and "1 job," in page.text and "1 API token" in page.text
    r = app_client.post(
        "/account/delete", data={"password": "wrong-one", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 403 and "The password is wrong." in r.text
    assert _count(app, User, User.name == "carol") == 1
    r = app_client.post(
        "/account/delete", data={"password": "password123", "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 200 and "Account deleted" in r.text
    assert auth.COOKIE_NAME not in app_client.cookies
    assert _count(app, User, User.name == "carol") == 0
    assert _count(app, Job, Job.id == job_id) == 0
    assert _count(app, ApiToken, ApiToken.name == "laptop") == 0
    assert not (settings.data_dir / "jobs" / str(job_id)).exists()
    assert (settings.data_dir / "jobs" / str(other)).exists()
    assert app_client.get("/api/v1/me", headers=bearer(token)).json()["name"] == "dan"
    assert sign_up(app_client, "carol").status_code == 303  # the name is free again


def test_the_last_administrator_cannot_delete_their_account(app_client):
    root = add_user(app_client, "root", admin=True)
    url = "/api/v1/account/delete"
    r = app_client.post(url, json={"password": "password123"}, headers=bearer(root))
    assert r.status_code == 409 and "only administrator" in r.json()["detail"]
    add_user(app_client, "root2", admin=True)
    r = app_client.post(url, json={"password": "password123"}, headers=bearer(root))
    assert r.status_code == 204
    assert app_client.get("/api/v1/me", headers=bearer(root)).status_code == 401


@pytest.fixture
def steady_server(settings, tmp_path):
    """`autodl serve` whose jobs last their whole budget."""
    server = LiveServer(replace(settings, engine="tests.service.engines:steady"), tmp_path / "log")
    yield server.start()
    server.stop()


@pytest.mark.slow
def test_deleting_an_account_stops_its_running_job(steady_server, tabular_zip):
    import httpx

    live_server = steady_server

    r = live_server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 0, r.stderr
    token = live_server.cli("token", "create", "ann").stdout.strip()
    with open(tabular_zip, "rb") as f:
        r = httpx.post(
            live_server.url + "/api/v1/jobs",
            headers=bearer(token),
            files={"file": ("t.zip", f, "application/zip")},
            data={"time_budget": "60"},
            timeout=60,
        )
    job_id = r.json()["id"]
    folder = live_server.settings.data_dir / "jobs" / str(job_id)

    def state():
        return httpx.get(
            f"{live_server.url}/api/v1/jobs/{job_id}", headers=bearer(token), timeout=10
        ).json()["state"]

    deadline = time.monotonic() + 60
    while state() != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert state() == "running"
    r = httpx.post(
        live_server.url + "/api/v1/account/delete",
        json={"password": "password123"},
        headers=bearer(token),
        timeout=30,
    )
    assert r.status_code == 204
    deadline = time.monotonic() + 20
    while folder.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a job process still alive would write again
    assert not folder.exists()
    ps = subprocess.run(
        ["pgrep", "-P", str(live_server.proc.pid), "-f", "autodl.service.jobs.runner"],
        capture_output=True,
    )
    assert ps.stdout == b""


# ------------------------------------------------------------ the admin form


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("storage_gb", "inf"),
        ("storage_gb", "-inf"),
        ("storage_gb", "nan"),
        ("storage_gb", "-1"),
        ("storage_gb", "1e30"),
        ("storage_gb", "1e400"),
        ("storage_gb", "lots"),
        ("jobs_per_day", "1.5"),
        ("jobs_per_day", "-1"),
        ("jobs_per_day", "99999999999999999999"),
        ("jobs_per_day", "ten"),
    ],
)
def test_every_admin_form_value_is_validated(app_client, field, value):
    add_user(app_client, "root", admin=True)
    _login(app_client, "root", "password123")
    page = app_client.get("/admin").text
    url = re.search(r"/admin/users/\d+/quota", page).group(0)
    r = app_client.post(url, data={field: value, "csrf_token": csrf_of(page)})
    assert r.status_code == 422, r.text[:300]
    assert ("GB" if field == "storage_gb" else "Jobs/day") in r.text
    r = app_client.post(url, data={field: "", "csrf_token": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303  # empty: the default


def test_admin_api_quotas_are_bounded(app_client):
    root = add_user(app_client, "root", admin=True)
    users = app_client.get("/api/v1/admin/users", headers=bearer(root)).json()
    url = f"/api/v1/admin/users/{users[0]['id']}"
    for body in ({"jobs_per_day": 2**40}, {"storage_quota_bytes": 2**70}):
        assert app_client.patch(url, json=body, headers=bearer(root)).status_code == 422

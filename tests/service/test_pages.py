"""The HTML pages: sign up/in/out with CSRF, every page renders, privacy holds on pages too."""

from __future__ import annotations

import io
import re
import zipfile

from autodl.formats.check import check_dataset
from tests.service.conftest import add_user, upload


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_up(client, name="carol", password="password123"):
    token = csrf_of(client.get("/signup").text)
    return client.post(
        "/signup",
        data={"name": name, "password": password, "password2": password, "csrf_token": token},
        follow_redirects=False,
    )


def test_public_pages_render(app_client):
    for url in (
        "/",
        "/help",
        "/help/format",
        "/help/score",
        "/help/predictions",
        "/help/api",
        "/privacy",
        "/login",
        "/signup",
    ):
        r = app_client.get(url)
        assert r.status_code == 200, url
        assert "never used" in r.text  # the privacy promise is on every page
        assert "Content-Security-Policy" in r.headers
    assert app_client.get("/help/nope").status_code == 404


def test_signed_out_pages_redirect_to_sign_in(app_client):
    r = app_client.get("/jobs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/jobs"


def test_sign_up_sets_a_signed_httponly_samesite_cookie(app_client):
    r = sign_up(app_client)
    assert r.status_code == 303 and r.headers["location"] == "/jobs"
    cookie = r.headers["set-cookie"]
    assert "autodl_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "No jobs yet" in app_client.get("/jobs").text


def test_sign_up_refuses_bad_input_and_taken_names(app_client):
    token = csrf_of(app_client.get("/signup").text)
    r = app_client.post(
        "/signup", data={"name": "x", "password": "password123", "csrf_token": token}
    )
    assert r.status_code == 422 and "2 to 64 characters" in r.text
    r = app_client.post("/signup", data={"name": "dave", "password": "short", "csrf_token": token})
    assert r.status_code == 422 and "at least 8" in r.text
    add_user(app_client, "erin")
    r = app_client.post(
        "/signup", data={"name": "erin", "password": "password123", "csrf_token": token}
    )
    assert r.status_code == 422 and "taken" in r.text


def test_forms_without_the_csrf_token_are_refused(app_client):
    add_user(app_client, "ann")
    app_client.get("/login")
    r = app_client.post(
        "/login", data={"name": "ann", "password": "password123", "csrf_token": "forged"}
    )
    assert r.status_code == 403
    sign_up(app_client)
    r = app_client.post("/account/tokens", data={"name": "x", "csrf_token": "forged"})
    assert r.status_code == 403 and "security token" in r.text
    r = app_client.post("/logout", data={})
    assert r.status_code == 403


def test_sign_in_wrong_password_then_right_then_out(app_client):
    add_user(app_client, "ann")
    token = csrf_of(app_client.get("/login").text)
    r = app_client.post(
        "/login", data={"name": "ann", "password": "wrong-password", "csrf_token": token}
    )
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    r = app_client.post(
        "/login",
        data={
            "name": "ann",
            "password": "password123",
            "csrf_token": token,
            "next": "//evil.example",
        },
        follow_redirects=False,
    )
    assert r.headers["location"] == "/jobs"  # no open redirect
    page = app_client.get("/account")
    assert page.status_code == 200 and "API tokens" in page.text
    r = app_client.post("/logout", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert app_client.get("/account", follow_redirects=False).status_code == 303


def test_account_page_creates_shows_once_and_revokes_tokens(app_client):
    sign_up(app_client)
    page = app_client.get("/account").text
    r = app_client.post("/account/tokens", data={"name": "laptop", "csrf_token": csrf_of(page)})
    secret = re.search(r'id="new-token">(adl_[^<]+)<', r.text).group(1)
    assert (
        app_client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()["name"]
        == "carol"
    )
    page = app_client.get("/account").text
    assert secret not in page and "laptop" in page
    token_id = re.search(r"/account/tokens/(\d+)/revoke", page).group(1)
    app_client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_of(page)})
    assert (
        app_client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 401
    )


def test_sign_out_everywhere_invalidates_old_cookies(app_client):
    sign_up(app_client)
    old = app_client.cookies.get("autodl_session")
    page = app_client.get("/account").text
    app_client.post("/account/signout-everywhere", data={"csrf_token": csrf_of(page)})
    app_client.cookies.set("autodl_session", old)
    assert app_client.get("/account", follow_redirects=False).status_code == 303


def test_job_pages_upload_cancel_delete_and_compare(app_client, tabular_zip):
    sign_up(app_client)
    new = app_client.get("/jobs/new")
    assert new.status_code == 200 and "Upload and start" in new.text
    assert 'action="/jobs/new"' in new.text  # the token travels in the form, not the URL
    with open(tabular_zip, "rb") as f:
        r = app_client.post(
            "/jobs/new",
            files={"file": ("t.zip", f, "application/zip")},
            data={"csrf_token": csrf_of(new.text), "name": "page job", "time_budget": "4"},
            follow_redirects=False,
        )
    assert r.status_code == 303
    job_url = r.headers["location"]
    page = app_client.get(job_url)
    assert page.status_code == 200 and "page job" in page.text and "position <b>1</b>" in page.text
    listing = app_client.get("/jobs?sort=name").text
    assert "page job" in listing and "Compare selected" in listing
    assert app_client.get(f"/compare?ids={job_url.rsplit('/', 1)[1]}").status_code == 200
    r = app_client.post(
        job_url + "/cancel", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.headers["location"].endswith("done=cancelled")
    assert "The job was cancelled." in app_client.get(r.headers["location"]).text
    r = app_client.post(
        job_url + "/delete", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False
    )
    assert r.headers["location"] == "/jobs?done=deleted"
    assert app_client.get(job_url).status_code == 404


def test_the_upload_form_without_javascript_lists_problems(app_client, tmp_path):
    sign_up(app_client)
    token = csrf_of(app_client.get("/jobs/new").text)
    r = app_client.post(
        "/jobs/new",
        files={"file": ("x.zip", b"not a zip", "application/zip")},
        data={"csrf_token": token, "name": "x"},
    )
    assert r.status_code == 400 and "not a zip archive" in r.text


def test_another_users_job_page_is_not_found(app_client, tabular_zip):
    ann = add_user(app_client, "ann")
    job_id = upload(app_client, ann, tabular_zip).json()["id"]
    sign_up(app_client)
    for url in (f"/jobs/{job_id}", f"/compare?ids={job_id}"):
        r = app_client.get(url)
        assert r.status_code == 404 and "Not found" in r.text
    page = app_client.get("/account").text
    assert (
        app_client.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf_of(page)}).status_code
        == 404
    )


def test_admin_page_is_for_admins(app_client):
    sign_up(app_client)
    assert app_client.get("/admin").status_code == 403
    add_user(app_client, "root", admin=True)


def test_admin_sets_quotas_on_the_page(app_client):
    add_user(app_client, "root", admin=True)
    token = csrf_of(app_client.get("/login").text)
    app_client.post("/login", data={"name": "root", "password": "password123", "csrf_token": token})
    page = app_client.get("/admin").text
    user_id = re.search(r"/admin/users/(\d+)/quota", page).group(1)
    r = app_client.post(
        f"/admin/users/{user_id}/quota",
        data={"jobs_per_day": "7", "storage_gb": "1.5", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert 'value="7"' in app_client.get("/admin").text


def test_sample_dataset_is_a_valid_zip_in_the_submission_layout(app_client, tmp_path):
    r = app_client.get("/samples/digits.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    assert (
        "metadata" in names
        and "digits.solution" in names
        and any(n.startswith("digits.data/unlabelled/") for n in names)
    )
    path = tmp_path / "digits.zip"
    path.write_bytes(r.content)
    report = check_dataset(path)
    assert report.ok and report.train + report.test + report.unlabelled == 1797


def test_token_creation_redirects_and_shows_the_secret_once(app_client):
    sign_up(app_client, "frank")
    page = app_client.get("/account").text
    assert "Signed in as <b>frank</b>" in page  # the account page names its user
    r = app_client.post(
        "/account/tokens",
        data={"name": "laptop", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/account"  # POST-redirect-GET
    assert "adl_" not in r.headers["location"]
    shown = app_client.get("/account").text
    secret = re.search(r'id="new-token">(adl_[^<]+)<', shown).group(1)
    assert app_client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).is_success
    again = app_client.get("/account").text  # a refresh: the list, not the secret again
    assert secret not in again and again.count("/revoke") == 1
    r = app_client.get("/account/tokens", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/account"  # not 405

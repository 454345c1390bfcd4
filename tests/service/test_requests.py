"""Issue 12, requests: bodies are bounded with or without a Content-Length, multipart only
where an upload is expected, and an upload form's parts are bounded too."""

from __future__ import annotations

import time
from dataclasses import replace

import httpx
import pytest

from autodl.service.limits import MAX_FORM_BYTES
from autodl.service.uploads import MAX_FIELDS_BYTES, MAX_PARTS
from tests.service.conftest import LiveServer, add_user, bearer
from tests.service.test_pages import csrf_of, sign_up

MB = 1024 * 1024


def chunks(total: int, size: int = 64 * 1024, first: bytes = b""):
    """A body sent chunked (no Content-Length): ``first``, then filler up to ``total`` bytes."""
    yield first
    sent = len(first)
    while sent < total:
        n = min(size, total - sent)
        yield b"a" * n
        sent += n


@pytest.fixture
def server(settings, tmp_path):
    """A real `autodl serve` (uvicorn) taking uploads of at most 1 MB."""
    s = LiveServer(replace(settings, max_upload_bytes=MB), tmp_path / "server.log").start()
    yield s
    s.stop()


def _multipart(boundary: str, fields: list[tuple[str, bytes]], files: int = 0) -> bytes:
    out = b""
    for name, value in fields:
        out += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value
            + b"\r\n"
        )
    for k in range(files):
        out += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="f{k}.zip"\r\nContent-Type: application/zip\r\n\r\n'
            ).encode()
            + b"PK" * 10
            + b"\r\n"
        )
    return out + f"--{boundary}--\r\n".encode()


@pytest.mark.slow
def test_a_chunked_form_body_is_bounded(server):
    """No Content-Length: the body is counted as it streams (a 403 before: all read)."""
    started = time.monotonic()
    r = httpx.post(
        server.url + "/login",
        content=chunks(2 * MAX_FORM_BYTES, first=b"name=ann&password="),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert r.status_code == 413 and "larger than the 1.0 MB allowed" in r.text
    assert time.monotonic() - started < 10


@pytest.mark.slow
def test_a_chunked_json_body_is_bounded(server):
    r = server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 0, r.stderr
    token = server.cli("token", "create", "ann").stdout.strip()
    r = httpx.post(
        server.url + "/api/v1/tokens",
        content=chunks(2 * MAX_FORM_BYTES, first=b'{"name": "'),
        headers={**bearer(token), "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


@pytest.mark.slow
def test_a_chunked_upload_is_bounded_by_the_upload_limit(server):
    r = server.cli("user", "create", "ann", input="password123\n")
    token = server.cli("token", "create", "ann").stdout.strip()
    r = httpx.post(
        server.url + "/api/v1/jobs",
        content=chunks(int(1.5 * MB), first=b"PK"),
        headers={**bearer(token), "Content-Type": "application/zip"},
        timeout=30,
    )
    assert r.status_code == 413
    # Fields only, chunked: before, any number of fields was kept in memory.
    boundary = "xyz"
    fields = [(f"f{i}", b"v" * 1000) for i in range(2000)]
    r = httpx.post(
        server.url + "/api/v1/jobs",
        content=iter([_multipart(boundary, fields)]),
        headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=30,
    )
    assert r.status_code in (400, 413), r.text
    assert list((server.settings.data_dir / "tmp").iterdir()) == []


def test_a_declared_oversized_body_is_refused_before_it_is_read(app_client):
    r = app_client.post(
        "/login",
        content=b"name=ann",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(MAX_FORM_BYTES + 1),
        },
    )
    assert r.status_code == 413


def test_multipart_is_refused_where_no_upload_is_expected(app_client):
    """Starlette spooled /login's file parts to /tmp without a limit; now 415 unread."""
    token = csrf_of(app_client.get("/login").text)
    r = app_client.post(
        "/login",
        data={"name": "ann", "password": "password123", "csrf_token": token},
        files={"blob": ("big.bin", b"x" * 200_000, "application/octet-stream")},
    )
    assert r.status_code == 415 and "does not accept file uploads" in r.text
    sign_up(app_client)
    page = app_client.get("/account").text
    r = app_client.post(
        "/account/tokens",
        data={"name": "laptop", "csrf_token": csrf_of(page)},
        files={"blob": ("x.bin", b"x", "application/octet-stream")},
    )
    assert r.status_code == 415
    token = add_user(app_client, "bob")
    r = app_client.post("/api/v1/tokens", files={"name": (None, b"laptop")}, headers=bearer(token))
    assert r.status_code == 415 and "does not accept" in r.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "files", "message"),
    [
        ([(f"f{i}", b"1") for i in range(MAX_PARTS + 1)], 0, "more than 16 parts"),
        ([(f"f{i}", b"v" * 10_000) for i in range(8)], 0, "fields hold more than 64 KB"),
        ([("name", b"x")], 2, "more than one file"),
        ([("n", b"v" * (MAX_FIELDS_BYTES + 1))], 0, "fields hold more than"),
    ],
)
def test_the_parts_of_an_upload_form_are_bounded(app_client, settings, fields, files, message):
    token = add_user(app_client, "ann")
    boundary = "b0undary"
    r = app_client.post(
        "/api/v1/jobs",
        content=_multipart(boundary, fields, files),
        headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and message in r.json()["detail"], r.text
    assert list((settings.data_dir / "tmp").iterdir()) == []


def test_a_part_header_is_bounded(app_client):
    token = add_user(app_client, "ann")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\nX-Pad: {"p" * 20_000}'
        f"\r\n\r\n1\r\n--{boundary}--\r\n"
    ).encode()
    r = app_client.post(
        "/api/v1/jobs",
        content=body,
        headers={**bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400 and "header" in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "body",
    [b"--b0undary\r\nbroken", b"no boundary at all", b"--b0undary\r\n\r\n\r\n--b0undary--"],
)
def test_a_broken_upload_form_is_a_clear_400(app_client, body):
    token = add_user(app_client, "ann")
    r = app_client.post(
        "/api/v1/jobs",
        content=body,
        headers={**bearer(token), "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert 400 <= r.status_code < 500, r.text

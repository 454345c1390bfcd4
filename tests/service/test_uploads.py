"""Hostile and broken uploads are refused before extraction, leave nothing behind and cost nothing."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from autodl.formats.archive import zip_folder
from autodl.service.app import create_app
from tests.service.conftest import NullDispatcher, add_user, bad_zip, bearer, upload


def _leftovers(client) -> list:
    storage = client.app.state.service.storage
    return list((storage.root / "tmp").iterdir()) + list((storage.root / "jobs").iterdir())


def _usage(client, token):
    return client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["jobs_today"]


@pytest.mark.parametrize(
    ("entries", "links", "words"),
    [
        ({"/etc/evil": b"x"}, None, "absolute path"),
        ({"../../evil": b"x"}, None, "'..' path"),
        ({"data/../../evil": b"x"}, None, "'..' path"),
        ({"C:/windows/evil": b"x"}, None, "absolute path"),
        ({"ok.txt": b"x"}, {"link": "/etc/passwd"}, "symbolic link"),
    ],
)
def test_unsafe_paths_and_links_are_refused(app_client, tmp_path, entries, links, words):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, bad_zip(entries, tmp_path / "evil.zip", links))
    assert r.status_code == 400 and words in r.json()["detail"], r.json()
    assert _leftovers(app_client) == [] and _usage(app_client, token) == 0
    assert not (tmp_path.parent / "evil").exists()


def _client(settings, **changes):
    return TestClient(create_app(replace(settings, **changes), dispatcher=NullDispatcher()))


def test_too_many_entries(settings, tmp_path):
    with _client(settings, max_archive_entries=10) as client:
        token = add_user(client, "ann")
        r = upload(client, token, bad_zip({f"f{i}": b"" for i in range(11)}, tmp_path / "many.zip"))
        assert r.status_code == 400 and "11 entries" in r.json()["detail"]


def test_too_large_once_extracted(settings, tmp_path):
    with _client(settings, max_extracted_bytes=1000) as client:
        token = add_user(client, "ann")
        r = upload(client, token, bad_zip({"big": b"x" * 5000}, tmp_path / "big.zip"))
        assert r.status_code == 413 and "once extracted" in r.json()["detail"]


def test_zip_bomb_ratio(app_client, tmp_path):
    token = add_user(app_client, "ann")
    r = upload(
        app_client, token, bad_zip({"zeros": b"\0" * (20 * 1024 * 1024)}, tmp_path / "bomb.zip")
    )
    assert r.status_code == 400 and "zip bombs" in r.json()["detail"]
    assert _leftovers(app_client) == []


def test_lying_headers_are_caught_while_extracting(settings, tmp_path):
    # The central directory claims 10 bytes; the data holds 5000: extraction counts real bytes.
    path = bad_zip({"liar": b"y" * 5000}, tmp_path / "liar.zip")
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[0]
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 24 : cd + 28] = (10).to_bytes(
        4, "little"
    )  # uncompressed size in the central directory
    path.write_bytes(bytes(raw))
    assert info.file_size == 5000
    with _client(settings, max_extracted_bytes=1000) as client:
        token = add_user(client, "ann")
        r = upload(client, token, path)
        assert r.status_code in (400, 413), r.json()
        assert _leftovers(client) == []


def test_not_a_zip(app_client, tmp_path):
    token = add_user(app_client, "ann")
    path = tmp_path / "data.zip"
    path.write_text("id,label\n1,a\n")
    r = upload(app_client, token, path)
    assert r.status_code == 400 and r.json()["detail"] == "The upload is not a zip archive."
    assert "<name>.data/" in r.json()["hint"]
    # One text file is raw data that cannot be converted (no class folder): said in one sentence.
    r = upload(app_client, token, bad_zip({"readme.txt": b"hello"}, tmp_path / "empty.zip"))
    detail = r.json()["detail"]
    assert r.status_code == 422 and "could not be converted: no text file" in detail, detail
    assert "the archive:" not in detail
    assert str(app_client.app.state.service.storage.root) not in r.text  # no server paths


def test_no_file(app_client):
    token = add_user(app_client, "ann")
    r = app_client.post("/api/v1/jobs", headers=bearer(token), data={"name": "x"}, files={})
    assert r.status_code in (400, 422)


def test_upload_over_the_cap_is_refused_by_content_length(settings, tabular_zip):
    with _client(settings, max_upload_bytes=1000) as client:
        token = add_user(client, "ann")
        r = upload(client, token, tabular_zip)
        assert r.status_code == 413 and "larger than the 1000 bytes allowed" in r.json()["detail"]


def test_upload_over_the_cap_is_stopped_while_streaming(settings, tabular_zip):
    def chunks():  # no Content-Length: the cap must hold while reading
        for _ in range(100):
            yield b"z" * 1000

    with _client(settings, max_upload_bytes=5000) as client:
        token = add_user(client, "ann")
        r = client.post(
            "/api/v1/jobs",
            content=chunks(),
            headers={**bearer(token), "Content-Type": "application/zip"},
        )
        assert r.status_code == 413
        assert _leftovers(client) == []


def test_an_invalid_dataset_lists_every_problem_and_costs_nothing(
    app_client, tabular_dir, tmp_path
):
    token = add_user(app_client, "ann")
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(tabular_dir, broken)
    (broken / "tinytabular.solution").unlink()
    (broken / "tinytabular.data" / "train" / "metadata.textproto").write_text(
        "this is { not protobuf"
    )
    r = upload(app_client, token, zip_folder(broken, tmp_path / "broken.zip"))
    assert r.status_code == 422
    body = r.json()
    assert "not valid" in body["detail"] and "quota is unchanged" in body["detail"]
    files = {p["file"] for p in body["problems"]}
    assert "tinytabular.solution" in files and any("train" in (f or "") for f in files)
    assert all(
        {"severity", "file", "record", "field", "message", "expected"} <= p.keys()
        for p in body["problems"]
    )
    assert _leftovers(app_client) == [] and _usage(app_client, token) == 0
    assert app_client.get("/api/v1/jobs", headers=bearer(token)).json()["jobs"] == []


@pytest.mark.slow
def test_layouts_one_top_level_folder_and_unlabelled_at_the_root(app_client, tabular_dir, tmp_path):
    token = add_user(app_client, "ann")
    r = upload(
        app_client, token, zip_folder(tabular_dir, tmp_path / "nested.zip", prefix="my-dataset/")
    )
    assert r.status_code == 201, r.json()
    import shutil

    moved = tmp_path / "moved"
    shutil.copytree(tabular_dir, moved)
    shutil.move(moved / "tinytabular.data" / "unlabelled", moved / "unlabelled")
    r = upload(app_client, token, zip_folder(moved, tmp_path / "root-unlabelled.zip"))
    assert r.status_code == 201, r.json()
    assert r.json()["dataset"]["unlabelled"] == 10


@pytest.mark.slow
def test_macos_litter_is_ignored(app_client, tabular_dir, tmp_path):
    token = add_user(app_client, "ann")
    path = zip_folder(tabular_dir, tmp_path / "mac.zip")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("__MACOSX/._metadata", b"junk")
        zf.writestr(".DS_Store", b"junk")
    assert upload(app_client, token, path).status_code == 201


def test_the_form_name_is_a_display_label_only(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, tabular_zip, name="../../x\nEvil: 1\r\n" + "y" * 500)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["dataset"]["name"] == "tinytabular"  # files are named from the dataset only
    assert "\n" not in job["name"] and "\r" not in job["name"] and len(job["name"]) == 100
    assert job["name"].startswith("../../x Evil: 1 y")


def test_refused_uploads_leave_nothing_in_tmp(settings, tabular_dir, tabular_zip, tmp_path):
    import shutil

    bad_name = tmp_path / "bad"
    shutil.copytree(tabular_dir, bad_name)
    (bad_name / "tinytabular.data").rename(bad_name / "bad name.data")
    with _client(settings, jobs_per_day=1) as client:
        token = add_user(client, "ann")
        tmp = client.app.state.service.storage.root / "tmp"
        r = upload(client, token, zip_folder(bad_name, tmp_path / "bad.zip"))
        assert r.status_code == 422 and "'bad name'" in r.text
        assert list(tmp.iterdir()) == []
        r = upload(client, token, tabular_zip, time_budget="soon")
        assert r.status_code == 422 and list(tmp.iterdir()) == []
        assert upload(client, token, tabular_zip).status_code == 201
        r = upload(client, token, tabular_zip)  # over the daily quota
        assert r.status_code == 429 and list(tmp.iterdir()) == []


def test_old_upload_leftovers_are_swept_at_start_up_and_fresh_ones_kept(settings):
    import os
    import time

    tmp = settings.data_dir / "tmp"
    old, fresh = tmp / "upload-old", tmp / "upload-fresh"
    for folder in (old, fresh):
        (folder / "dataset").mkdir(parents=True)
        (folder / "upload.zip").write_bytes(b"x" * 10)
    (tmp / "upload-oldfile").write_bytes(b"x")
    long_ago = time.time() - 2 * 3600
    for path in (old, old / "dataset", old / "upload.zip", tmp / "upload-oldfile"):
        os.utime(path, (long_ago, long_ago))
    (tmp / "keep-me").mkdir()
    os.utime(tmp / "keep-me", (long_ago, long_ago))  # not an upload: not ours to remove
    with _client(settings):
        assert sorted(p.name for p in tmp.iterdir()) == ["keep-me", "upload-fresh"]

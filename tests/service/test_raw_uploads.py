"""A zip of raw data uploaded through the API or the page is converted in the bounded
validation child (`autodl._checkproc`), validated and queued; what cannot be converted,
and what is neither raw data nor a dataset, gets one clear 422."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from autodl.errors import AutoDLError
from autodl.formats.archive import zip_folder
from autodl.service.client import Client
from tests.convert.inputs import tabular_rows, write_csv, write_images
from tests.service.conftest import add_user, bad_zip, bearer, upload
from tests.service.test_pages import csrf_of, sign_up


def _leftovers(client) -> list[Path]:
    return list((client.app.state.service.storage.root / "tmp").iterdir())


def _jobs_today(client, token) -> int:
    return client.get("/api/v1/me", headers=bearer(token)).json()["usage"]["jobs_today"]


def _fish_zip(tmp_path: Path, header=None) -> Path:
    h, rows = tabular_rows()
    write_csv(tmp_path / "raw" / "fish.csv", header or h, rows)
    return zip_folder(tmp_path / "raw", tmp_path / "fish.zip")


def test_a_zip_of_class_folders_of_images_becomes_a_queued_job(app_client, tmp_path):
    token = add_user(app_client, "ann")
    write_images(tmp_path / "shapes")
    archive = zip_folder(tmp_path / "shapes", tmp_path / "shapes.zip")  # classes at the root
    r = upload(app_client, token, archive)
    assert r.status_code == 201, r.json()
    job = r.json()
    assert job["state"] == "queued" and job["dataset"]["name"] == "shapes"
    assert job["dataset"]["classes"] == 3 and job["dataset"]["label_names"] == ["cat", "dog", "owl"]
    assert job["dataset"]["train"] + job["dataset"]["test"] == 18
    note = job["events"][0]["message"]
    assert "converted from a zip of 18 image files in 3 folders (cat, dog, owl)" in note, note
    storage = app_client.app.state.service.storage
    assert (storage.dataset_dir(job["id"]) / "shapes.data" / "train").is_dir()
    assert _leftovers(app_client) == []  # neither the raw files nor format's zip are kept
    assert app_client.app.state.service.dispatcher.notified == [job["id"]]


@pytest.mark.slow
def test_class_folders_inside_one_folder_of_the_zip(app_client, tmp_path):
    token = add_user(app_client, "ann")
    write_images(tmp_path / "in" / "pets", classes=("cat", "dog"), per_class=7)
    r = upload(app_client, token, zip_folder(tmp_path / "in", tmp_path / "upload.zip"))
    assert r.status_code == 201, r.json()
    assert r.json()["dataset"]["name"] == "pets" and r.json()["dataset"]["classes"] == 2


def test_a_raw_csv_zip_with_the_label_field(app_client, tmp_path):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, _fish_zip(tmp_path), label="species", name="my fish")
    assert r.status_code == 201, r.json()
    job = r.json()
    assert job["name"] == "my fish" and job["dataset"]["name"] == "fish"
    assert job["dataset"]["domain"] == "tabular" and job["dataset"]["classes"] == 3
    assert "converted from a CSV table (label column 'species')" in job["events"][0]["message"]
    assert _jobs_today(app_client, token) == 1


def test_a_guessable_label_column_needs_no_field(app_client, tmp_path):
    token = add_user(app_client, "ann")
    archive = _fish_zip(tmp_path, header=["id", "length", "colour", "weight", "class"])
    r = upload(app_client, token, archive)
    assert r.status_code == 201, r.json()
    assert "(label column 'class')" in r.json()["events"][0]["message"]


def test_a_raw_table_without_a_label_names_the_columns_and_the_field(app_client, tmp_path):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, _fish_zip(tmp_path))
    assert r.status_code == 422, r.json()
    body = r.json()
    for column in ("'id'", "'length'", "'colour'", "'weight'", "'species'"):
        assert column in body["detail"], body
    assert "a CSV table" in body["detail"]
    # The API names its own field, not the page's, and says so to programs too.
    assert "'label' form field" in body["hint"] and "'label' query parameter" in body["hint"]
    assert "label column field" not in body["hint"]
    assert body["code"] == "missing_label"
    assert body["columns"] == ["id", "length", "colour", "weight", "species"]
    assert str(tmp_path) not in str(body) and "/tmp" not in str(body)
    assert _leftovers(app_client) == [] and _jobs_today(app_client, token) == 0


def test_the_page_asks_for_the_label_in_its_own_words(app_client, tmp_path):
    sign_up(app_client)
    new = app_client.get("/jobs/new")
    r = app_client.post(
        "/jobs/new",
        files={"file": ("fish.zip", _fish_zip(tmp_path).read_bytes(), "application/zip")},
        data={"csrf_token": csrf_of(new.text)},
    )
    assert r.status_code == 422 and "which one holds the classes?" in r.text
    assert "Fill in the label column field (Label column, tables only)" in r.text
    assert "query parameter" not in r.text and "missing_label" not in r.text


def test_a_label_column_that_does_not_exist(app_client, tmp_path):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, _fish_zip(tmp_path), label="kind")
    assert r.status_code == 422, r.json()
    text = str(r.json())
    assert "'kind'" in text and "--label" not in text and "/tmp" not in text, text
    assert "(the 'label' field)" in text and "label column field" not in text, text
    assert _leftovers(app_client) == [] and _jobs_today(app_client, token) == 0


def test_the_label_field_with_a_dataset_is_refused(app_client, tabular_zip):
    token = add_user(app_client, "ann")
    r = upload(app_client, token, tabular_zip, label="species")
    assert r.status_code == 422 and "label column field" in r.json()["detail"], r.json()
    assert r.json()["hint"] == "Send it again without the 'label' field."
    assert _jobs_today(app_client, token) == 0


def test_neither_raw_data_nor_a_dataset_is_one_clear_sentence(app_client, tmp_path):
    token = add_user(app_client, "ann")
    archive = bad_zip({"notes/readme.json": b"{}", "blob.bin": b"x"}, tmp_path / "junk.zip")
    r = upload(app_client, token, archive)
    assert r.status_code == 422
    body = r.json()
    detail = body["detail"]
    assert detail.startswith("The archive holds no AutoDL dataset and no raw data"), detail
    assert "the archive: the archive" not in str(body) and not body.get("problems")
    assert "'<name>.data' folder" in detail and "CSV" in detail and "images" in detail
    assert _leftovers(app_client) == [] and _jobs_today(app_client, token) == 0


def test_the_page_shows_code_not_backticks(app_client, tmp_path):
    sign_up(app_client)
    new = app_client.get("/jobs/new")
    assert 'name="label"' in new.text and "Label column (tables only)" in new.text
    archive = bad_zip({"blob.bin": b"x"}, tmp_path / "junk.zip")
    r = app_client.post(
        "/jobs/new",
        files={"file": ("junk.zip", archive.read_bytes(), "application/zip")},
        data={"csrf_token": csrf_of(new.text)},
    )
    assert r.status_code == 422 and "no AutoDL dataset" in r.text
    notice = r.text[r.text.index('class="notice error"') :]
    notice = notice[: notice.index("</div>")]
    assert "<code>autodl format</code>" in notice and "`" not in notice, notice


def test_the_page_form_sends_the_label(app_client, tmp_path):
    sign_up(app_client)
    token = csrf_of(app_client.get("/jobs/new").text)
    r = app_client.post(
        "/jobs/new",
        files={"file": ("fish.zip", _fish_zip(tmp_path).read_bytes(), "application/zip")},
        data={"csrf_token": token, "label": "species"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text[-2000:]
    page = app_client.get(r.headers["location"]).text
    assert "converted from a CSV table (label column &#39;species&#39;)" in page


def test_the_api_description_names_the_label_field(app_client):
    spec = app_client.get("/api/v1/openapi.json").json()
    form = spec["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert "Label column (tables only)" in form["schema"]["properties"]["label"]["description"]


def test_a_converted_dataset_over_the_storage_left_is_refused(settings, tmp_path):
    from dataclasses import replace

    from fastapi.testclient import TestClient

    from autodl.service.app import create_app
    from tests.service.conftest import NullDispatcher

    write_images(tmp_path / "shapes")
    archive = zip_folder(tmp_path / "shapes", tmp_path / "shapes.zip")
    raw_bytes = sum(i.file_size for i in zipfile.ZipFile(archive).infolist())
    # Room for the raw files, not for the dataset made of them (decoded, re-encoded records).
    app = create_app(
        replace(settings, max_extracted_bytes=raw_bytes + 10), dispatcher=NullDispatcher()
    )
    with TestClient(app) as client:
        token = add_user(client, "ann")
        r = upload(client, token, archive)
        assert r.status_code == 413 and "converted dataset takes" in r.json()["detail"], r.json()
        assert _leftovers(client) == [] and _jobs_today(client, token) == 0


def test_the_client_carries_the_answers_code(app_client, tmp_path):
    """`autodl submit` (its Client) keeps ``code`` and ``columns`` of a refusal, so that
    the command can ask for --label in its own words."""
    token = add_user(app_client, "ann")
    client = Client("http://testserver", token)
    client.http = app_client  # the app itself, in-process
    client.http.headers.update(bearer(token))
    with pytest.raises(AutoDLError) as refused:
        client.upload(_fish_zip(tmp_path), name=None, time_budget=None)
    assert refused.value.code == "missing_label" and "species" in refused.value.columns
    assert "which one holds the classes?" in refused.value.message

"""Leaderboards of a dataset (same content hash) and the stored examples of a run, in the
API and on the pages: who sees which runs, and nothing served from outside a job."""

from __future__ import annotations

import io
import json
import shutil

import pytest
from PIL import Image

from autodl.formats.archive import zip_folder
from autodl.formats.samples import make_tabular
from autodl.service import jobs as J
from autodl.service.leaderboard import dataset_hash
from autodl.service.models import Job
from tests.service.conftest import add_user, bearer, upload


def _finish(client, job_id: int, alc: float, seed: int, first: float) -> None:
    """End the job as a scored run would: its scores in the row, run.json on disk."""
    service = client.app.state.service
    with service.db.session() as s:
        job = s.get(Job, job_id)
        J.set_state(s, job, "running")
        J.set_state(s, job, "finished", n_predictions=2)
        job.alc, job.final_nauc = alc, alc + 0.05
    results = service.storage.results_dir(job_id)
    results.mkdir(parents=True, exist_ok=True)
    run = {"seed": seed, "predictions": [{"index": 0, "elapsed": first}, {"index": 1}]}
    (results / "run.json").write_text(json.dumps(run))


def test_the_same_data_has_the_same_hash_whatever_its_names(tmp_path):
    a = make_tabular(tmp_path / "a", n_train=30, n_test=10)
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for path in sorted(b.rglob("*.tfrecord")):
        path.rename(path.with_name("renamed-" + path.name))
    assert dataset_hash(a) == dataset_hash(b)
    record = sorted(b.rglob("*.tfrecord"))[0]
    data = bytearray(record.read_bytes())
    data[-1] ^= 1  # one bit of one record
    record.write_bytes(bytes(data))
    assert dataset_hash(a) != dataset_hash(b)


@pytest.mark.slow
def test_leaderboard_shows_a_users_own_runs_and_an_admin_everyones(
    app_client, tabular_zip, tmp_path
):
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    root = add_user(app_client, "root", admin=True)
    other = zip_folder(make_tabular(tmp_path / "other", n_train=40, n_test=21), tmp_path / "o.zip")
    ann1 = upload(app_client, ann, tabular_zip).json()["id"]
    ann2 = upload(app_client, ann, tabular_zip).json()["id"]
    ann_other = upload(app_client, ann, other).json()["id"]
    bob1 = upload(app_client, bob, tabular_zip).json()["id"]
    with app_client.app.state.service.db.session() as s:
        hashes = {i: s.get(Job, i).dataset_hash for i in (ann1, ann2, ann_other, bob1)}
    assert hashes[ann1] == hashes[ann2] == hashes[bob1] != hashes[ann_other]
    assert len(hashes[ann1]) == 64
    _finish(app_client, ann1, 0.61, seed=1, first=0.7)
    _finish(app_client, ann2, 0.83, seed=2, first=0.4)
    _finish(app_client, bob1, 0.90, seed=0, first=1.5)
    _finish(app_client, ann_other, 0.99, seed=0, first=0.1)

    board = app_client.get(f"/api/v1/jobs/{ann1}/leaderboard", headers=bearer(ann)).json()
    assert [r["id"] for r in board["runs"]] == [ann2, ann1]  # best ALC first; bob's not there
    assert [r["rank"] for r in board["runs"]] == [1, 2] and not board["everyone"]
    best = board["runs"][0]
    assert (best["seed"], best["first_prediction"], best["alc"]) == (2, 0.4, 0.83)
    assert best["final_nauc"] == 0.88 and best["time_budget"] > 0 and best["owner"] == "ann"
    assert [r["this"] for r in board["runs"]] == [False, True]
    assert board["curves"] == [ann2, ann1]
    assert board["dataset"]["hash"] == hashes[ann1]

    everyone = app_client.get(f"/api/v1/jobs/{ann1}/leaderboard", headers=bearer(root)).json()
    assert [r["id"] for r in everyone["runs"]] == [bob1, ann2, ann1] and everyone["everyone"]
    # bob sees his own run alone, and ann's job not at all
    mine = app_client.get(f"/api/v1/jobs/{bob1}/leaderboard", headers=bearer(bob)).json()
    assert [r["id"] for r in mine["runs"]] == [bob1]
    r = app_client.get(f"/api/v1/jobs/{ann1}/leaderboard", headers=bearer(bob))
    assert r.status_code == 404

    page = app_client.get(f"/jobs/{ann1}/leaderboard", headers=bearer(ann))
    assert page.status_code == 200
    assert f'href="/jobs/{ann2}"' in page.text and f'href="/jobs/{bob1}"' not in page.text
    assert f"[{ann2}, {ann1}]" in page.text  # the curves compare.js draws
    assert "0.8300" in page.text and "0.4 s" in page.text
    page = app_client.get(f"/jobs/{ann1}/leaderboard", headers=bearer(root))
    assert f'href="/jobs/{bob1}"' in page.text and ">bob<" in page.text
    job_page = app_client.get(f"/jobs/{ann1}", headers=bearer(ann)).text
    assert f'href="/jobs/{ann1}/leaderboard"' in job_page and "(2 runs)" in job_page


def _png(color: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.slow
def test_stored_examples_are_served_from_the_jobs_results_only(app_client, tabular_zip):
    ann, bob = add_user(app_client, "ann"), add_user(app_client, "bob")
    job = upload(app_client, ann, tabular_zip).json()["id"]
    r = app_client.get(f"/api/v1/jobs/{job}/examples", headers=bearer(ann))
    assert r.status_code == 404 and "yet (it is queued)" in r.json()["detail"]
    _finish(app_client, job, 0.5, seed=0, first=1.0)
    folder = app_client.app.state.service.storage.results_dir(job) / "examples"
    folder.mkdir()
    (folder / "00.png").write_bytes(_png(200))
    (folder / "secret.txt").write_text("not an example")
    index = {
        "task": "multi-class",
        "domain": "image",
        "prediction": 1,
        "rows": 20,
        "mistakes": 2,
        "per_class": 3,
        "threshold": None,
        "examples": [
            {
                "row": 4,
                "id": 4,
                "label": "a",
                "true": ["a"],
                "predicted": ["b"],
                "probability": 0.9,
                "error": 0.9,
                "kind": "image",
                "image": "00.png",
                "text": None,
            },
            {
                "row": 7,
                "id": 7,
                "label": "b",
                "true": ["b"],
                "predicted": ["a"],
                "probability": 0.7,
                "error": 0.7,
                "kind": "image",
                "image": "../../dataset/x.png",  # a name that climbs out: no URL
                "text": None,
            },
        ],
    }
    (folder / "index.json").write_text(json.dumps(index))
    got = app_client.get(f"/api/v1/jobs/{job}/examples", headers=bearer(ann)).json()
    urls = [e["image_url"] for e in got["examples"]]
    assert urls == [f"/api/v1/jobs/{job}/examples/00.png", None]
    r = app_client.get(urls[0], headers=bearer(ann))
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == _png(200)
    for name in ("secret.txt", "index.json", "..%2F..%2Fdataset", "99.png"):
        r = app_client.get(f"/api/v1/jobs/{job}/examples/{name}", headers=bearer(ann))
        assert r.status_code == 404, name
    assert app_client.get(urls[0], headers=bearer(bob)).status_code == 404
    assert app_client.get(f"/api/v1/jobs/{job}/examples", headers=bearer(bob)).status_code == 404
    page = app_client.get(f"/jobs/{job}", headers=bearer(ann)).text
    assert "Examples the model gets most wrong" in page
    assert f'src="/api/v1/jobs/{job}/examples/00.png"' in page
    assert "p = 0.900 · row 4" in page and "2 of 20 test rows wrong" in page

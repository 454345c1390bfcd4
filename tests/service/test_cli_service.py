"""`autodl user create`, `token create`, `submit` and `db upgrade` against a real server process."""

from __future__ import annotations

import json
import shutil

import pytest

from autodl.formats.archive import zip_folder


@pytest.mark.slow
def test_user_token_submit_wait_output(live_server, tabular_dir, tmp_path):
    r = live_server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 0 and "Created user ann" in r.stdout, r.stderr
    r = live_server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 1 and "taken" in r.stderr and "Traceback" not in r.stderr
    assert "Hint: Choose another name, or create a token" in r.stderr
    r = live_server.cli("token", "create", "ann")
    token = r.stdout.strip()
    assert r.returncode == 0 and token.startswith("adl_")
    out = tmp_path / "results"
    r = live_server.cli(
        "submit",
        str(tabular_dir),
        "--server",
        live_server.url,
        "--token",
        token,
        "--time-budget",
        "3",
        "--output",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "Job 1 queued" in r.stdout and "ALC" in r.stdout
    assert "queued" in r.stderr and "prediction 0" in r.stderr and "finished" in r.stderr
    # The same layout as `autodl run` writes.
    for rel in (
        "scores.json",
        "scores.txt",
        "report.html",
        "learning-curve.png",
        "engine.log",
        "run.json",
        "run.jsonl",
        "predictions/start.txt",
        "predictions/end.txt",
        "unlabelled/predictions.csv",
        "unlabelled/tinytabular.predict",
    ):
        assert (out / rel).is_file(), rel
    assert json.loads((out / "scores.json").read_text())["alc"] is not None


@pytest.mark.slow
def test_submit_a_zip_without_waiting_and_an_invalid_one(live_server, tabular_dir, tmp_path):
    live_server.cli("user", "create", "bob", "--admin", input="password123\n")
    token = live_server.cli("token", "create", "bob", "--label", "ci").stdout.strip()
    archive = zip_folder(tabular_dir, tmp_path / "t.zip", prefix="folder/")
    r = live_server.cli(
        "submit", str(archive), "--server", live_server.url, "--token", token, "--name", "zipped"
    )
    assert r.returncode == 0 and "Job 1 queued: " + live_server.url + "/jobs/1" in r.stdout, (
        r.stderr
    )
    assert "100.0% of " in r.stderr and " KB" in r.stderr and "0.0 MB" not in r.stderr
    broken = tmp_path / "broken"
    shutil.copytree(tabular_dir, broken)
    (broken / "tinytabular.solution").unlink()
    r = live_server.cli("submit", str(broken), "--server", live_server.url, "--token", token)
    assert (
        r.returncode == 1
        and "(422)" in r.stderr
        and "tinytabular.solution" in r.stderr
        and "Traceback" not in r.stderr
    )


@pytest.mark.slow
def test_submit_errors_are_one_clear_message(live_server, tabular_dir, tmp_path):
    r = live_server.cli(
        "submit", str(tabular_dir), "--server", live_server.url, "--token", "adl_wrong"
    )
    assert r.returncode == 1 and "(401)" in r.stderr and "Traceback" not in r.stderr
    assert "Uploading" not in r.stderr  # the token is checked before the archive is sent
    r = live_server.cli(
        "submit", str(tabular_dir), "--server", "http://127.0.0.1:9", "--token", "x"
    )
    assert r.returncode == 1 and "cannot reach" in r.stderr
    r = live_server.cli("token", "create", "nobody")
    assert r.returncode == 1 and "no user called 'nobody'" in r.stderr
    r = live_server.cli("user", "create", "x", input="password123\n")
    assert r.returncode == 1 and "2 to 64 characters" in r.stderr


@pytest.mark.slow
def test_db_upgrade(live_server):
    from pathlib import Path

    import autodl.service.migrations as migrations

    versions = Path(migrations.__file__).parent / "versions"
    head = max(p.name.split("_")[0] for p in versions.glob("[0-9]*_*.py"))
    r = live_server.cli("db", "upgrade")
    assert r.returncode == 0 and f"revision {head}" in r.stdout


@pytest.mark.slow
def test_production_refuses_the_default_secret(live_server):
    env = live_server.env()
    env["AUTODL_ENV"] = "production"
    env["AUTODL_SECRET_KEY"] = "change-me-development-only"
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "autodl", "serve", "--port", "9"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The old public development key is refused like any short key, in every mode.
    assert r.returncode == 1 and "AUTODL_SECRET_KEY is shorter than 32 characters" in r.stderr


@pytest.mark.slow
def test_submit_raw_data_converts_it_first(live_server, tmp_path):
    """A CSV (with --label) and a folder of class folders of images are converted with
    `autodl format`'s defaults into a temporary folder, uploaded and queued; that folder
    is gone afterwards. A table without a guessable label column names its columns."""
    import subprocess
    import sys

    import httpx

    from tests.convert.inputs import tabular_rows, write_csv, write_images
    from tests.service.conftest import ROOT

    live_server.cli("user", "create", "dan", input="password123\n")
    token = live_server.cli("token", "create", "dan").stdout.strip()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**live_server.env(), "TMPDIR": str(temp)}

    def submit(*args):
        return subprocess.run(
            [sys.executable, "-m", "autodl", "submit", *args]
            + ["--server", live_server.url, "--token", token],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
        )

    header, rows = tabular_rows()
    fish = write_csv(tmp_path / "fish.csv", header, rows)
    r = submit(str(fish))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "which column holds the labels?" in r.stderr, r.stderr
    assert "(id, length, colour, weight, species)" in r.stderr
    assert f"autodl submit {fish} --label COLUMN" in r.stderr
    assert f"autodl format {fish} --label COLUMN --output formatted" in r.stderr
    # a zip of the table: the server asks for the column, in this command's words
    (tmp_path / "zipped").mkdir()
    shutil.copy(fish, tmp_path / "zipped" / "fish.csv")
    fish_zip = zip_folder(tmp_path / "zipped", tmp_path / "fish-raw.zip")
    r = submit(str(fish_zip))
    assert r.returncode == 1 and "which one holds the classes?" in r.stderr, r.stderr
    assert f"Hint: Name it with --label: `autodl submit {fish_zip} --label COLUMN" in r.stderr
    assert "label column field" not in r.stderr
    r = submit(str(fish_zip), "--label", "kind")
    assert r.returncode == 1 and "'kind'" in r.stderr and "label column field" not in r.stderr

    r = submit(str(fish), "--label", "species")
    assert r.returncode == 0, r.stderr
    assert "fish.csv is raw data, a CSV table with 5 columns" in r.stderr
    assert "converting it first with `autodl format`'s defaults (label column 'species')" in (
        r.stderr
    )
    assert "Job 1 queued" in r.stdout
    write_images(tmp_path / "shapes")
    r = submit(str(tmp_path / "shapes"))
    assert r.returncode == 0 and "Job 2 queued" in r.stdout, r.stderr
    assert "a folder of 18 image files in 3 folders (cat, dog, owl)" in r.stderr
    assert list(temp.iterdir()) == []  # the temporary folders are removed

    jobs = {
        j["id"]: j
        for j in httpx.get(
            live_server.url + "/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}
        ).json()["jobs"]
    }
    assert jobs[1]["dataset"]["name"] == "fish" and jobs[1]["dataset"]["domain"] == "tabular"
    assert jobs[2]["dataset"]["name"] == "shapes" and jobs[2]["dataset"]["classes"] == 3

"""`autodl user create`, `token create`, `submit` and `db upgrade` against a real server process."""

from __future__ import annotations

import json
import shutil

from tests.service.conftest import zip_folder


def test_user_token_submit_wait_output(live_server, tabular_dir, tmp_path):
    r = live_server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 0 and "Created user ann" in r.stdout, r.stderr
    r = live_server.cli("user", "create", "ann", input="password123\n")
    assert r.returncode == 1 and "taken" in r.stderr and "Traceback" not in r.stderr
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


def test_db_upgrade(live_server):
    from pathlib import Path

    import autodl.service.migrations as migrations

    versions = Path(migrations.__file__).parent / "versions"
    head = max(p.name.split("_")[0] for p in versions.glob("[0-9]*_*.py"))
    r = live_server.cli("db", "upgrade")
    assert r.returncode == 0 and f"revision {head}" in r.stdout


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

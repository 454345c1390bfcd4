"""Every command the help pages show runs as written (issue 13: a help page told users to
`pip install` a package that is not on the index and to check a zip where none is written).

The pages are fetched from a real server; each line of a code block that starts with
``autodl``, ``curl`` or ``cat`` is run by bash in a folder holding the inputs the pages
name (customers.csv, photos/, reviews.csv, recordings/ …), in page order, with
``$TOKEN`` set to a real API token.
"""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from autodl.formats.archive import zip_folder
from tests.convert import inputs
from tests.service.conftest import ROOT, LiveServer, wait_for

PAGES = ("format", "api", "predictions")
COMMANDS = ("autodl ", "curl ", "cat ")

pytestmark = pytest.mark.slow


def commands_of(page_html: str) -> list[str]:
    lines = []
    for block in re.findall(r'<pre class="code">(.*?)</pre>', page_html, re.S):
        text = html.unescape(re.sub(r"<[^>]+>", "", block))
        lines += [line.strip() for line in text.splitlines() if line.startswith(COMMANDS)]
    return lines


def make_inputs(cwd: Path) -> None:
    """The files the pages' commands name, small."""
    rows = [[20 + i % 50, ["basic", "pro"][i % 2], ["yes", "no"][i % 3 == 0]] for i in range(60)]
    inputs.write_csv(cwd / "customers.csv", ["age", "plan", "churn"], rows)
    inputs.write_images(cwd / "photos", per_class=4)
    texts = [[inputs.text_of(c, i), c] for c in ("sport", "food") for i in range(20)]
    inputs.write_csv(cwd / "reviews.csv", ["review", "sentiment"], texts)
    inputs.write_audio(cwd / "recordings", "wav", per_class=4)
    inputs.write_audio(cwd / "new-recordings", "wav", per_class=1)
    from autodl.formats.samples import make_digits, make_tabular

    zip_folder(make_digits(cwd / "samples"), cwd / "digits.zip", compression=zipfile.ZIP_STORED)
    mydata = make_tabular(cwd / "made", n_train=40, n_test=20, name="mydata")
    zip_folder(mydata, cwd / "mydata.zip", compression=zipfile.ZIP_STORED)


def test_every_command_in_the_help_pages_runs(settings, tmp_path):
    server = LiveServer(
        replace(settings, max_time_budget=300, jobs_per_day=50), tmp_path / "server.log"
    ).start()
    try:
        assert server.cli("user", "create", "ann", input="password123\n").returncode == 0
        token = server.cli("token", "create", "ann").stdout.strip()
        cwd = tmp_path / "work"
        cwd.mkdir()
        make_inputs(cwd)
        bin_dir = Path(sys.executable).parent  # `autodl` as a user with the venv active
        env = {
            **server.env(),
            "TOKEN": token,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        }
        ran = []
        for page in PAGES:
            text = httpx.get(f"{server.url}/help/{page}", timeout=30).text
            commands = commands_of(text)
            assert commands, f"/help/{page} shows no command"
            for command in commands:
                if "/download/" in command:  # the results exist once the job has ended
                    wait_for(lambda: _ended(server.url, token, 1), timeout=120, interval=0.5)
                proc = subprocess.run(
                    ["bash", "-c", command],
                    cwd=cwd,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                assert proc.returncode == 0, f"/help/{page}: {command}\n{proc.stderr[-2000:]}"
                assert "Traceback" not in proc.stderr, command
                ran.append((command, proc.stdout))
        assert any(c.startswith("autodl check formatted/pets.zip") for c, _ in ran)
        assert (cwd / "predictions.csv").read_text().startswith("id,")
        assert ran[-1][0].startswith("cat ") and ran[-1][1].startswith("id,")
        assert len(ran) >= 10
    finally:
        server.stop()


def _ended(url: str, token: str, job_id: int) -> bool:
    r = httpx.get(
        f"{url}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return r.json().get("state") in ("finished", "failed", "cancelled")


def test_help_pages_name_no_package_index_install():
    help_dir = ROOT / "autodl" / "service" / "templates" / "help"
    for page in help_dir.glob("*.html"):
        assert "pip install autodl-selfservice" not in page.read_text(), page.name

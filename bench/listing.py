"""The cost of one poll of the job listing, whatever the datasets' check reports hold.

Makes N jobs (default 200) with `jobs.create_job` in a temporary SQLite database,
each from a check report of P problems (default 10,000: a 10,000-class dataset
warns once per class with no training example, and names 10,000 classes), then
times ``GET /api/v1/jobs?limit=N`` (all N jobs on one page) through the real app,
R times (default 5), and prints the median and the bytes stored per job. It does
the same with 10-problem reports, as the baseline: the two times should be close.

Run it in a checkout before issue 12 (which stores the whole report and parses
all of it per row) and after, to compare:

    python bench/listing.py [--jobs 200] [--problems 10000] [--repeat 5] [--markdown]

Prints figures (``--markdown``: one table with the command and date); asserts nothing
about time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from autodl.service import auth  # noqa: E402
from autodl.service import jobs as J  # noqa: E402
from autodl.service.app import create_app  # noqa: E402
from autodl.service.models import Job  # noqa: E402
from autodl.settings import Settings  # noqa: E402


class _NoDispatch:
    def start(self):
        pass

    def stop(self):
        pass

    def notify(self, job_id):
        pass


def report(problems: int) -> dict:
    return {
        "name": "manyclasses",
        "domain": "image",
        "output_dim": problems,
        "label_names": [f"class {i}" for i in range(problems)],
        "shape": [1, 32, 32, 3],
        "format": "COMPRESSED",
        "train": {"count": 50_000},
        "test": {"count": 10_000},
        "unlabelled": None,
        "problems": [
            {
                "file": "train/",
                "record": None,
                "field": "label_index",
                "message": f"class 'class {i}' (column {i}) has no training example.",
                "expected": "at least one train record per class",
                "severity": "warning",
            }
            for i in range(problems)
        ],
    }


def measure(n_jobs: int, n_problems: int, repeat: int) -> tuple[float, int]:
    """(median seconds of one listing, bytes of dataset_info per job)."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key="bench-" + "k" * 40, env="development")
        app = create_app(settings, dispatcher=_NoDispatch())
        with TestClient(app) as client:
            with app.state.service.db.session() as s:
                user = auth.create_user(s, "bench", "password123")
                _, token = auth.create_token(s, user, "bench")
                rep = report(n_problems)
                for _ in range(n_jobs):
                    job = J.create_job(
                        s, user, name="job", time_budget=60, report=rep, stored_bytes=0
                    )
                size = len(s.get(Job, job.id).dataset_info)
            headers = {"Authorization": f"Bearer {token}"}
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                r = client.get(f"/api/v1/jobs?limit={n_jobs}", headers=headers)
                times.append(time.perf_counter() - start)
                assert r.status_code == 200 and len(r.json()["jobs"]) == n_jobs, r.text[:200]
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--problems", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = parser.parse_args()
    from bench._markdown import Rows

    setup = f"listing {args.jobs} jobs on one page, median of {args.repeat}"
    report = Rows(args.markdown, ["check reports", "ms per listing", "bytes stored per job"])
    if not args.markdown:
        print(setup)
    results = {}
    for problems in (10, args.problems):
        seconds, size = measure(args.jobs, problems, args.repeat)
        results[problems] = seconds
        report.add(
            [f"{problems:,} problems", f"{seconds * 1000:.1f}", f"{size:,}"],
            f"  {problems:>7,}-problem reports  {seconds * 1000:9.1f} ms per listing"
            f"  {size:>10,} bytes stored per job",
        )
    ratio = f"ratio {results[args.problems] / results[10]:.2f} (large reports / small ones)"
    if not args.markdown:
        print(f"  {ratio}")
    report.end(f"{setup}; {ratio}.")


if __name__ == "__main__":
    main()

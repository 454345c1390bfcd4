"""Service under load: 20 users polling their jobs' status (page and API latency), and the
server's memory during a 2 GB streamed upload.

Starts `autodl serve` on a free 127.0.0.1 port with a temporary data directory and a
cheap test engine (jobs keep running and queueing during the load), then:

1. 20 users (threads, one HTTP client and account each) submit a tiny dataset and poll
   for ``--seconds``: ``GET /jobs/{id}`` (the job page, cookie session) and
   ``GET /api/v1/jobs/{id}`` (Bearer token), one request after the other, as fast as
   the server answers. Prints p50/p95/max latency and throughput for each.
2. One 2 GB upload, generated on the fly (never stored client-side), while the server's
   RSS (and its children's) is sampled; the server streams it to disk, finds it is not a
   zip and deletes it. Prints the RSS before and its peak during the upload.

    python bench/service_load.py [--users 20] [--seconds 20] [--upload-gb 2] [--markdown]

Prints figures (``--markdown``: the latencies as one table, with the command and date);
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def start_server(data: Path, port: int, upload_bytes: int) -> subprocess.Popen:
    env = {
        **__import__("os").environ,
        "AUTODL_DATA_DIR": str(data),
        "AUTODL_PORT": str(port),
        "AUTODL_ENGINE": "tests.service.engines:steady",
        "AUTODL_TIME_BUDGET": "3",
        "AUTODL_JOBS_PER_DAY": "1000",
        "AUTODL_MAX_UPLOAD_BYTES": str(upload_bytes + 10**6),
        "AUTODL_STORAGE_QUOTA_BYTES": str(max(10 * upload_bytes, 10**9)),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "autodl", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def sign_up(client: httpx.Client, name: str) -> str:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signup").text).group(1)
    client.post(
        "/signup",
        data={
            "name": name,
            "password": "password123",
            "password2": "password123",
            "csrf_token": csrf,
        },
    )
    page = client.get("/account").text
    page = client.post(
        "/account/tokens",
        data={
            "name": "bench",
            "csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
        },
        follow_redirects=True,  # the page redirects (POST-redirect-GET) to show the new token
    ).text
    return re.search(r'id="new-token">(adl_[^<]+)<', page).group(1)


def load(base: str, users: int, seconds: float, dataset_zip: bytes, report) -> str:
    page_times: list[float] = []
    api_times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    ready = threading.Barrier(users + 1)

    def user(i: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as c:
            token = sign_up(c, f"user{i:02d}")
            auth = {"Authorization": f"Bearer {token}"}
            job = c.post(
                "/api/v1/jobs",
                headers=auth,
                files={"file": ("d.zip", dataset_zip)},
                data={"time_budget": "3"},
            )
            if job.status_code != 201:
                raise SystemExit(f"upload refused: {job.status_code} {job.text}")
            job = job.json()
            ready.wait()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for url, sink, headers in (
                    (f"/jobs/{job['id']}", page_times, None),
                    (f"/api/v1/jobs/{job['id']}", api_times, auth),
                ):
                    t = time.perf_counter()
                    r = c.get(url, headers=headers)
                    dt = time.perf_counter() - t
                    with lock:
                        (
                            sink.append(dt)
                            if r.status_code == 200
                            else errors.__setitem__(0, errors[0] + 1)
                        )

    threads = [threading.Thread(target=user, args=(i,)) for i in range(users)]
    for t in threads:
        t.start()
    ready.wait()
    start = time.monotonic()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    summary = f"{users} users polling job status for {wall:.1f} s (jobs running and queued meanwhile), {errors[0]} errors"
    if not report.markdown:
        print(summary)
    for name, times in (
        ("page  GET /jobs/{id}       ", page_times),
        ("API   GET /api/v1/jobs/{id}", api_times),
    ):
        ms = [t * 1000 for t in times]
        figures = [pct(ms, 50), pct(ms, 95), max(ms), statistics.mean(ms)]
        report.add(
            [f"`{name.split(maxsplit=1)[1].strip()}`", len(ms), f"{len(ms) / wall:.1f}"]
            + [f"{v:.1f}" for v in figures],
            f"  {name}: n={len(ms):5d}  {len(ms) / wall:6.1f} req/s  p50 {pct(ms, 50):6.1f} ms  p95 {pct(ms, 95):6.1f} ms  max {max(ms):6.1f} ms  mean {statistics.mean(ms):6.1f} ms",
        )
    return summary


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def big_upload(base: str, server: psutil.Process, size: int) -> list[str]:
    with httpx.Client(base_url=base, timeout=600) as c:
        token = sign_up(c, "uploader")
        samples: list[int] = []
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                samples.append(server.memory_info().rss)
                stop.wait(0.1)

        before = server.memory_info().rss
        chunk = bytes(range(256)) * 4096  # 1 MiB, made once; the body is generated as it is sent

        def body():
            sent = 0
            while sent < size:
                n = min(len(chunk), size - sent)
                sent += n
                yield chunk[:n]

        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.perf_counter()
        r = c.post(
            "/api/v1/jobs",
            content=body(),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/zip",
                "Content-Length": str(size),
            },
        )
        dt = time.perf_counter() - t
        stop.set()
        sampler.join()
        mb = 1024 * 1024
        return [
            f"{size / 1e9:.1f} GB streamed upload: {dt:.1f} s ({size / dt / mb:.0f} MiB/s), answer {r.status_code} ({r.json()['detail']})",
            f"  server RSS: before {before / mb:.0f} MiB, peak during the upload {max(samples) / mb:.0f} MiB, after {server.memory_info().rss / mb:.0f} MiB ({len(samples)} samples)",
        ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--upload-gb", type=float, default=2)
    ap.add_argument("--markdown", action="store_true", help="one table, command and date")
    args = ap.parse_args()
    from autodl.formats.archive import zip_folder
    from autodl.formats.samples import make_tabular
    from bench._markdown import Rows

    upload_bytes = int(args.upload_gb * 1e9)
    with tempfile.TemporaryDirectory(prefix="autodl-bench-") as tmp:
        tmp = Path(tmp)
        dataset = zip_folder(
            make_tabular(tmp / "src", n_train=40, n_test=20), tmp / "d.zip"
        ).read_bytes()
        port = free_port()
        proc = start_server(tmp / "data", port, upload_bytes)
        base = f"http://127.0.0.1:{port}"
        try:
            server = psutil.Process(proc.pid)
            cols = ["request", "n", "requests/s", "p50 ms", "p95 ms", "max ms", "mean ms"]
            report = Rows(args.markdown, cols)
            notes = [f"server pid {proc.pid} on {base}; {psutil.cpu_count()} CPUs"]
            if not args.markdown:
                print(notes[0])
            notes.append(load(base, args.users, args.seconds, dataset, report))
            notes.append(f"  server tree RSS after the load: {tree_rss(server) / 2**20:.0f} MiB")
            if not args.markdown:
                print(notes[-1])
            if upload_bytes:
                lines = big_upload(base, server, upload_bytes)
                notes += lines
                if not args.markdown:
                    print("\n".join(lines))
            report.end(*(n.strip() + "  " for n in notes[1:]))
        finally:
            proc.terminate()
            proc.wait(15)


if __name__ == "__main__":
    main()

"""The service under attack: hostile uploads and requests while a real job runs.

Starts ``autodl serve`` on a free 127.0.0.1 port with a temporary data directory and
the real engine, submits scikit-learn's digits as a victim's job, and while it runs
sends every hostile upload and request of issue 12, one after the other:

    classes-2e9        metadata.textproto declaring output_dim 2,000,000,000
    nested-bzip2       an upload holding only x.data.zip, whose bzip2 member is a
                       TFRecord whose header claims 2^40 bytes (1 GB of zeros inside)
    png-9000x40        forty 9000 x 9000 PNG frames (a few hundred KB in all)
    png-inflate-bomb   a 64 x 64 PNG whose IDAT inflates to 1 GB (only the rows its
                       header announces are inflated: a valid frame, accepted)
    zip-bomb           a zip expanding 1000 times
    zip-slip           a member named ../../evil
    dotdata-traversal  a dataset folder named ".data" uploaded with the form name
                       ../../../<victim job>/results/unlabelled/digits
    forged-cookie      an admin session cookie signed with the old public default key,
                       sent to the administrators' API
    many-fields        a multipart form of 100,000 fields
    long-field         a 10 MB form field
    chunked-login      a 200 MB chunked body sent to /login (no Content-Length)
    login-file-part    a 100 MB file part sent to /login
    admin-storage-inf  storage_gb=inf in the admin quota form
    login-flood        60 wrong passwords for the victim's account

For each it prints the status code, the time to answer, the server process's memory
growth (peak RSS while the attack ran, minus its RSS before) and whether the victim's
job was still running. At the end the victim's job must finish; its final NAUC and
prediction count are printed beside those of the same job run alone first (the
baseline, skipped with ``--no-baseline``).

    python bench/abuse.py [--budget 60] [--no-baseline] [--markdown]

Prints figures as it goes; ``--markdown`` adds, at the end, one table of the attacks
with the command and date (docs/benchmarks.md). Asserts nothing about time. Traffic goes to 127.0.0.1 only, and every
request loop is bounded.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.service_load import free_port  # noqa: E402

PASSWORD = "password123"
MB = 1024 * 1024


# ------------------------------------------------------------------ server


def start_server(data: Path, port: int, budget: float) -> subprocess.Popen:
    env = {
        **os.environ,
        "AUTODL_DATA_DIR": str(data),
        "AUTODL_PORT": str(port),
        "AUTODL_TIME_BUDGET": str(budget),
        "AUTODL_JOBS_PER_DAY": "1000",
        "AUTODL_COMPUTE_SECONDS_PER_DAY": "1000000",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "autodl", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(data.parent / "server.log", "wb"),  # noqa: SIM115 - lives with the server
    )
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start; see {data.parent / 'server.log'}")


def cli(data: Path, *args: str, stdin: str = "") -> str:
    env = {**os.environ, "AUTODL_DATA_DIR": str(data), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "autodl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    return out.stdout.strip()


def make_user(data: Path, name: str, admin: bool = False) -> str:
    """A user made with the CLI; returns an API token."""
    cli(data, "user", "create", name, *(["--admin"] if admin else []), stdin=PASSWORD + "\n")
    return cli(data, "token", "create", name).split()[-1]


class MemoryWatch:
    """Samples a process's RSS every 20 ms; ``peak`` since the last ``reset``."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.peak = self.base = self.proc.memory_info().rss
        self._stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def reset(self) -> None:
        self.peak = self.base = self.proc.memory_info().rss

    def stop(self) -> None:
        self._stop.set()


# ---------------------------------------------------------------- payloads


def zip_bytes(files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def dataset_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def tiny_tabular(work: Path, name: str = "tinytabular") -> Path:
    from autodl.formats.samples import make_tabular

    return make_tabular(work / f"tab-{name}", n_train=20, n_test=10, name=name)


def classes_2e9(work: Path) -> bytes:
    root = tiny_tabular(work)
    files = dataset_files(root)
    for key in list(files):
        if key.endswith("metadata.textproto"):
            text = files[key].decode().replace("output_dim: 3", "output_dim: 2000000000")
            files[key] = (text + 'label_to_index_map {\n  key: "a"\n  value: 0\n}\n').encode()
    return zip_bytes(files)


def tfrecord_header(length: int) -> bytes:
    import google_crc32c

    def masked(data: bytes) -> int:
        crc = google_crc32c.value(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    head = struct.pack("<Q", length)
    return head + struct.pack("<I", masked(head))


def nested_bzip2(work: Path) -> bytes:
    root = tiny_tabular(work)
    files = dataset_files(root)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_BZIP2) as zf:
        for key, content in files.items():
            if key.startswith("tinytabular.data/") and not key.endswith(".tfrecord"):
                zf.writestr(key, content)
        with zf.open("tinytabular.data/train/sample-tinytabular-train.tfrecord", "w") as out:
            out.write(tfrecord_header(1 << 40))
            zeros = bytes(8 * MB)
            for _ in range(128):  # 1 GB of zeros: a few hundred KB once compressed
                out.write(zeros)
    outer = {"x.data.zip": inner.getvalue(), "x.solution": files["tinytabular.solution"]}
    return zip_bytes(outer, zipfile.ZIP_STORED)


def png_bytes(width: int, height: int, idat_raw: bytes | None = None) -> bytes:
    """A gray 8-bit PNG; ``idat_raw`` replaces the (all-zero) scanlines it claims."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    if idat_raw is None:
        comp = zlib.compressobj(9)
        row = bytes(width + 1)
        parts = [comp.compress(row) for _ in range(height)]
        idat = b"".join(parts) + comp.flush()
    else:
        idat = idat_raw
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def image_dataset(work: Path, frames: list[bytes], side: int) -> bytes:
    from autodl.formats.spec import DatasetSpec
    from autodl.formats.writer import DatasetWriter

    spec = DatasetSpec("bigframes", (1, side, side, 1), 2, "COMPRESSED", ["a", "b"])
    n = len(frames)
    labels = [[i % 2] for i in range(n)]
    half = n // 2
    writer = DatasetWriter(work / f"img-{side}-{n}", spec)
    root = writer.write(
        train=([[f] for f in frames[half:]], labels[half:]),
        test=([[f] for f in frames[:half]], labels[:half]),
    )
    return zip_bytes(dataset_files(root), zipfile.ZIP_STORED)


def png_9000x40(work: Path) -> bytes:
    frame = png_bytes(9000, 9000)
    return image_dataset(work, [frame] * 40, 9000)


def png_inflate_bomb(work: Path) -> bytes:
    comp = zlib.compressobj(9)
    zeros = bytes(8 * MB)
    idat = b"".join(comp.compress(zeros) for _ in range(128)) + comp.flush()  # 1 GB inflated
    return image_dataset(work, [png_bytes(64, 64, idat)] * 2, 64)


def zip_bomb(work: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("bomb.data/train/sample-bomb.tfrecord", "w") as out:
            zeros = bytes(8 * MB)
            for _ in range(64):
                out.write(zeros)
    return buf.getvalue()


def zip_slip(work: Path) -> bytes:
    return zip_bytes({"../../evil": b"x", "metadata": b""})


def dotdata(work: Path) -> bytes:
    root = tiny_tabular(work, "dotdata")
    files = {}
    for key, content in dataset_files(root).items():
        key = key.replace("dotdata.data/", ".data/").replace("dotdata.solution", ".solution")
        files[key] = content
    return zip_bytes(files)


def forged_cookie() -> str:
    from itsdangerous import URLSafeTimedSerializer

    signer = URLSafeTimedSerializer("change-me-development-only", salt="autodl-session")
    return signer.dumps({"u": 1, "v": 0, "s": "forged"})


# ----------------------------------------------------------------- attacks


class Attacks:
    def __init__(self, base: str, watch: MemoryWatch, victim_job: int, tokens: dict[str, str]):
        self.base, self.watch, self.victim_job, self.tokens = base, watch, victim_job, tokens
        self.rows: list[tuple] = []

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def victim_state(self) -> str:
        r = httpx.get(
            f"{self.base}/api/v1/jobs/{self.victim_job}", headers=self.auth("victim"), timeout=30
        )
        return r.json().get("state", "?")

    def run(self, name: str, send: Callable[[httpx.Client], httpx.Response], note="") -> None:
        self.watch.reset()
        start = time.monotonic()
        try:
            with httpx.Client(base_url=self.base, timeout=120) as client:
                response = send(client)
            status = str(response.status_code)
            detail = response.headers.get("content-type", "")
            if "json" in detail:
                detail = str(response.json().get("detail", ""))[:90]
            else:
                detail = note
        except httpx.HTTPError as e:
            status, detail = "closed", f"{type(e).__name__}"
        took = time.monotonic() - start
        time.sleep(0.1)  # let the sampler see the tail
        growth = (self.watch.peak - self.watch.base) / MB
        self.rows.append((name, status, took, growth, self.victim_state(), detail))
        print(f"  {name:18s} {status:>6s} {took:7.2f} s {growth:8.1f} MB  {detail}", flush=True)

    def upload(self, who: str, payload: bytes, **fields: str):
        return lambda c: c.post(
            "/api/v1/jobs",
            headers=self.auth(who),
            files={"file": ("d.zip", payload)},
            data={"time_budget": "10", **fields},
        )


def chunked(total: int, piece: int = MB):
    sent = 0
    block = b"a" * piece
    while sent < total:
        sent += piece
        yield block


def run_attacks(a: Attacks, work: Path, admin_user_id: int) -> None:
    print(f"  {'attack':18s} {'status':>6s} {'answer':>9s} {'server RSS':>11s}  detail")
    a.run("classes-2e9", a.upload("attacker", classes_2e9(work)))
    a.run("nested-bzip2", a.upload("attacker", nested_bzip2(work)))
    a.run("png-9000x40", a.upload("attacker", png_9000x40(work)))
    a.run("png-inflate-bomb", a.upload("attacker", png_inflate_bomb(work)))
    a.run("zip-bomb", a.upload("attacker", zip_bomb(work)))
    a.run("zip-slip", a.upload("attacker", zip_slip(work)))
    traversal = f"../../../{a.victim_job}/results/unlabelled/digits"
    a.run("dotdata-traversal", a.upload("attacker", dotdata(work), name=traversal))
    a.run(
        "forged-cookie",
        lambda c: c.get("/api/v1/admin/users", cookies={"autodl_session": forged_cookie()}),
        note="GET /api/v1/admin/users with a forged admin cookie",
    )
    boundary = "abusebench"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\nx\r\n'
    many = (part * 100_000 + f"--{boundary}--\r\n").encode()  # encoded once, before the clock
    a.run(
        "many-fields",
        lambda c: c.post(
            "/api/v1/jobs",
            headers={
                **a.auth("attacker"),
                "content-type": f"multipart/form-data; boundary={boundary}",
            },
            content=many,
        ),
    )
    a.run(
        "long-field",
        lambda c: c.post(
            "/api/v1/jobs",
            headers=a.auth("attacker"),
            files={"file": ("d.zip", b"PK")},
            data={"name": "x" * (10 * MB)},
        ),
    )
    a.run(
        "chunked-login",
        lambda c: c.post(
            "/login",
            content=chunked(200 * MB),
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
    )
    a.run(
        "login-file-part",
        lambda c: c.post("/login", files={"f": ("f.bin", bytes(100 * MB))}, data={"name": "a"}),
    )
    a.run(
        "admin-storage-inf",
        lambda c: c.post(
            f"/admin/users/{admin_user_id}/quota",
            headers=a.auth("admin"),
            data={"jobs_per_day": "5", "storage_gb": "inf"},
        ),
    )

    def flood(c: httpx.Client) -> httpx.Response:
        page = c.get("/login").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        last = None
        for _ in range(60):
            last = c.post(
                "/login", data={"name": "victim", "password": "wrong-pw", "csrf_token": csrf}
            )
            if last.status_code == 429:
                break
        return last

    a.run("login-flood", flood, note="stopped at the first 429 (at most 60 tries)")


def wait_for(base: str, token: str, job_id: int, timeout: float) -> dict:
    end = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    while time.monotonic() < end:
        job = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=30).json()
        if job.get("state") in ("finished", "failed", "cancelled"):
            return job
        time.sleep(1)
    return job


def submit(base: str, token: str, payload: bytes, budget: float) -> int:
    r = httpx.post(
        f"{base}/api/v1/jobs",
        headers={"Authorization": f"Bearer {token}"},
        files={"file": ("digits.zip", payload)},
        data={"time_budget": str(budget)},
        timeout=300,
    )
    if r.status_code != 201:
        raise SystemExit(f"the victim's upload was refused: {r.status_code} {r.text}")
    return r.json()["id"]


def summary(job: dict) -> str:
    return (
        f"state {job.get('state')}, {job.get('n_predictions')} predictions, "
        f"final NAUC {job.get('final_nauc')}, ALC {job.get('alc')}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", type=float, default=60.0, help="the victim job's time budget")
    ap.add_argument("--no-baseline", action="store_true", help="skip the job run alone")
    ap.add_argument("--markdown", action="store_true", help="end with a table, command and date")
    args = ap.parse_args()

    from autodl.formats.samples import make_digits

    with tempfile.TemporaryDirectory(prefix="autodl-abuse-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        digits = make_digits(work / "samples")
        digits_zip = zip_bytes(dataset_files(digits), zipfile.ZIP_STORED)
        port = free_port()
        server = start_server(data, port, args.budget)
        base = f"http://127.0.0.1:{port}"
        try:
            tokens = {
                "victim": make_user(data, "victim"),
                "attacker": make_user(data, "attacker"),
                "admin": make_user(data, "admin", admin=True),
            }
            admin_id = httpx.get(
                f"{base}/api/v1/me", headers={"Authorization": f"Bearer {tokens['admin']}"}
            ).json()["id"]
            alone = None
            if not args.no_baseline:
                print(f"baseline: digits alone, budget {args.budget:g} s", flush=True)
                job = submit(base, tokens["victim"], digits_zip, args.budget)
                alone = wait_for(base, tokens["victim"], job, args.budget + 400)
                print(f"  {summary(alone)}")
            job = submit(base, tokens["victim"], digits_zip, args.budget)
            while wait_state(base, tokens["victim"], job) == "queued":
                time.sleep(0.5)
            watch = MemoryWatch(server.pid)
            print(
                f"under attack: victim job {job} running; server RSS "
                f"{watch.base / MB:.0f} MB before",
                flush=True,
            )
            attacks = Attacks(base, watch, job, tokens)
            run_attacks(attacks, work, admin_id)
            watch.stop()
            done = wait_for(base, tokens["victim"], job, args.budget + 400)
            print(f"victim job under attack: {summary(done)}")
            if alone is not None:
                print(f"victim job alone:        {summary(alone)}")
            rows = attacks.rows
            refused = sum(1 for r in rows if r[1].startswith("4"))
            notes = [
                f"{refused}/{len(rows)} attacks answered 4xx; slowest answer "
                f"{max(r[2] for r in rows):.2f} s; largest server RSS growth "
                f"{max(r[3] for r in rows):.1f} MB; victim job "
                f"{'running' if all(r[4] == 'running' for r in rows) else 'not running'} "
                f"through every attack"
            ]
            left = sorted(p.name for p in (data / "tmp").iterdir())
            notes.append(f"left in the data directory's tmp/: {left or 'nothing'}")
            print("\n".join(notes))
            if args.markdown:
                _markdown(rows, notes, done, alone)
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()


def _markdown(rows, notes: list[str], done: dict, alone: dict | None) -> None:
    from bench._markdown import provenance, table

    cols = ["attack", "answer", "time", "server RSS growth", "victim job", "detail"]
    cells = [
        [name, status, f"{took:.2f} s", f"{growth:.1f} MB", state, detail.replace("|", "/")]
        for name, status, took, growth, state, detail in rows
    ]
    print()
    print(table(cols, cells))
    print()
    print(f"Victim job under attack: {summary(done)}.")
    if alone is not None:
        print(f"Victim job alone: {summary(alone)}.")
    for note in notes:
        print(note[0].upper() + note[1:] + ".")
    print(provenance())


def wait_state(base: str, token: str, job_id: int) -> str:
    r = httpx.get(
        f"{base}/api/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return r.json().get("state", "?")


if __name__ == "__main__":
    main()

"""A small client of the service's API, for `autodl submit` (httpx, streamed upload)."""

from __future__ import annotations

import io
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

import click
import httpx

from autodl.errors import AutoDLError

TERMINAL = ("finished", "failed", "cancelled")


class _Progress(io.RawIOBase):
    """A file wrapper that reports how much of it has been read (sent)."""

    def __init__(self, path: Path):
        self.f = open(path, "rb")  # noqa: SIM115 - closed with the wrapper
        self.total = path.stat().st_size
        self.sent = 0
        self.last = 0.0
        self.name = path.name

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sent += len(data)
        now = time.monotonic()
        if data and (now - self.last > 0.2 or self.sent == self.total):
            self.last = now
            pct = 100 * self.sent / max(1, self.total)
            click.echo(
                f"\rUploading {self.name}: {pct:5.1f}% of {_size(self.total)}",
                nl=False,
                err=True,
            )
        return data

    def close(self) -> None:
        self.f.close()
        super().close()


def _size(n: int) -> str:
    """1.5 MB, 12.0 KB, 310 bytes: never "0.0 MB" for a small archive."""
    if n >= 1e6:
        return f"{n / 1e6:.1f} MB"
    return f"{n / 1e3:.1f} KB" if n >= 1e3 else f"{n} bytes"


class Client:
    def __init__(self, server: str, token: str, timeout: float = 60.0):
        self.base = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.base,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, write=None),
        )

    def _check(self, r: httpx.Response) -> httpx.Response:
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"detail": r.text[:300] or r.reason_phrase}
            message = body.get("detail") or f"HTTP {r.status_code}"
            from autodl.formats.check import problem_line  # lazy: a refusal only

            for p in (body.get("problems") or [])[:50]:
                message += f"\n  {problem_line(p)}"
            refused = AutoDLError(
                f"the server refused ({r.status_code}): {message}", body.get("hint")
            )
            # The answer's stable name (e.g. "missing_label", with the table's "columns"):
            # the command turns it into its own words (--label) instead of the API's.
            refused.code, refused.columns = body.get("code"), body.get("columns")
            raise refused
        return r

    def request(self, method: str, url: str, **kw) -> httpx.Response:
        try:
            return self._check(self.http.request(method, url, **kw))
        except httpx.TransportError as e:
            raise AutoDLError(
                f"cannot reach {self.base}: {e}", "Check --server and that the service is running."
            ) from None

    def check_token(self) -> None:
        """One small request: a refused token is found before anything is sent or converted."""
        self.request("GET", "/api/v1/me")

    def upload(
        self,
        archive: Path,
        *,
        name: str | None,
        time_budget: float | None,
        label: str | None = None,
    ) -> dict:
        """POST the zip to /api/v1/jobs; ``label``: a raw table's label column (the server
        converts a zip of raw data)."""
        self.check_token()
        data = {}
        if name:
            data["name"] = name
        if time_budget is not None:
            data["time_budget"] = str(time_budget)
        if label:
            data["label"] = label
        wrapper = _Progress(archive)
        try:
            r = self.request(
                "POST",
                "/api/v1/jobs",
                data=data,
                files={"file": (archive.name, wrapper, "application/zip")},
            )
        finally:
            wrapper.close()
            click.echo("", err=True)
        return r.json()

    def check_job(self, job_id: int) -> dict:
        """GET /api/v1/jobs/JOB: a wrong id, or another user's job, is the server's 404
        at once, before anything is zipped or sent (as a refused token is)."""
        return self.request("GET", f"/api/v1/jobs/{job_id}").json()

    def upload_prediction(self, job_id: int, archive: Path, *, name: str | None = None) -> dict:
        """POST new data (a zip) to /api/v1/jobs/JOB/predictions: the prediction job."""
        self.check_job(job_id)
        wrapper = _Progress(archive)
        try:
            r = self.request(
                "POST",
                f"/api/v1/jobs/{job_id}/predictions",
                data={"name": name} if name else {},
                files={"file": (archive.name, wrapper, "application/zip")},
            )
        finally:
            wrapper.close()
            click.echo("", err=True)
        return r.json()

    def follow_prediction(self, job_id: int, prediction_id: int, poll: float = 1.0) -> dict:
        """Wait for a prediction job to end, saying each change of state; its final JSON."""
        shown = None
        while True:
            p = self.request("GET", f"/api/v1/jobs/{job_id}/predictions/{prediction_id}").json()
            if p["state"] != shown:
                shown = p["state"]
                click.echo(
                    f"[{time.strftime('%H:%M:%S')}] prediction {prediction_id}: {shown}", err=True
                )
            if p["state"] in TERMINAL:
                return p
            time.sleep(poll)

    def download_file(self, url: str, output: Path) -> None:
        """GET ``url`` into ``output``, streamed (written under a temporary name first)."""
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = output.with_name(f".{output.name}.part")
        try:
            with self.http.stream("GET", url) as r:
                if r.status_code >= 400:
                    self._check(httpx.Response(r.status_code, content=r.read()))
                with open(tmp, "wb") as f:
                    for chunk in r.iter_bytes(1 << 20):
                        f.write(chunk)
            tmp.replace(output)
        finally:
            tmp.unlink(missing_ok=True)

    def follow(self, job_id: int, poll: float = 1.0) -> dict:
        """Print the job's progress until it ends; return its final JSON."""
        shown_state, shown_points = None, 0
        while True:
            job = self.request("GET", f"/api/v1/jobs/{job_id}").json()
            if job["state"] != shown_state:
                shown_state = job["state"]
                extra = (
                    f" (position {job['queue_position']} in the queue)"
                    if job["state"] == "queued"
                    else ""
                )
                click.echo(f"[{time.strftime('%H:%M:%S')}] {job['state']}{extra}", err=True)
            if job["state"] in ("running", "scoring", "finished"):
                curve = self.request("GET", f"/api/v1/jobs/{job_id}/curve").json()
                for p in curve["points"][shown_points:]:
                    click.echo(
                        f"  prediction {p['index']} at {p['t']:7.1f} s: NAUC {p['nauc']:.4f}"
                        + (f" ({p['learner']})" if p.get("learner") else ""),
                        err=True,
                    )
                shown_points = len(curve["points"])
            if job["state"] in TERMINAL:
                return job
            sys.stderr.flush()
            time.sleep(poll)

    def download_results(self, job_id: int, output: Path) -> None:
        """results.zip, extracted into ``output`` (names checked: nothing lands outside it)."""
        output.mkdir(parents=True, exist_ok=True)
        target = output.resolve()
        tmp = output / ".results.zip.part"
        with self.http.stream("GET", f"/api/v1/jobs/{job_id}/download/results.zip") as r:
            self._check(r) if r.status_code < 400 else self._check(
                httpx.Response(r.status_code, content=r.read())
            )
            with open(tmp, "wb") as f:
                for chunk in r.iter_bytes(1 << 20):
                    f.write(chunk)
        try:
            with zipfile.ZipFile(tmp) as zf:
                for info in zf.infolist():
                    rel = PurePosixPath(info.filename)
                    dest = (target / rel).resolve()
                    if rel.is_absolute() or ".." in rel.parts or target not in dest.parents:
                        raise AutoDLError(
                            f"the results archive holds an unsafe name: {info.filename!r}"
                        )
                    if info.is_dir():
                        dest.mkdir(parents=True, exist_ok=True)
                        continue
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as out:
                        while chunk := src.read(1 << 20):
                            out.write(chunk)
        finally:
            tmp.unlink(missing_ok=True)

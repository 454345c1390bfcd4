"""Untrusted uploads: streamed to disk under a size cap, archive checked, extracted, validated.

Nothing of an upload is held in memory: the request body goes to a file chunk by
chunk (a multipart form is parsed as it streams). A zip is checked *before*
anything is extracted — entry count, absolute or ``..`` paths, links, encrypted
entries, total size once extracted, compression ratio — and extraction counts
the bytes it really writes, so a zip whose headers lie is stopped too. The
dataset is then validated with the same checks as ``autodl check``; a refused
upload leaves nothing behind.
"""

from __future__ import annotations

import re
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from autodl.formats.check import check_dataset
from autodl.settings import Settings

CHUNK = 1024 * 1024
MAX_FIELD_BYTES = 64 * 1024
MULTIPART_SLACK = 64 * 1024  # headers and fields around the file in a form
# Operating-system litter that zip tools add; skipped, not refused.
JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db)(/|$)")


class UploadRefused(Exception):
    """The upload cannot be accepted. ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, hint: str | None = None, problems=None):
        super().__init__(message)
        self.message, self.status, self.hint = message, status, hint
        self.problems: list[dict] = problems or []


@dataclass
class Received:
    path: Path | None
    filename: str | None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


def _too_large(limit: int) -> UploadRefused:
    return UploadRefused(
        f"The upload is larger than the {human_bytes(limit)} allowed.",
        413,
        "Remove what the dataset does not need, or ask the operator for a larger limit.",
    )


async def receive(request: Request, dest: Path, limit: int) -> Received:
    """Stream the request body into ``dest``: a multipart form's file part, or a raw zip body.

    Fields of a form (or the query string, for a raw body) come back in ``fields``.
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise _too_large(limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadRefused("The form has no multipart boundary.")
        return await _receive_multipart(request, dest, limit, boundary)
    received = Received(dest, None, fields=dict(request.query_params))
    with open(dest, "wb") as out:
        async for chunk in request.stream():
            received.size += len(chunk)
            if received.size > limit:
                raise _too_large(limit)
            out.write(chunk)
    return received


async def _receive_multipart(request: Request, dest: Path, limit: int, boundary: bytes) -> Received:
    received = Received(None, None, fields=dict(request.query_params))
    state: dict = {"headers": {}, "name": None, "file": None, "buf": bytearray(), "hname": b""}

    def on_header_field(data, start, end):
        state["hname"] += data[start:end]

    def on_header_value(data, start, end):
        key = state["hname"].decode("latin-1").lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end():
        state["hname"] = b""

    def on_headers_finished():
        _, opts = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        if filename is not None and received.path is None:
            received.path = dest
            received.filename = PurePosixPath(filename.decode("utf-8", "replace")).name
            state["file"] = open(dest, "wb")  # noqa: SIM115 - closed in on_part_end

    def on_part_data(data, start, end):
        if state["file"] is not None:
            received.size += end - start
            if received.size > limit:
                raise _too_large(limit)
            state["file"].write(data[start:end])
        else:
            state["buf"] += data[start:end]
            if len(state["buf"]) > MAX_FIELD_BYTES:
                raise UploadRefused("A form field is too long.")

    def on_part_end():
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
        elif state["name"]:
            received.fields[state["name"]] = state["buf"].decode("utf-8", "replace")
        state.update(headers={}, name=None, buf=bytearray())

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    finally:
        if state["file"] is not None:
            state["file"].close()
    return received


# ---------------------------------------------------------------- archives


def _unsafe_name(name: str) -> str | None:
    if "\x00" in name:
        return "a name holding a NUL character"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' path that points outside the archive"
    return None


def check_archive(path: Path, settings: Settings) -> list[zipfile.ZipInfo]:
    """The members to extract; UploadRefused if the zip is unsafe or not a zip at all."""
    if not zipfile.is_zipfile(path):
        raise UploadRefused(
            "The upload is not a zip archive.",
            hint="Zip the dataset (metadata, <name>.data/ and <name>.solution) and upload the .zip file.",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise UploadRefused(f"The zip archive is damaged: {e}.") from None
    if len(infos) > settings.max_archive_entries:
        raise UploadRefused(
            f"The archive holds {len(infos)} entries; at most {settings.max_archive_entries} are allowed."
        )
    total = packed = 0
    for info in infos:
        problem = _unsafe_name(info.filename)
        if problem:
            raise UploadRefused(f"The archive was refused: {info.filename!r} is {problem}.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadRefused(
                f"The archive was refused: {info.filename!r} is a symbolic link; "
                "links are not accepted. Zip the files themselves."
            )
        if info.flag_bits & 0x1:
            raise UploadRefused(f"The archive was refused: {info.filename!r} is encrypted.")
        total += info.file_size
        packed += info.compress_size
    if total > settings.max_extracted_bytes:
        raise UploadRefused(
            f"The archive would take {human_bytes(total)} once extracted; "
            f"at most {human_bytes(settings.max_extracted_bytes)} are allowed.",
            413,
        )
    if total > 1024 * 1024 and total / max(packed, 1) > settings.max_compression_ratio:
        raise UploadRefused(
            f"The archive was refused: it expands {total / max(packed, 1):.0f} times "
            f"(at most {settings.max_compression_ratio:g} is allowed), as zip bombs do."
        )
    return [i for i in infos if not JUNK.search(i.filename)]


def extract(path: Path, members: list[zipfile.ZipInfo], target: Path, max_bytes: int) -> int:
    """Extract checked members under ``target``; counts real bytes. Returns the bytes written."""
    root = target.resolve()
    written = 0
    with zipfile.ZipFile(path) as zf:
        for info in members:
            dest = (root / info.filename).resolve()
            if dest != root and root not in dest.parents:
                raise UploadRefused(
                    f"The archive was refused: {info.filename!r} leaves the archive."
                )
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(dest, "xb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise UploadRefused(
                                f"The archive holds more than the {human_bytes(max_bytes)} allowed once extracted.",
                                413,
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                # zipfile reads no more than the header declares and checks the CRC:
                # a member whose header lies ends here.
                raise UploadRefused(f"The zip archive is damaged: {info.filename}: {e}.") from None
            except FileExistsError:
                raise UploadRefused(f"The archive holds {info.filename!r} twice.") from None
    return written


def validate(folder: Path) -> dict:
    """check_dataset on the extracted folder; UploadRefused (422) listing every error."""
    report = check_dataset(folder).to_json()
    # Messages name files relative to the archive, never the server's own paths.
    for p in report["problems"]:
        for key in ("file", "message", "expected"):
            if isinstance(p.get(key), str):
                p[key] = p[key].replace(f"{folder}/", "").replace(str(folder), "the archive")
    errors = [p for p in report["problems"] if p.get("severity", "error") == "error"]
    if errors:
        raise UploadRefused(
            f"The dataset is not valid: {len(errors)} problem(s) found. Nothing was queued "
            "and your quota is unchanged.",
            422,
            "Fix the problems listed (run `autodl check` on it locally) and upload it again.",
            problems=report["problems"],
        )
    return report


def prepare(
    upload: Path, workdir: Path, settings: Settings, max_bytes: int
) -> tuple[Path, dict, int]:
    """Check, extract and validate an uploaded zip: (extracted folder, check report, bytes)."""
    members = check_archive(upload, settings)
    folder = workdir / "dataset"
    folder.mkdir()
    try:
        size = extract(upload, members, folder, max_bytes)
        report = validate(folder)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder, report, size


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"

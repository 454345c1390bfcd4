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
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from autodl._units import human_bytes
from autodl.settings import Settings

CHUNK = 1024 * 1024
# An upload form holds a file and a few short fields (name, time_budget, label, csrf_token):
# everything around the file is bounded, whatever the total upload limit.
MAX_PARTS = 16
MAX_FIELDS_BYTES = 64 * 1024  # all the non-file fields together
MAX_PART_HEADER_BYTES = 8 * 1024
MULTIPART_SLACK = 256 * 1024  # >= fields + part headers + boundaries around the file
#: The one form field an upload's file is read from (any other is refused).
FILE_FIELD = "file"
#: The upload's field (form field or query parameter) naming a raw table's label column,
#: and the ``code`` of the 422 that asks for it.
LABEL_FIELD = "label"
MISSING_LABEL = "missing_label"
#: How a message names that field where the converter says ``--label``: on the upload
#: page, and to an API client.
PAGE_FIELD = "the label column field"
API_FIELD = f"the '{LABEL_FIELD}' field"
# Operating-system litter that zip tools add; skipped, not refused.
JUNK = re.compile(r"(^|/)(__MACOSX|\.DS_Store|Thumbs\.db)(/|$)")


class UploadRefused(Exception):
    """The upload cannot be accepted. ``status`` is the HTTP status to answer with.

    ``message`` and ``hint`` are worded for the upload page (its fields by their labels);
    ``api_message`` and ``api_hint``, when the page's words would mislead an API client,
    replace them in the API's answer, and ``extra`` adds fields for programs to it (``{"code": "missing_label", …}``:
    `autodl submit` turns that into its own option). ``unread``: the refusal came
    before the request body was read to its end; the answer then closes the connection
    (``Connection: close``) so that the server reads no more of it.
    """

    def __init__(
        self,
        message: str,
        status: int = 400,
        hint: str | None = None,
        problems=None,
        *,
        api_message: str | None = None,
        api_hint: str | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.message, self.status, self.hint = message, status, hint
        self.problems: list[dict] = problems or []
        self.api_message, self.api_hint, self.extra = api_message, api_hint, extra or {}
        self.unread = False


#: ``before_file(fields, final)``: see `receive`; raises UploadRefused to refuse.
BeforeFile = Callable[[dict[str, str], bool], None]


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


async def receive(
    request: Request, dest: Path, limit: int, before_file: BeforeFile | None = None
) -> Received:
    """Stream the request body into ``dest``: a multipart form's file part (the field
    ``FILE_FIELD``, "file"; a file under another name is refused), or a raw zip body.

    Fields of a form (or the query string, for a raw body) come back in ``fields``. A
    form holds at most ``MAX_PARTS`` parts, one file, ``MAX_FIELDS_BYTES`` of fields.
    When the caller signed in by cookie without a CSRF header (`deps.current_user`
    sets ``request.state.csrf_check``), the form's ``csrf_token`` field must come
    before the file and be right, or nothing is stored. ``before_file(fields, final)``
    may refuse the upload before a byte of the file is read: ``fields`` are those
    known then (the query string and the form's fields before the file), ``final``
    says no other field can follow (a raw body).
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise _too_large(limit)
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    if ctype == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise UploadRefused("The form has no multipart boundary.")
        return await _receive_multipart(request, dest, limit, boundary, before_file)
    if getattr(request.state, "csrf_check", None) is not None:
        raise _bad_token()
    received = Received(dest, None, fields=dict(request.query_params))
    if before_file is not None:
        before_file(received.fields, True)
    with open(dest, "wb") as out:
        async for chunk in request.stream():
            received.size += len(chunk)
            if received.size > limit:
                raise _too_large(limit)
            out.write(chunk)
    return received


def _bad_token() -> UploadRefused:
    return UploadRefused(
        "The form's security token is missing or out of date.",
        403,
        "Reload the page and try again.",
    )


async def _receive_multipart(
    request: Request, dest: Path, limit: int, boundary: bytes, before_file: BeforeFile | None
) -> Received:
    received = Received(None, None, fields=dict(request.query_params))
    csrf_check = getattr(request.state, "csrf_check", None)
    state: dict = {
        "headers": {},
        "hbytes": 0,
        "name": None,
        "file": None,
        "buf": bytearray(),
        "hname": b"",
        "parts": 0,
        "fbytes": 0,
        "csrf": None,  # the form's own field: a csrf_token in the URL is never taken
    }

    def header_bytes(n: int) -> None:
        state["hbytes"] += n
        if state["hbytes"] > MAX_PART_HEADER_BYTES:
            raise UploadRefused("A part of the form has headers longer than 8 KB.")

    def on_part_begin():
        state["parts"] += 1
        if state["parts"] > MAX_PARTS:
            raise UploadRefused(
                f"The form holds more than {MAX_PARTS} parts; send the file, name, time_budget and label only."
            )

    def on_header_field(data, start, end):
        header_bytes(end - start)
        state["hname"] += data[start:end]

    def on_header_value(data, start, end):
        header_bytes(end - start)
        key = state["hname"].decode("latin-1").lower()
        state["headers"][key] = state["headers"].get(key, b"") + data[start:end]

    def on_header_end():
        state["hname"] = b""

    def on_headers_finished():
        _, opts = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = opts.get(b"name", b"").decode("utf-8", "replace")
        filename = opts.get(b"filename")
        if filename is None:
            return
        if state["name"] != FILE_FIELD:  # refused before a byte of it is stored
            raise UploadRefused(
                f"The form sends its file in the field {state['name']!r}; the file is read "
                f"from the field '{FILE_FIELD}' only.",
                422,
                f"Send the zip as the form field '{FILE_FIELD}' (curl -F {FILE_FIELD}=@data.zip), "
                "or as the request body.",
            )
        if received.path is not None:
            raise UploadRefused("The form holds more than one file; send one zip.")
        if csrf_check is not None and not csrf_check(state["csrf"]):
            raise _bad_token()  # checked before any byte of the file is stored
        if before_file is not None:
            before_file(received.fields, False)
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
            state["fbytes"] += end - start
            if state["fbytes"] > MAX_FIELDS_BYTES:
                raise UploadRefused(
                    f"The form's fields hold more than {MAX_FIELDS_BYTES // 1024} KB; "
                    "send the file, name, time_budget and label only."
                )

    def on_part_end():
        if state["file"] is not None:
            state["file"].close()
            state["file"] = None
        elif state["name"]:
            received.fields[state["name"]] = state["buf"].decode("utf-8", "replace")
            if state["name"] == "csrf_token":
                state["csrf"] = received.fields["csrf_token"]
        state.update(headers={}, hbytes=0, name=None, buf=bytearray())

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
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
    except FormParserError as e:  # the parser's own limits and syntax errors: not a 500
        raise UploadRefused(
            f"The form is not valid multipart data: {e}.",
            hint="Send the dataset as the form field 'file', or the zip as the request body.",
        ) from None
    finally:
        if state["file"] is not None:
            state["file"].close()
    if csrf_check is not None and received.path is None:
        raise _bad_token()  # no file: the form's token was never checked
    return received


# ---------------------------------------------------------------- archives


NOT_ZIP_HINT = (
    "Zip the dataset (metadata, <name>.data/ and <name>.solution) and upload the .zip file."
)


_REZIP_HINT = (
    "Zip the files again without links or paths that leave the folder "
    "(zip -r name.zip name/, run from the folder that holds name/)."
)


def check_archive(
    path: Path, settings: Settings, not_zip_hint: str = NOT_ZIP_HINT
) -> list[zipfile.ZipInfo]:
    """The members to extract; UploadRefused if the zip is unsafe or not a zip at all
    (with ``not_zip_hint``: what this upload should be).

    The checks are the format layer's (`autodl.formats.archive.check_zip`), the same
    a ``.data.zip`` inside a dataset folder goes through, with this server's settings.
    """
    from autodl.formats.archive import ArchiveRefused, check_zip
    from autodl.formats.limits import Limits

    try:
        infos = check_zip(path, Limits.from_settings(settings))
    except ArchiveRefused as e:  # each reason has its hint (what to do), said to the user
        hint = not_zip_hint if e.reason == "not_zip" else e.hint
        raise UploadRefused(e.message, 413 if e.reason == "size" else 400, hint) from None
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
                    f"The archive was refused: {info.filename!r} leaves the archive.",
                    hint=_REZIP_HINT,
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
                                "Send less data at a time, or delete jobs you no longer "
                                "need to free space.",
                            )
                        out.write(chunk)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
                # zipfile reads no more than the header declares and checks the CRC:
                # a member whose header lies ends here.
                raise UploadRefused(
                    f"The zip archive is damaged: {info.filename}: {e}.",
                    hint="Re-create the archive (zip -r name.zip name/) and upload it again.",
                ) from None
            except FileExistsError:
                raise UploadRefused(
                    f"The archive holds {info.filename!r} twice.",
                    hint="Zip the files again so that each name is in it once "
                    "(zip -r name.zip name/ writes a fresh archive).",
                ) from None
    return written


def validate(
    folder: Path,
    settings: Settings,
    workdir: Path | None = None,
    *,
    convert: Path | None = None,
    label: str | None = None,
    name: str | None = None,
) -> dict:
    """check_dataset on the extracted folder, in a confined child process (never in the
    server's own: `autodl.service.confine`); UploadRefused (422) listing every error, or
    naming the limit (memory, CPU time, wall-clock time) the check broke.

    ``convert``: raw data in ``folder`` (a table, folders of images, audio, video or
    text) is converted into that folder in the same child, ``label`` naming a table's
    label column (else guessed from the column names), ``name`` the dataset's name when
    the class folders are at the archive's root; the report is the converted
    dataset's, with ``converted`` = {"dataset": path, "note": "converted from …"}."""
    from autodl.service.confine import LimitBroken, check_in_child

    task = None
    if convert is not None:
        task = {"convert": str(convert), "label": label or None, "name": name}
    try:
        answer = check_in_child(folder, workdir or folder.parent, settings, task)
    except LimitBroken as e:
        raise UploadRefused(
            f"{e.message} Nothing was queued and your quota is unchanged.", e.status, e.hint
        ) from None
    if "needs_label" in answer:
        names = [str(c) for c in answer["needs_label"][:50]]
        raise UploadRefused(
            f"The archive holds raw data, {_public(answer['summary'], folder)}, and no column "
            f"is named like a label: which one holds the classes? Its columns: "
            f"{', '.join(map(repr, names))}.",
            422,
            "Fill in the label column field (Label column, tables only) with one of them "
            "and upload the zip again.",
            api_hint=f"Name one of them in the '{LABEL_FIELD}' form field (or the "
            f"'{LABEL_FIELD}' query parameter, with the zip as the raw body) and send it again.",
            extra={"code": MISSING_LABEL, "columns": names},
        )
    if "refused" in answer:
        refused = answer["refused"]

        def told(field: str) -> tuple[str, str | None]:
            """The refusal, naming the label column's ``field`` where it says --label."""
            message = _public(refused["message"], folder, field).removeprefix("the archive: ")
            return (
                f"The archive holds raw data that could not be converted: {message} "
                "Nothing was queued.",
                _public(refused.get("hint") or "", folder, field) or None,
            )

        (message, hint), (api_message, api_hint) = told(PAGE_FIELD), told(API_FIELD)
        raise UploadRefused(message, 422, hint, api_message=api_message, api_hint=api_hint)
    report = answer["report"]
    if _nothing_found(report, folder):
        raise UploadRefused(
            "The archive holds no AutoDL dataset and no raw data to convert: expected a "
            "'<name>.data' folder holding train/ and test/ (with metadata and "
            "<name>.solution), a CSV, TSV or Parquet table, or one folder per class of "
            "images, audio, video or text files.",
            422,
            "Zip the dataset folder that `autodl format` wrote, or the raw data itself, "
            "and upload it again (see /help/format).",
        )
    # Messages name files relative to the archive, never the server's own paths.
    for p in report["problems"]:
        for key in ("file", "message", "expected"):
            if isinstance(p.get(key), str):
                p[key] = _public(p[key], folder)
        file = p.get("file")
        if file and isinstance(p.get("message"), str) and p["message"].startswith(f"{file}: "):
            p["message"] = p["message"][len(file) + 2 :]  # the file is shown beside it
    errors = int(answer.get("errors", 0))
    if errors:
        raise UploadRefused(
            f"The dataset is not valid: {errors} problem(s) found. Nothing was queued "
            "and your quota is unchanged.",
            422,
            "Fix the problems listed (run `autodl check` on it locally) and upload it again.",
            problems=report["problems"],
        )
    if "converted" in answer:
        report["converted"] = answer["converted"]
    elif label:
        raise UploadRefused(
            "The label column field is for a raw table, and the archive holds an AutoDL "
            "dataset (its metadata names the classes).",
            422,
            "Leave the label column field empty and upload it again.",
            api_hint=f"Send it again without the '{LABEL_FIELD}' field.",
        )
    return report


def _public(text: str, folder: Path, field: str = PAGE_FIELD) -> str:
    """A message for the user: paths relative to the archive, the form's ``field`` for a flag."""
    text = text.replace(f"{folder}/", "").replace(str(folder), "the archive")
    return text.replace("--label COLUMN", field).replace("--label", field)


def _nothing_found(report: dict, folder: Path) -> bool:
    """The check found no dataset at all (not a broken one): its one error is the folder."""
    errors = [p for p in report.get("problems") or [] if p.get("severity", "error") == "error"]
    return (
        report.get("name") is None
        and len(errors) == 1
        and errors[0].get("file") == str(folder)
        and "no dataset found" in str(errors[0].get("message"))
    )


def prepare(
    upload: Path,
    workdir: Path,
    settings: Settings,
    max_bytes: int,
    *,
    label: str | None = None,
    name: str | None = None,
) -> tuple[Path, dict, int]:
    """Check, extract and validate an uploaded zip: (dataset folder, check report, bytes).

    A zip of raw data is converted (`validate`) into ``workdir/converted/<name>``; that
    folder comes back, and its size counts, not the raw upload's."""
    members = check_archive(upload, settings)
    folder = workdir / "dataset"
    folder.mkdir()
    converted = workdir / "converted"
    try:
        size = extract(upload, members, folder, max_bytes)
        report = validate(folder, settings, workdir, convert=converted, label=label, name=name)
        if "converted" in report:
            from autodl.service.storage import tree_size

            dataset = Path(report["converted"].pop("dataset"))
            size = tree_size(dataset)
            if size > max_bytes:
                raise UploadRefused(
                    f"The converted dataset takes {human_bytes(size)}, more than the "
                    f"{human_bytes(max_bytes)} allowed.",
                    413,
                    "Convert it with `autodl format` locally (--max-size makes images "
                    "smaller) and upload the zip it writes.",
                )
            shutil.rmtree(folder, ignore_errors=True)  # the raw files are not kept
            return dataset, report, size
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(converted, ignore_errors=True)
        raise
    return folder, report, size

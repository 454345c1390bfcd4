"""The checks every zip goes through before a byte of it is used: an upload, a
``<name>.data.zip`` found inside a dataset folder, a ``.solution.zip``, a zip given
to ``autodl check`` or ``open_dataset``; and `zip_folder`, the one way autodl
writes a folder as a zip (a dataset, a job's results, a sample).

Refused: more entries than AUTODL_MAX_ARCHIVE_ENTRIES, a name that is absolute,
holds ``..`` or a NUL, a symbolic link, an encrypted entry, an entry compressed
otherwise than deflate or not at all (see `METHODS`), more bytes once
extracted than AUTODL_MAX_EXTRACTED_BYTES, and (above 1 MB) an
extracted/compressed ratio above AUTODL_MAX_COMPRESSION_RATIO. The sizes are the
central directory's; ``zipfile`` never reads a member past its declared size and
checks its CRC at the end, so a member whose header lies is stopped while it is
read.

>>> import io, zipfile
>>> buf = io.BytesIO()
>>> with zipfile.ZipFile(buf, "w") as z:
...     z.writestr("../evil", b"x")
>>> try:
...     check_zip(zipfile.ZipFile(buf))
... except ArchiveRefused as e:
...     print(e.message)
The archive was refused: '../evil' is a '..' path that points outside the archive.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

from autodl._units import human_bytes
from autodl.errors import FormatError
from autodl.formats import limits as _limits
from autodl.formats.limits import Limits

#: What ``zipfile.ZipFile()`` raises on a damaged or unsupported central directory
#: (NotImplementedError: a "version needed to extract" it does not know).
_OPEN_ERRORS = (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError)
#: The compression methods accepted: none and deflate (zip's default). ``zipfile``
#: inflates deflate at most as many bytes as are asked for, but hands each bzip2 or
#: lzma chunk it reads to a decompressor with no output bound: a few kilobytes of
#: bzip2 become gigabytes in one read, whatever the central directory declares and
#: whatever the archive's overall ratio. Entries compressed otherwise are refused.
METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)

_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma", 9: "deflate64"}

#: Below this many extracted bytes the ratio is not checked (small zips of text or
#: zeros compress very well and can do no harm).
RATIO_FLOOR = 1024 * 1024


class ArchiveRefused(FormatError):
    """A zip that must not be read. ``reason``: "not_zip", "damaged", "entries", "name",
    "link", "encrypted", "size" or "ratio"; ``setting``: the variable that raises the
    cap broken, if one was."""

    def __init__(
        self, message: str, reason: str, *, setting: str | None = None, file: str | None = None
    ):
        super().__init__(message, _HINTS.get(reason), file=file)
        self.reason = reason
        self.setting = setting


#: What to do about each refusal (every ``reason`` has one). A cap's hint names its
#: setting: on a shared service, its operator sets it.
_HINTS = {
    "not_zip": "Zip the dataset (metadata, <name>.data/ and <name>.solution) and give the .zip file.",
    "damaged": "Re-create the archive (zip -r name.zip name/).",
    "name": "Zip the files again without links or paths that leave the folder "
    "(zip -r name.zip name/, run from the folder that holds name/).",
    "link": "Zip the files themselves, not links to them (zip -r name.zip name/, without -y).",
    "encrypted": "Zip the files again without a password.",
    "size": "Make the data smaller, or raise AUTODL_MAX_EXTRACTED_BYTES where autodl runs "
    "(on a shared service, its operator sets it).",
    "ratio": "Zip the files themselves, not data made to compress to almost nothing; if it "
    "really compresses that well, raise AUTODL_MAX_COMPRESSION_RATIO where autodl runs "
    "(on a shared service, its operator sets it).",
    "entries": "Put fewer, larger files in one zip (an AutoDL split is a few "
    "sample-*.tfrecord files; new data can be sent in parts), or raise "
    "AUTODL_MAX_ARCHIVE_ENTRIES where autodl runs (on a shared service, its operator sets it).",
}


def unsafe_name(name: str) -> str | None:
    """Why an entry name could write outside the extraction folder; None if it cannot."""
    if "\x00" in name:
        return "a name holding a NUL character"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "an absolute path"
    if ".." in re.split(r"[/\\]", name):
        return "a '..' path that points outside the archive"
    return None


def check_zip(
    source: Path | str | zipfile.ZipFile, caps: Limits | None = None, *, file: str | None = None
) -> list[zipfile.ZipInfo]:
    """Every entry of a zip, after the checks of the module doc; `ArchiveRefused` otherwise.

    ``caps`` default to `limits.current()`; ``file`` (shown to users) prefixes the
    messages, e.g. "x.data.zip: the archive holds ...".
    """
    caps = caps or _limits.current()
    prefix = f"{file}: " if file else ""

    def refuse(text: str, reason: str, setting: str | None = None) -> ArchiveRefused:
        if prefix:
            text = text[0].lower() + text[1:]
        return ArchiveRefused(prefix + text, reason, setting=setting, file=file)

    if isinstance(source, zipfile.ZipFile):
        infos = source.infolist()
    else:
        if not zipfile.is_zipfile(source):
            raise refuse(
                "The upload is not a zip archive." if not file else "Not a zip archive.", "not_zip"
            )
        try:
            with zipfile.ZipFile(source) as zf:
                infos = zf.infolist()
        except _OPEN_ERRORS as e:
            raise refuse(f"The zip archive is damaged: {e}.", "damaged") from None
    if len(infos) > caps.max_archive_entries:
        raise refuse(
            f"The archive holds {len(infos)} entries; at most {caps.max_archive_entries} are allowed.",
            "entries",
            "AUTODL_MAX_ARCHIVE_ENTRIES",
        )
    total = packed = 0
    for info in infos:
        problem = unsafe_name(info.filename)
        if problem:
            raise refuse(f"The archive was refused: {info.filename!r} is {problem}.", "name")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refuse(
                f"The archive was refused: {info.filename!r} is a symbolic link; "
                "links are not accepted. Zip the files themselves.",
                "link",
            )
        if info.flag_bits & 0x1:
            raise refuse(f"The archive was refused: {info.filename!r} is encrypted.", "encrypted")
        if info.compress_type not in METHODS:
            raise refuse(
                f"The archive was refused: {info.filename!r} is compressed with method "
                f"{info.compress_type} ({_METHOD_NAMES.get(info.compress_type, 'unknown')}); "
                "only deflate (zip's default) and stored entries are read. "
                "Re-create it with `zip -r name.zip name/`.",
                "damaged",
            )
        total += info.file_size
        packed += info.compress_size
    if total > caps.max_extracted_bytes:
        raise refuse(
            f"The archive would take {human_bytes(total)} once extracted; "
            f"at most {human_bytes(caps.max_extracted_bytes)} are allowed.",
            "size",
            "AUTODL_MAX_EXTRACTED_BYTES",
        )
    if total > RATIO_FLOOR and total / max(packed, 1) > caps.max_compression_ratio:
        raise refuse(
            f"The archive was refused: it expands {total / max(packed, 1):.0f} times "
            f"(at most {caps.max_compression_ratio:g} is allowed), as zip bombs do.",
            "ratio",
            "AUTODL_MAX_COMPRESSION_RATIO",
        )
    return infos


def open_zip(path: Path, caps: Limits | None = None, *, file: str | None = None) -> zipfile.ZipFile:
    """A zip opened for reading in place, once `check_zip` accepts it."""
    file = file or path.name
    try:
        zf = zipfile.ZipFile(path)
    except _OPEN_ERRORS as e:
        raise ArchiveRefused(
            f"{file}: not a readable zip archive ({e}).", "damaged", file=file
        ) from None
    try:
        check_zip(zf, caps, file=file)
    except BaseException:
        zf.close()
        raise
    return zf


def extract_zip(
    path: Path, into: Path, caps: Limits | None = None, *, file: str | None = None
) -> list[str]:
    """Extract a zip `check_zip` accepts (names inside the archive, sizes and ratios
    bounded; zipfile reads no entry past its checked size) into ``into``; its names."""
    with open_zip(path, caps, file=file) as zf:
        zf.extractall(into)
        return zf.namelist()


def zip_folder(
    root: Path,
    target: Path,
    *,
    prefix: str = "",
    compression: int = zipfile.ZIP_DEFLATED,
    compresslevel: int | None = None,
    include: Callable[[str], bool] | None = None,
) -> Path:
    """Zip the regular files under ``root`` into ``target``, named by their path from
    ``root`` (after ``prefix``, e.g. ``"name/"``), in sorted order; ``target``.

    Links are left out (a linked file or folder could be anything on the machine), and
    so is every file whose relative path ``include`` refuses. The zip is written under
    a temporary name beside ``target`` and renamed into place: nobody ever reads a
    half-written one.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> (d / "a").mkdir(); _ = (d / "a" / "x.txt").write_text("x")
    >>> zipfile.ZipFile(zip_folder(d / "a", d / "a.zip", prefix="top/")).namelist()
    ['top/x.txt']
    """
    root, target = Path(root), Path(target)
    # Unique across threads, processes and machines sharing the folder (a named file,
    # not mkstemp's, keeps the usual permissions rather than 0600).
    tmp = target.with_name(
        f".{target.name}.{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}.tmp"
    )
    files = [rel for rel in _plain_files(root) if root / rel != target]  # listed before tmp
    try:
        with zipfile.ZipFile(tmp, "w", compression, compresslevel=compresslevel) as zf:
            for rel in files:
                if include is None or include(rel):
                    zf.write(root / rel, prefix + rel)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def _plain_files(root: Path) -> list[str]:
    """The relative (posix) paths of the regular files under ``root``, links left out."""
    out = []
    for dirpath, dirs, files in os.walk(root):  # os.walk does not enter linked folders
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path) and os.path.isfile(path):
                out.append(Path(path).relative_to(root).as_posix())
    return out


__all__ = ["ArchiveRefused", "check_zip", "open_zip", "unsafe_name", "zip_folder"]

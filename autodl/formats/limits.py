"""The caps every dataset reader applies, whoever calls it (CLI, jobs, validation).

A hostile dataset of a few kilobytes can claim two billion classes, a record of
2**40 bytes or a frame of 9000 x 9000 pixels; each such claim is checked against
a cap *before* anything is allocated for it. The caps are settings
(``AUTODL_MAX_*``, see ``autodl/settings.py`` and docs/settings.md): `current()` reads
them once per process from `Settings.from_env()` (this package never reads
``os.environ`` itself), `configure()` sets them from a `Settings` object, and
`using()` narrows them for a block (tests)::

    >>> with using(max_classes=3):
    ...     current().max_classes
    3

Breaking a cap raises `LimitExceeded`, a `FormatError` that names the file, the
record, the limit and the setting that raises it::

    train/sample-0.tfrecord, record 12: a frame of 9000 x 9000 pixels is larger
    than the 25,000,000 allowed (AUTODL_MAX_FRAME_PIXELS).
"""

from __future__ import annotations

import lzma
import threading
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from typing import Any

from autodl.errors import FormatError
from autodl.settings import Settings

#: What opening or reading a damaged member of an accepted zip can raise: a local
#: header that does not match, a deflate/bzip2/lzma stream that does not decode, a
#: CRC that does not match at the end, a member cut short. Readers turn these into
#: a FormatError naming the file (a plain file raises OSError only).
READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError)
#: TFRecord's own framing bound: TensorFlow never writes a record this large, so a
#: length field above it is damage or a lie, whatever AUTODL_MAX_RECORD_BYTES says.
TFRECORD_MAX = 1 << 31


@dataclass(frozen=True)
class Limits:
    """The reader caps; each field is the `Settings` field of the same name."""

    max_classes: int = Settings.max_classes
    max_records: int = Settings.max_records
    max_record_bytes: int = Settings.max_record_bytes
    max_frames: int = Settings.max_frames
    max_frame_pixels: int = Settings.max_frame_pixels
    max_decoded_bytes: int = Settings.max_decoded_bytes
    max_solution_bytes: int = Settings.max_solution_bytes
    max_metadata_bytes: int = Settings.max_metadata_bytes
    max_archive_entries: int = Settings.max_archive_entries
    max_extracted_bytes: int = Settings.max_extracted_bytes
    max_compression_ratio: float = Settings.max_compression_ratio

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    @property
    def record_bytes(self) -> int:
        """The record-length cap actually applied: the setting, never above 2 GiB."""
        return min(self.max_record_bytes, TFRECORD_MAX)


_lock = threading.Lock()
_process: Limits | None = None
# A process-wide override, not a context variable: decoding threads of a pool
# must see the caps of the block that started them.
_override: Limits | None = None


def current() -> Limits:
    """The caps in force: `using()`'s, else the process's (read once from the environment)."""
    global _process
    if _override is not None:
        return _override
    if _process is None:
        with _lock:
            if _process is None:
                _process = Limits.from_settings(Settings.from_env())
    return _process


def configure(source: Settings | Limits) -> None:
    """Set the process's caps (a server or worker calls it with its `Settings`)."""
    global _process
    _process = source if isinstance(source, Limits) else Limits.from_settings(source)


@contextmanager
def using(limits: Limits | None = None, **caps: Any) -> Iterator[Limits]:
    """Apply ``limits`` (default: the current ones) with ``caps`` changed, for a block."""
    global _override
    saved = _override
    chosen = replace(limits or current(), **caps)
    _override = chosen
    try:
        yield chosen
    finally:
        _override = saved


def setting_of(name: str) -> str:
    """The environment variable of a cap: ``max_frames`` -> ``AUTODL_MAX_FRAMES``."""
    return f"AUTODL_{name.upper()}"


class LimitExceeded(FormatError):
    """A dataset claims more than a cap allows. ``setting`` is the variable that raises it."""

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        setting: str,
        limit: float,
        file: str | None = None,
        record: int | None = None,
        field: str | None = None,
    ):
        super().__init__(message, hint, file=file, record=record, field=field)
        self.setting = setting
        self.limit = limit


def _figure(n: float) -> str:
    return f"{n:,}" if isinstance(n, int) else f"{n:,g}"


def where(file: str | None, record: int | None = None) -> str:
    """``"train/sample-0.tfrecord, record 12: "`` (the parts that are known)."""
    parts = [p for p in (file, None if record is None else f"record {record}") if p]
    return ", ".join(parts) + ": " if parts else ""


def exceeded(
    name: str,
    what: str,
    *,
    limit: float | None = None,
    file: str | None = None,
    record: int | None = None,
    field: str | None = None,
    unit: str = "",
) -> LimitExceeded:
    """The error for ``what`` (e.g. "a frame of 9000 x 9000 pixels") breaking cap ``name``.

    ``what`` may hold ``{limit}`` to word the whole finding itself ("the split holds
    more than the {limit} records allowed"); else "is larger than the N allowed" follows.
    """
    limit = getattr(current(), name) if limit is None else limit
    setting = setting_of(name)
    if "{limit}" in what:
        finding = what.replace("{limit}", _figure(limit))
    else:
        finding = f"{what} is larger than the {_figure(limit)}{unit} allowed"
    return LimitExceeded(
        f"{where(file, record)}{finding} ({setting}).",
        f"If the dataset really needs more, raise {setting} where autodl runs "
        "(on a shared service, its operator sets it).",
        setting=setting,
        limit=limit,
        file=file,
        record=record,
        field=field,
    )


def check(
    name: str, value: int, what: str, *, file: str | None = None, record: int | None = None, **kw
) -> None:
    """Raise `exceeded` when ``value`` is above cap ``name``; ``what`` may use ``{value:,}``."""
    limit = getattr(current(), name)
    if value > limit:
        raise exceeded(name, what.format(value=value), limit=limit, file=file, record=record, **kw)


def read_bounded(node: Any, name: str, file: str) -> bytes:
    """The bytes of a file (a path or a zip member), refused past cap ``name`` before reading."""
    limit = getattr(current(), name)
    try:
        size = file_size(node)
        if size > limit:
            raise exceeded(name, f"the file ({size:,} bytes)", file=file, unit=" bytes")
        with node.open("rb") as f:
            # Never read(limit + 1): that allocates the whole cap up front. A zip member
            # stops at its declared size; a file that grew meanwhile is caught below.
            data = f.read()
    except READ_ERRORS as e:
        raise FormatError(
            f"{file}: cannot be read ({getattr(e, 'strerror', None) or e}).",
            "Re-create the archive, or re-export this file.",
            file=file,
        ) from None
    if len(data) > limit:
        raise exceeded(name, "the file", file=file, unit=" bytes")
    return data


def file_size(node: Any) -> int:
    """Size in bytes of a file (uncompressed size for a zip member)."""
    if isinstance(node, zipfile.Path):
        return node.root.getinfo(node.at).file_size
    return node.stat().st_size


__all__ = [
    "READ_ERRORS",
    "LimitExceeded",
    "Limits",
    "check",
    "configure",
    "current",
    "exceeded",
    "file_size",
    "read_bounded",
    "using",
]

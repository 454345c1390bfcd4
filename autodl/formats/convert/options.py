"""The options of `autodl format`, declared as data and checked in one place.

`FormatOptions` holds what the user asked for; `validate` checks every value
against `RULES` (one message template for all of them, as scikit-learn's
parameter constraints do), so the CLI and the Python API refuse the same things
with the same words.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from autodl.errors import FormatError
from autodl.formats.names import DATASET_NAME_RULE, valid_dataset_name

DOMAINS = ("tabular", "image", "text", "audio", "video", "series")
#: Languages written without spaces between words: tokenised one character at a time.
CHAR_LANGUAGES = ("zh", "ja", "th", "lo", "km", "my")


@dataclass
class FormatOptions:
    """What ``autodl format`` (or `format_dataset`) was asked to do; see docs/cli.md."""

    name: str | None = None
    domain: str | None = None
    labels: tuple[str, ...] = ()
    label_separator: str | None = None
    test_size: float = 0.35
    seed: int = 0
    keep_order: bool = False
    split_column: str | None = None
    split_file: Path | None = None
    unlabelled: Path | None = None
    id_column: str | None = None
    drop: tuple[str, ...] = ()
    text_column: str | None = None
    language: str = "auto"
    max_size: int | None = None
    sample_rate: int = 16000
    fps: float = 5.0
    max_frames: int = 50
    skip_bad: bool = False
    workers: int | None = None
    force: bool = False

    @property
    def char_tokens(self) -> bool:
        """Whether text is cut into characters rather than words (``--language zh`` …)."""
        return self.language.split("-")[0].lower() in CHAR_LANGUAGES

    def to_json(self) -> dict[str, Any]:
        """The options as JSON values (paths as strings), for the manifest."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = (
                str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v)
            )
        return out


def _positive(v: Any) -> bool:
    return v > 0


# option -> (test, what a valid value is, the flag users type). A None value is
# always accepted: it means "not given".
RULES: dict[str, tuple[Callable[[Any], bool], str, str]] = {
    "name": (valid_dataset_name, f"1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit ({DATASET_NAME_RULE})", "--name"),
    "domain": (lambda v: v in DOMAINS, "one of " + ", ".join(DOMAINS), "--domain"),
    "label_separator": (lambda v: len(v) >= 1, "a non-empty string such as '|' or ' '", "--label-separator"),
    "test_size": (
        lambda v: (0 < v < 1) or (v >= 1 and float(v).is_integer()),
        "a fraction between 0 and 1 (0.35) or a whole number of records (200)",
        "--test-size",
    ),
    "seed": (lambda v: v >= 0, "a whole number ≥ 0", "--seed"),
    "max_size": (lambda v: v >= 8, "a number of pixels ≥ 8", "--max-size"),
    "sample_rate": (lambda v: 100 <= v <= 384000, "a rate in Hz between 100 and 384000", "--sample-rate"),
    "fps": (_positive, "a positive number of frames per second", "--fps"),
    "max_frames": (_positive, "a whole number ≥ 1", "--max-frames"),
    "workers": (_positive, "a whole number ≥ 1", "--workers"),
    "language": (
        lambda v: bool(re.match(r"^(auto|[A-Za-z]{2,3}(-[A-Za-z0-9]+)*)$", v)),
        "auto or a language code such as en, fr, zh, ja",
        "--language",
    ),
}  # fmt: skip


def validate(opts: FormatOptions) -> FormatOptions:
    """Check every option against `RULES`; raises one `FormatError` naming all bad ones."""
    bad = []
    for attr, (ok, expected, flag) in RULES.items():
        value = getattr(opts, attr)
        if value is not None and not ok(value):
            bad.append(f"{flag} {value!r} is not valid: expected {expected}")
    for attr, flag in (("split_file", "--split-file"), ("unlabelled", "--unlabelled")):
        path = getattr(opts, attr)
        if path is not None and not Path(path).exists():
            bad.append(f"{flag} {path}: no such file or folder")
    if opts.split_column and opts.split_file:
        bad.append("--split-column and --split-file cannot be used together")
    if bad:
        raise FormatError(
            "; ".join(bad) + ".", "Fix the option(s) and run again (autodl format --help)."
        )
    return opts


def default_name(path: Path) -> str:
    """A dataset name from the input's file or folder name: 'My photos.v2' -> 'my_photos_v2'."""
    stem = path.name
    for ext in (".csv", ".tsv", ".txt", ".parquet", ".pq", ".zip"):
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_-").lower()
    return name[:64].rstrip("_-") or "dataset"

"""The ``key: value`` files of a prediction folder (start.txt, end.txt), without PyYAML.

The official programs write and read them as YAML, but they only ever hold one
flat mapping of scalars, so a strict line parser is enough and gives better
errors (file and line) than a YAML traceback. Values become what PyYAML would
make of them in these files: int, float, bool or str; integer keys (prediction
indices) become ints.

>>> parse_key_value_lines(["start_time: 1750000000.125", "0: 1750000002.6167"], "start.txt")
{'start_time': 1750000000.125, 0: 1750000002.6167}

`key_value_text` writes them. A name cannot inject a line or change a type: a key
must match the key pattern, a text value holding a control character (a newline)
is refused, and a text value that YAML would read as something else (a number,
``yes``, ``null``, a date, anything with ``:`` or ``#``) is single-quoted, which
both PyYAML (the official scorer) and this parser read back as the same text.

>>> print(key_value_text([("task_name", "digits"), ("time_budget", 300), ("x", "1.5")]), end="")
task_name: digits
time_budget: 300
x: '1.5'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from autodl.errors import ScoringError

_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w.-]*|\d+)\s*:(?:\s+(?P<value>.*?))?\s*$")
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$")
_KEY = re.compile(r"[A-Za-z_][\w.-]*|\d+")
# A plain scalar that PyYAML 1.1 and this parser both read as this very text.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def key_value_text(pairs) -> str:
    """``key: value`` lines for (key, value) pairs; ValueError on a key or text that would
    not read back as written (see the module's docstring)."""
    return "".join(f"{_key(k)}: {_value(k, v)}\n" for k, v in pairs)


def _key(key) -> str:
    text = str(key)
    if isinstance(key, bool) or not _KEY.fullmatch(text):
        raise ValueError(f"{text!r} cannot be a key of a key-value file")
    return text


def _value(key, value) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{key}: write booleans as 0/1 and leave out missing values")
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    if _CONTROL.search(text):
        raise ValueError(f"{key}: {text[:40]!r} holds a control character (a newline?)")
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return "'" + text.replace("'", "''") + "'"


def read_key_value_file(path: str | Path) -> dict:
    """Read a start.txt / end.txt style file; errors name the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoringError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from None
    except UnicodeDecodeError:
        raise ScoringError(f"{path.name}: not a UTF-8 text file.") from None
    return parse_key_value_lines(text.splitlines(), path.name)


def parse_key_value_lines(lines: Iterable[str], name: str) -> dict:
    """Parse ``key: value`` lines; blank lines and ``#`` comments are skipped."""
    info: dict = {}
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(stripped)
        if match is None:
            raise ScoringError(
                f"{name}, line {lineno}: expected 'key: value' (for example '0: 1750000002.61'), "
                f"got {stripped[:60]!r}."
            )
        key = match["key"]
        key = int(key) if key.isdigit() else key
        if key in info:
            raise ScoringError(f"{name}, line {lineno}: '{key}' appears twice.")
        info[key] = _scalar(match["value"] or "", name, lineno, key)
    return info


def _scalar(text: str, name: str, lineno: int, key) -> int | float | bool | str | None:
    if text == "" or text in ("~", "null"):
        return None
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text in ("true", "True", "false", "False"):
        return text.lower() == "true"
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")  # YAML: a quote inside is doubled
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    if isinstance(key, int):
        # Prediction times are always numbers; anything else is a broken line.
        raise ScoringError(
            f"{name}, line {lineno}: the time of prediction {key} is {text[:40]!r}, "
            "expected seconds since the epoch (a number)."
        )
    return text

"""What the database keeps of an upload: a display name and a compact check report.

A job's ``name`` is a label typed by its user: shown, never used in a path.
`clean_job_name` takes out control and format characters (newlines, tabs, bidi
overrides), folds runs of spaces and keeps at most `MAX_JOB_NAME` characters.
The dataset's own name (the ``<name>.data`` folder) is what names files; it has
passed `autodl.formats.names.valid_dataset_name` before a job exists.

``dataset_info`` holds two JSON lines: first a summary of fixed size (name,
domain, classes, shape, format, record counts, how many problems the check
found), then the details (label names and at most `MAX_STORED_PROBLEMS` of the
problems, errors first). A listing reads the first line only, so a poll costs the
same whether a dataset has three classes or ten thousand warnings; a job's own
page reads both. Rows written before this layout (one JSON object) read as both.
"""

from __future__ import annotations

import json
import re
import unicodedata

MAX_JOB_NAME = 100
MAX_STORED_PROBLEMS = 100
#: The summary line is shorter than this (a 64-character name, a few numbers): listings
#: read only this many characters of ``dataset_info`` from the database.
SUMMARY_CHARS = 2000
_SUMMARY_KEYS = ("name", "domain", "output_dim", "shape", "format", "train", "test", "unlabelled")
_SPACES = re.compile(r"\s+")


def clean_job_name(raw: str | None) -> str:
    """The display name to store: printable, one line, at most `MAX_JOB_NAME` characters.

    >>> clean_job_name("  my\\nrun\\u202e\\t2 ")
    'my run 2'
    """
    text = "".join(
        " " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c
        for c in (raw or "")
        if unicodedata.category(c) not in ("Cf", "Cs", "Co", "Cn")
    )
    return _SPACES.sub(" ", text).strip()[:MAX_JOB_NAME].strip()


def compact_report(report: dict) -> str:
    """``dataset_info`` for a check report (`CheckReport.to_json`): summary line, details line."""
    problems = list(report.get("problems") or [])
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    others = [p for p in problems if p.get("severity", "error") != "error"]
    kept = (errors + others)[:MAX_STORED_PROBLEMS]
    summary = {k: report.get(k) for k in _SUMMARY_KEYS}
    summary["problems_total"] = len(problems)
    summary["errors_total"] = len(errors)
    details = {"label_names": report.get("label_names"), "problems": kept}
    line = json.dumps(summary)
    if len(line) >= SUMMARY_CHARS:  # only a report that breaks the name rule could
        raise ValueError(f"the check summary is {len(line)} characters long")
    # json.dumps escapes every newline inside strings: the only raw one separates the lines.
    return line + "\n" + json.dumps(details)


def is_whole_summary(text: str | None) -> bool:
    """False for the first `SUMMARY_CHARS` characters of an old one-object row that is
    longer: that row must be read whole."""
    return text is not None and ("\n" in text or len(text) < SUMMARY_CHARS)


def dataset_summary(info: str | None) -> dict:
    """The first line of ``dataset_info`` (the whole of an old one-object row)."""
    first = (info or "").partition("\n")[0]
    try:
        data = json.loads(first or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def dataset_details(info: str | None) -> dict:
    """Label names and stored problems: ``{"label_names": [...] | None, "problems": [...]}``."""
    first, _, rest = (info or "").partition("\n")
    try:
        data = json.loads(rest or first or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    return {"label_names": data.get("label_names"), "problems": data.get("problems") or []}

"""The rule for dataset names: they become file names, and the service builds paths with them.

A dataset's name is the stem of its ``<name>.data`` folder (or of its zip). It names
the prediction files (``<name>.predict_<k>``), start.txt's ``task_name`` and the
downloads of a job, so it must be one plain file-name part: no ``/``, no ``..``,
no newline or colon (which would inject lines into start.txt), not empty.

>>> valid_dataset_name("handdigits"), valid_dataset_name(""), valid_dataset_name("../x")
(True, False, False)
"""

from __future__ import annotations

import re

#: The rule, as written in messages: a letter or digit, then up to 63 letters, digits,
#: dots, underscores or hyphens (64 characters at most).
DATASET_NAME_RULE = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
DATASET_NAME = re.compile(DATASET_NAME_RULE)


def valid_dataset_name(name: object) -> bool:
    """True when ``name`` matches `DATASET_NAME_RULE` (the whole of it)."""
    return isinstance(name, str) and DATASET_NAME.fullmatch(name) is not None


def dataset_name_problem(name: str, source: str | None = None) -> str | None:
    """A message for the user when ``name`` breaks the rule; None when it is fine.

    ``source`` says where the name comes from (default: the folder ``<name>.data``).
    """
    if valid_dataset_name(name):
        return None
    source = source or f"the folder '{name}.data'"
    return (
        f"The dataset name {name!r} (from {source}) is not allowed: a name "
        f"is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or a digit "
        f"({DATASET_NAME_RULE}). Rename the folder, e.g. to 'mydataset.data', with the "
        f"solution as 'mydataset.solution'."
    )


def layout_name_problem(layout) -> tuple[str, str] | None:
    """(file, message) when a located dataset's name breaks the rule; None when it is fine.

    ``file`` is the folder (or zip) the name was taken from, as a problem's ``file``.
    """
    name = layout.name
    if valid_dataset_name(name):
        return None
    folder = getattr(layout.data_dir, "name", "") or ""
    if folder.endswith(".data"):
        return f"{folder}/", dataset_name_problem(name, f"the folder '{folder}'")
    return f"{name}/", dataset_name_problem(name, f"the folder or zip called '{name}'")


__all__ = [
    "DATASET_NAME",
    "DATASET_NAME_RULE",
    "dataset_name_problem",
    "layout_name_problem",
    "valid_dataset_name",
]

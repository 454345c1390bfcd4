"""The process that validates an upload:
``python -m autodl._checkproc FOLDER OUT LIMITS [CGROUP [TASK]]``.

The web server never decodes user data itself (`autodl.service.uploads.validate`
starts this). It confines itself first (`autodl._confine.apply`: address space, CPU
time, file size, ``oom_score_adj`` 1000, the cgroup the parent made; CGROUP "" for
none), and only then imports the readers — `autodl.formats`, never torch, so a fresh
process costs about half a second — runs `check_dataset` and writes the report as
JSON to OUT.

TASK (JSON) ``{"convert": DIR, "label": COLUMN | null, "name": NAME | null}`` also accepts raw data: when
`describe_raw` finds a table or folders of images, audio, video or text in FOLDER,
it is converted here, under the same limits, with `format_dataset` (``autodl
format``'s defaults, on one core: no worker process escapes the limits) into DIR,
and the answer's ``report`` is the converted dataset's check; ``converted`` says
what was converted (``{"dataset": DIR/<name>, "note": "converted from …",
"warnings": [...]}``). A table whose label column is neither given nor guessable
answers ``needs_label`` (its columns) instead; a conversion that fails answers
``refused`` (message, hint). Neither raw data nor a dataset: the check's report.

Exit status: 0 report written; `EXIT_MEMORY` the check ran out of its memory limit
(a MemoryError: the typed signal the parent turns into "needs more than X of memory").
Killed by SIGXCPU means the CPU-time limit; the wall-clock limit is the parent's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

from autodl import _confine

EXIT_MEMORY = 3
#: Problems kept in the report sent back (the count of all of them is kept too), so that a
#: dataset with millions of bad records cannot make the server parse a huge answer.
MAX_PROBLEMS = 1000


def main(argv: list[str]) -> int:
    return child_main(argv, _check)


def child_main(argv: list[str], work: Callable[[Path, dict], dict]) -> int:
    """A confined child's frame (here and `autodl.service.predictproc`): ``argv`` is FOLDER
    OUT LIMITS [CGROUP [TASK]]; it confines itself, then writes ``work(FOLDER, TASK)``'s
    answer to OUT as JSON (0), or exits `EXIT_MEMORY` on a MemoryError."""
    folder, out, limits = Path(argv[1]), argv[2], _confine.Limits.from_json(json.loads(argv[3]))
    _confine.apply(limits, argv[4] if len(argv) > 4 and argv[4] else None)
    task = json.loads(argv[5]) if len(argv) > 5 else {}
    try:
        text = json.dumps(work(folder, task))
    except MemoryError:
        return EXIT_MEMORY
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


def _check(folder: Path, task: dict) -> dict:
    answer = _convert(folder, task) if task.get("convert") else None
    if answer is None:
        from autodl.formats.check import check_dataset

        answer = _answer(check_dataset(folder).to_json())
    return answer


def _answer(report: dict) -> dict:
    problems = report.get("problems") or []
    errors = sum(1 for p in problems if p.get("severity", "error") == "error")
    report["problems"] = problems[:MAX_PROBLEMS]
    return {"report": report, "errors": errors, "problems_total": len(problems)}


def raw_root(folder: Path) -> Path:
    """The folder that holds the data: a zip of ``shapes/`` (one folder, nothing beside
    it) holds its classes one level down."""
    while True:
        children = [c for c in folder.iterdir() if not c.name.startswith(".")]
        if len(children) != 1 or not children[0].is_dir() or children[0].is_symlink():
            return folder
        folder = children[0]


def _convert(folder: Path, task: dict) -> dict | None:
    """Raw data in ``folder`` converted into ``task["convert"]``: the answer; None when
    ``folder`` is not raw data (it is checked as a dataset)."""
    from autodl.errors import AutoDLError
    from autodl.formats.convert import format_dataset
    from autodl.formats.convert.detect import describe_raw

    raw = describe_raw(raw_root(folder))
    if raw is None:
        return None
    label = task.get("label") or raw.label
    if raw.kind == "table" and not label:
        return {"needs_label": raw.columns, "summary": raw.summary}
    if raw.kind != "table" and task.get("label"):
        return {
            "refused": {
                "message": f"The archive holds {raw.summary}: a label column is for a table only.",
                "hint": "Leave the label column field empty: the folders name the classes.",
            }
        }
    try:
        result = format_dataset(
            raw.path,
            task["convert"],
            # Class folders at the archive's root: the upload's file name names the dataset.
            name=task.get("name") if raw.path == folder else None,
            label=label if raw.kind == "table" else None,
            workers=1,
        )
    except AutoDLError as e:
        return {"refused": {"message": e.message, "hint": e.hint}}
    if raw.kind == "table":
        what = raw.summary.split(" with ")[0] + f" (label column {label!r})"
    else:
        what = raw.summary.replace("a folder of ", "a zip of ", 1)
    answer = _answer(result.report.to_json())
    answer["converted"] = {
        "dataset": str(result.dataset),
        "note": f"converted from {what}",
        "warnings": list(result.warnings),
    }
    return answer


if __name__ == "__main__":
    sys.exit(main(sys.argv))

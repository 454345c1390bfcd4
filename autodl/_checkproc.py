"""The process that validates an upload: ``python -m autodl._checkproc FOLDER OUT LIMITS [CGROUP]``.

The web server never decodes user data itself (`autodl.service.uploads.validate`
starts this). It confines itself first (`autodl._confine.apply`: address space, CPU
time, file size, ``oom_score_adj`` 1000, the cgroup the parent made), and only then
imports the readers — `autodl.formats`, never torch, so a fresh process costs about
half a second — runs `check_dataset` and writes the report as JSON to OUT.

Exit status: 0 report written; `EXIT_MEMORY` the check ran out of its memory limit
(a MemoryError: the typed signal the parent turns into "needs more than X of memory").
Killed by SIGXCPU means the CPU-time limit; the wall-clock limit is the parent's.
"""

from __future__ import annotations

import json
import sys

from autodl import _confine

EXIT_MEMORY = 3
#: Problems kept in the report sent back (the count of all of them is kept too), so that a
#: dataset with millions of bad records cannot make the server parse a huge answer.
MAX_PROBLEMS = 1000


def main(argv: list[str]) -> int:
    folder, out, limits = argv[1], argv[2], _confine.Limits.from_json(json.loads(argv[3]))
    _confine.apply(limits, argv[4] if len(argv) > 4 else None)
    try:
        from autodl.formats.check import check_dataset

        report = check_dataset(folder).to_json()
        problems = report.get("problems") or []
        errors = sum(1 for p in problems if p.get("severity", "error") == "error")
        report["problems"] = problems[:MAX_PROBLEMS]
        answer = {"report": report, "errors": errors, "problems_total": len(problems)}
        text = json.dumps(answer)
    except MemoryError:
        return EXIT_MEMORY
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

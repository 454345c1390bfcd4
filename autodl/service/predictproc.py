"""The process that touches a prediction upload:
``python -m autodl.service.predictproc FOLDER OUT LIMITS CGROUP TASK``.

The same argument shape as `autodl._checkproc` (started the same way, by
`autodl.service.confine.check_in_child`, for the check before queueing; by
`autodl.service.predictions.run_prediction` in the job process for the prediction
itself). It confines itself first (`autodl._confine.apply`: address space, CPU time,
file size, ``oom_score_adj`` 1000, the parent's cgroup) and its environment holds no
secrets (the parent scrubs it), and only then imports the model code and reads the data.

TASK (JSON):

* ``{"model": DIR, "name": FILE}``: `autodl.model.check_input(DIR, INPUT)` (messages
  name the input FILE, the upload's name, when given); the answer is
  ``{"ok": true}`` or ``{"refused": {"message", "hint"}}`` (the model's words: what the
  data holds and what the model expects);
* ``{"model": DIR, "predict": CSV}``: `autodl.model.predict_to_csv` into CSV (written
  under a temporary name, renamed into place); the answer is ``{"rows": N}`` or a
  refusal as above. A refusal's ``kind`` is "model" when the model cannot be
  used at all (`ModelError`: damaged, saved by other versions), else "data".

INPUT is FOLDER, the one folder it holds (a zip of ``new/`` holds its files one
level down: `autodl._checkproc.raw_root`), or the one file it holds (a table). Exit status 0: answer written;
`EXIT_MEMORY`: out of its memory limit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from autodl._checkproc import child_main, raw_root


def main(argv: list[str]) -> int:
    return child_main(argv, _do)


def _input(folder: Path) -> Path:
    """What the upload holds: its one file (a table: rows numbered), else its folder
    (`raw_root`: a zip of one folder holds its files one level down)."""
    root = raw_root(folder)
    entries = [c for c in root.iterdir() if not c.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_file() and not entries[0].is_symlink():
        return entries[0]
    return root


def _do(folder: Path, task: dict) -> dict:
    from autodl.errors import AutoDLError, ModelError

    model, data = task["model"], _input(folder)
    try:
        import autodl.model as M

        # the upload's file name, for the model's messages; a table inside it keeps its own
        name = task.get("name") if data.is_dir() else None
        if "predict" not in task:
            M.check_input(model, data, name=name)
            return {"ok": True}
        target = Path(task["predict"])
        tmp = target.with_name(f".{target.name}.tmp")
        rows = M.predict_to_csv(model, data, tmp, name=name)
        os.replace(tmp, target)
        return {"rows": int(rows)}
    except AutoDLError as e:
        message = _public(e.message, folder, Path(model))
        # "model": the model cannot be used at all (damaged, saved by other versions): not
        # the data's fault. "data": the data does not fit the model.
        kind = "model" if isinstance(e, ModelError) else "data"
        return {"refused": {"message": message, "hint": e.hint, "kind": kind}}


def _public(text: str, data: Path, model: Path) -> str:
    """Paths inside the upload relative to it, the model as "the model": the server's
    folders are not the user's business."""
    text = text.replace(f"{model}/", "the model's ").replace(str(model), "the model")
    return text.replace(f"{data}/", "").replace(str(data), "the upload")


if __name__ == "__main__":
    sys.exit(main(sys.argv))

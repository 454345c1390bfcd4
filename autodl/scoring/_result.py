"""`ScoreResult` and the files it is saved as: scores.json and the official scores.txt."""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from autodl.errors import ScoringError


@dataclass
class ScoreResult:
    """The scores of one run.

    ``timestamps`` are seconds after the start; ``nauc`` and ``accuracy`` (None
    unless the solution is multi-class) hold one value per prediction, late ones
    included. ``late`` lists the predictions made after ``time_budget``: they are
    not in ``alc``, ``final_nauc`` or ``auc_per_class``. ``auc_per_class`` is for
    the last prediction that counts (None for the classes left out);
    ``final_nauc`` is None when no prediction counts.

    The diagnostics describe that same prediction (``diagnosed_prediction``, its index):
    ``confusion_matrix`` (multi-class only: rows true class, columns the argmax class,
    counts) and its largest off-diagonal cells ``top_confusions``; ``per_class``, one
    ``{label, support, precision, recall, f1, auc, average_precision, threshold}`` per
    class; for multi-label data ``label_confusion`` (each label's ``{tp, fp, fn, tn}``)
    and ``error_cooccurrence`` (examples on which two labels are both wrong). ``curves``
    (ROC and PR, `autodl.scoring.diagnostics.curves`) is saved apart, as curves.json.
    """

    alc: float
    final_nauc: float | None
    nauc: list[float]
    timestamps: list[float]
    time_budget: float
    accuracy: list[float] | None = None
    ignored_classes: list[int] = field(default_factory=list)
    ignored_reasons: list[str] = field(default_factory=list)
    auc_per_class: list[float | None] = field(default_factory=list)
    late: list[int] = field(default_factory=list)
    task: str | None = None
    label_names: list[str] | None = None
    t0: float = 60.0
    diagnosed_prediction: int | None = None
    confusion_matrix: list[list[int]] | None = None
    top_confusions: list[dict] | None = None
    per_class: list[dict] = field(default_factory=list)
    label_confusion: list[dict] | None = None
    error_cooccurrence: list[list[int]] | None = None
    curves: dict | None = field(default=None, compare=False, repr=False)

    @property
    def n_predictions(self) -> int:
        return len(self.nauc)

    @property
    def counted(self) -> list[int]:
        """Indices of the predictions that count (made within the budget)."""
        late = set(self.late)
        return [i for i in range(self.n_predictions) if i not in late]

    @property
    def duration(self) -> float:
        """Time of the last prediction, as scores.txt's ``Duration`` (0 without predictions)."""
        return self.timestamps[-1] if self.timestamps else 0

    @property
    def final_accuracy(self) -> float | None:
        counted = self.counted
        return self.accuracy[counted[-1]] if self.accuracy is not None and counted else None

    @property
    def ignored_class_names(self) -> list[str] | None:
        if self.label_names is None:
            return None
        return [self.label_names[i] for i in self.ignored_classes]

    def class_name(self, index: int) -> str:
        """The label name of class ``index``, or its number when names are unknown."""
        if self.label_names is not None and index < len(self.label_names):
            return self.label_names[index]
        return f"class {index}"

    def to_json(self) -> dict:
        """A JSON-ready dict (plain floats; None where a value does not exist)."""
        return {
            "task": self.task,
            "alc": _plain(self.alc),
            "final_nauc": _plain(self.final_nauc),
            "final_accuracy": _plain(self.final_accuracy),
            "nauc": [_plain(v) for v in self.nauc],
            "timestamps": [_plain(v) for v in self.timestamps],
            "accuracy": None if self.accuracy is None else [_plain(v) for v in self.accuracy],
            "duration": _plain(self.duration),
            "time_budget": _plain(self.time_budget),
            "t0": _plain(self.t0),
            "n_predictions": self.n_predictions,
            "late": list(self.late),
            "ignored_classes": list(self.ignored_classes),
            "ignored_class_names": self.ignored_class_names,
            "ignored_reasons": list(self.ignored_reasons),
            "auc_per_class": [_plain(v) for v in self.auc_per_class],
            "label_names": self.label_names,
            "diagnosed_prediction": self.diagnosed_prediction,
            "confusion_matrix": self.confusion_matrix,
            "top_confusions": self.top_confusions,
            "per_class": [dict(row) for row in self.per_class],
            "label_confusion": self.label_confusion,
            "error_cooccurrence": self.error_cooccurrence,
        }

    @classmethod
    def from_json(cls, data: dict) -> ScoreResult:
        """Rebuild a result from `to_json` output (e.g. a stored scores.json)."""
        return cls(
            alc=data["alc"],
            final_nauc=data["final_nauc"],
            nauc=list(data["nauc"]),
            timestamps=list(data["timestamps"]),
            time_budget=data["time_budget"],
            accuracy=data.get("accuracy"),
            ignored_classes=list(data.get("ignored_classes", [])),
            ignored_reasons=list(data.get("ignored_reasons", [])),
            auc_per_class=list(data.get("auc_per_class", [])),
            late=list(data.get("late", [])),
            task=data.get("task"),
            label_names=data.get("label_names"),
            t0=data.get("t0", 60.0),
            diagnosed_prediction=data.get("diagnosed_prediction"),
            confusion_matrix=data.get("confusion_matrix"),
            top_confusions=data.get("top_confusions"),
            per_class=list(data.get("per_class") or []),
            label_confusion=data.get("label_confusion"),
            error_cooccurrence=data.get("error_cooccurrence"),
        )


def _plain(value):
    """A Python float (or None) from a NumPy or Python number; NaN becomes None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def write_scores(result: ScoreResult, out_dir: str | Path) -> list[Path]:
    """Write ``scores.json``, the official ``scores.txt`` and, when the result has curves,
    ``curves.json`` into ``out_dir``; return the paths written (in that order: txt, json,
    curves).

    scores.txt has the official keys and number formats (Python's ``str`` of
    floats, lists as Python lists): ``score`` (the ALC), ``Duration`` (time of
    the last prediction), ``timestamps``, ``nauc_scores`` and, only for
    multi-class solutions, ``accuracy``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        f"score: {float(result.alc)}",
        f"Duration: {result.duration}",
        f"timestamps: {[float(t) for t in result.timestamps]}",
        f"nauc_scores: {[float(v) for v in result.nauc]}",
    ]
    if result.accuracy is not None:
        lines.append(f"accuracy: {[float(v) for v in result.accuracy]}")
    txt, js = out / "scores.txt", out / "scores.json"
    txt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    js.write_text(_indented(result.to_json()) + "\n", encoding="utf-8")
    written = [txt, js]
    if result.curves is not None:
        curves = out / "curves.json"
        # One line: the curves are long lists of numbers, for programs rather than eyes.
        curves.write_text(json.dumps(result.curves, separators=(",", ":")) + "\n", "utf-8")
        written.append(curves)
    return written


# A list of numbers (or nulls) with no list inside: written on one line.
_FLAT_LIST = re.compile(
    r"\[\s*((?:-?[0-9][0-9.eE+-]*|null)(?:,\s*(?:-?[0-9][0-9.eE+-]*|null))*)\s*\]"
)


def _indented(data: dict) -> str:
    """JSON indented by key, each list of numbers on one line (a confusion matrix of 1000
    classes would take a million lines otherwise).

    >>> print(_indented({"a": [1, 2], "m": [[1, 0], [0, 1]]}))
    {
     "a": [1, 2],
     "m": [
      [1, 0],
      [0, 1]
     ]
    }
    """
    text = json.dumps(data, indent=1)
    return _FLAT_LIST.sub(lambda m: "[" + ", ".join(re.split(r",\s*", m[1])) + "]", text)


_NP_FLOAT = re.compile(r"np\.float64\(([^()]*)\)")


def read_scores_txt(path: str | Path) -> dict:
    """Read a scores.txt, ours or the official one (whose NumPy 2 lists say ``np.float64(x)``).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "scores.txt"
    >>> _ = p.write_text("score: 0.5\\nnauc_scores: [np.float64(0.5)]\\n")
    >>> read_scores_txt(p)
    {'score': 0.5, 'nauc_scores': [0.5]}
    """
    path = Path(path)
    scores: dict = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        try:
            if not sep:
                raise ValueError
            scores[key.strip()] = ast.literal_eval(_NP_FLOAT.sub(r"\1", value.strip()))
        except (ValueError, SyntaxError):
            raise ScoringError(
                f"{path.name}, line {lineno}: expected 'key: number' or 'key: [numbers]', "
                f"got {line[:60]!r}."
            ) from None
    return scores

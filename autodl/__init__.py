"""AutoDL Self-Service: automatic deep learning for classification datasets in the AutoDL format.

The public API mirrors the command line::

    import autodl
    ds = autodl.open_dataset("digits")                  # folder or zip
    report = autodl.check_dataset("digits")             # problems, summary
    run = autodl.run("digits", "out", time_budget=60)   # train, predict, score, report
    result = autodl.score("digits/digits.solution", "out/predictions")
    model = autodl.load_model("out/model")              # the run's model, later

Names are imported lazily so that ``import autodl`` stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "open_dataset": "autodl.formats.dataset",
    "Dataset": "autodl.formats.dataset",
    "DatasetSpec": "autodl.formats.types",
    "ArraySplit": "autodl.formats.types",
    "DatasetWriter": "autodl.formats.writer",
    "check_dataset": "autodl.formats.check",
    "format_dataset": "autodl.formats.convert",
    "score": "autodl.scoring",
    "ScoreResult": "autodl.scoring",
    "run": "autodl.pipeline",
    "load_model": "autodl.model",
    "Model": "autodl.model",
    "RunReport": "autodl.pipeline",
    "Settings": "autodl.settings",
    "AutoDLError": "autodl.errors",
    "FormatError": "autodl.errors",
    "ScoringError": "autodl.errors",
    "IngestionError": "autodl.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from autodl.errors import AutoDLError, FormatError, IngestionError, ScoringError  # noqa: F401
    from autodl.formats.check import check_dataset  # noqa: F401
    from autodl.formats.convert import format_dataset  # noqa: F401
    from autodl.formats.dataset import Dataset, open_dataset  # noqa: F401
    from autodl.formats.types import ArraySplit, DatasetSpec  # noqa: F401
    from autodl.formats.writer import DatasetWriter  # noqa: F401
    from autodl.model import Model, load_model  # noqa: F401
    from autodl.pipeline import RunReport, run  # noqa: F401
    from autodl.scoring import ScoreResult, score  # noqa: F401
    from autodl.settings import Settings  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'autodl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

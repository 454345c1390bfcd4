"""Our AutoDL solution: `run` yields better and better predictions within a `Budget`.

>>> from autodl.engine import Budget, run
>>> # for p in run(ds.train, ds.test, ds.unlabelled, Budget(60)): ...

The domain plans (`tabular`, `image`, `text`, `speech`, `video`) list `Learner`s,
cheapest first; `loop` schedules them. See DESIGN.md, section 3; the contract
ingestion runs it by, and the engine's one name, are in `protocol`.

Names are imported lazily: `autodl.engine.protocol` (which settings, ingestion and
the service import for `DEFAULT_ENGINE`) must not load the learners' libraries
(importing the loop takes seconds); the engine's process loads them when it looks
``run`` up, before the clock starts.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

_EXPORTS = {
    "Budget": "autodl.engine.budget",
    "Learner": "autodl.engine.learner",
    "Prediction": "autodl.engine.loop",
    "run": "autodl.engine.loop",
    "warm_up": "autodl.engine.warm",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from autodl.engine.budget import Budget  # noqa: F401
    from autodl.engine.learner import Learner  # noqa: F401
    from autodl.engine.loop import Prediction, run  # noqa: F401
    from autodl.engine.warm import warm_up  # noqa: F401


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'autodl.engine' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

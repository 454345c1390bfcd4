"""The engine contract: what ingestion runs in its child process, and the one engine name.

An engine is named ``"module:function"`` (`DEFAULT_ENGINE`, ``AUTODL_ENGINE``, the
``engine=`` of `autodl.ingestion.ingest` and `autodl.pipeline.run`). The function
follows `Engine`: a generator of predictions (`autodl.engine.loop.Prediction`). Its
module may also define ``warm_up`` following `WarmUp`: ingestion calls it before the
clock starts with the dataset's metadata only, as the official ingestion program
constructs ``Model(metadata)`` untimed.

Threads are an argument, not an environment variable read back from the libraries:
ingestion passes the job's count (`autodl.pipeline.job_threads`) to both calls; None
(or 0) means every core the process may use. The engine applies it to its libraries
itself (ours: `autodl.engine.loop.run`, torch and threadpoolctl); the engine's process
sizes the native pools from the same count before they load
(`autodl._engine_process`).

`DEFAULT_ENGINE` is the engine `autodl run`, the Python API and the service run unless
told otherwise. It is declared once, in `autodl.settings` beside the other defaults (the
foundation layer may not import the engine) and re-exported here. This module imports
nothing heavy: ingestion, the pipeline and the service name the engine through it
without loading one.

>>> mismatch(lambda train, test, unlabelled, budget, **kw: iter(()))
>>> print(mismatch(lambda train, test, unlabelled, budget, *, seed=0, log=None: iter(())))
<lambda>(train, test, unlabelled, budget, *, seed=0, log=None) does not follow Engine: got an unexpected keyword argument 'threads'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

from autodl.settings import DEFAULT_ENGINE  # noqa: F401 - the one name, re-exported

if TYPE_CHECKING:  # pragma: no cover
    from autodl.engine.budget import Budget
    from autodl.engine.loop import Prediction
    from autodl.formats.types import DatasetSpec, Split


class Engine(Protocol):
    """``run(train, test, unlabelled, budget, *, seed, log, threads)``.

    Yields better and better predictions until ``budget`` runs out or it has converged
    (DESIGN.md, section 3); ``log`` takes one line for the run's log; ``threads`` caps
    the threads of its native libraries (None: every core).
    """

    def __call__(
        self,
        train: Split,
        test: Split,
        unlabelled: Split | None,
        budget: Budget,
        *,
        seed: int = 0,
        log: Callable[[str], None] | None = None,
        threads: int | None = None,
    ) -> Iterator[Prediction]: ...


class WarmUp(Protocol):
    """``warm_up(spec, *, seed, threads)``, optional, untimed: it sees the metadata and no
    data; it returns None, or a note for the run's log (it never stops the run)."""

    def __call__(
        self, spec: DatasetSpec, *, seed: int = 0, threads: int | None = None
    ) -> str | None: ...


def mismatch(fn: Callable, contract: type = Engine) -> str | None:
    """None when ``fn`` accepts the call ``contract`` (`Engine` or `WarmUp`) describes,
    else why not. Positional parameters of the contract are passed by position, the
    keyword-only ones by keyword, as ingestion calls them."""
    import inspect  # here, not at the top: settings imports this module at start-up

    args, kwargs = [], {}
    for p in list(inspect.signature(contract.__call__).parameters.values())[1:]:
        if p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = p.default
        else:
            args.append(None)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as e:
        return f"{fn!r} has no signature ({e})"
    try:
        sig.bind(*args, **kwargs)
    except TypeError as e:
        name = getattr(fn, "__name__", repr(fn))
        return f"{name}{sig} does not follow {contract.__name__}: {e}"
    return None


def load(name: str) -> tuple[Engine, WarmUp | None]:
    """The engine ``"module:function"`` names (``function`` defaults to ``run``), and its
    module's ``warm_up`` if it has one. Raises TypeError when either does not follow
    its contract (before the clock, with the reason)."""
    import importlib

    module_name, _, attr = name.partition(":")
    module = importlib.import_module(module_name)
    run = getattr(module, attr or "run")
    warm_up = getattr(module, "warm_up", None)
    for fn, contract in ((run, Engine), (warm_up, WarmUp)):
        if fn is not None and (why := mismatch(fn, contract)):
            raise TypeError(f"{name}: {why}")
    return run, warm_up

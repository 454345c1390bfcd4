"""The engine contract (`autodl.engine.protocol`): our engine and every test engine follow
it, a stale one is refused with its reason, and the engine is named in one place."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from autodl.engine import protocol
from autodl.engine.protocol import DEFAULT_ENGINE, Engine, WarmUp, load, mismatch

ROOT = Path(__file__).resolve().parents[2]


def _engines(module_name: str) -> list:
    """The public generator functions a test module offers as engines."""
    module = __import__(module_name, fromlist=["_"])
    return [
        fn
        for name, fn in vars(module).items()
        if inspect.isgeneratorfunction(fn) and not name.startswith("_")
    ]


def test_our_engine_and_its_warm_up_follow_the_contract():
    run, warm_up = load(DEFAULT_ENGINE)
    assert inspect.isgeneratorfunction(run) and warm_up is not None
    assert mismatch(run, Engine) is None and mismatch(warm_up, WarmUp) is None
    from autodl.engine import loop

    assert mismatch(loop.run, Engine) is None  # the cold engine of bench/first_prediction.py


@pytest.mark.parametrize("module", ["tests.ingestion.engines", "tests.service.engines"])
def test_every_test_engine_follows_the_contract(module):
    engines = _engines(module)
    assert len(engines) >= 1
    for fn in engines:
        assert mismatch(fn, Engine) is None, fn.__name__


def test_the_warm_test_engine_follows_the_contract():
    run, warm_up = load("tests.ingestion.warm_engine:run")
    assert mismatch(run, Engine) is None and mismatch(warm_up, WarmUp) is None


def test_an_engine_without_the_threads_argument_is_refused_with_its_reason(tmp_path, monkeypatch):
    (tmp_path / "stale_engine.py").write_text(
        "def run(train, test, unlabelled, budget, *, seed=0, log=None):\n    yield from ()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TypeError, match="does not follow Engine: .*'threads'"):
        load("stale_engine:run")
    assert "positional" in mismatch(lambda train, test: iter(()), Engine)
    assert "'threads'" in mismatch(lambda spec, seed=0: None, WarmUp)


def test_the_contract_module_loads_no_engine():
    """Settings, ingestion and the service import it for the name: it must stay cheap."""
    code = (
        "import sys, autodl.settings, autodl.ingestion, autodl.pipeline, autodl.engine.protocol;"
        "print(sorted(m for m in sys.modules if m.startswith('autodl.engine.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "['autodl.engine.protocol']"


def test_the_engine_is_named_once():
    """Declared with the settings' defaults (the foundation may not import the engine);
    the contract module re-exports that very constant."""
    from autodl import settings

    assert protocol.DEFAULT_ENGINE is settings.DEFAULT_ENGINE == settings.Settings().engine
    named = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "autodl").rglob("*.py"))
        if repr(DEFAULT_ENGINE) in path.read_text(encoding="utf-8")
        or f'"{DEFAULT_ENGINE}"' in path.read_text(encoding="utf-8")
    ]
    assert named == ["autodl/settings.py"]

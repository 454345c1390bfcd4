"""The layers of DESIGN.md, enforced on the import graph of every module under autodl/.

Imports flow one way::

    foundation (errors, settings, _units, _csv)
      <- formats, scoring            (each alone: neither imports the other)
      <- engine                      (formats, and scoring's public modules)
      <- ingestion                   (and its private top-level helpers)
      <- model                       (beside ingestion: a saved model used later)
      <- pipeline
      <- autodl (the public API, autodl/__init__.py)
      <- service <- cli

Every import counts, at any depth (inside a function too): a deferred import is
still a dependency. Private things stay home:

- a private module ``P._m`` is imported only from inside its package ``P`` (the
  top-level ``autodl._units`` & co. are helpers of the whole package; ``autodl.
  scoring._score`` is scoring's own);
- a private name ``_x`` is imported from another module only out of a private
  module of the same package and layer (``from autodl._engine_process import
  _spawn`` in ingestion); a public module's private names are its own.

There are no import cycles between modules at module level, and none through
imports deferred into functions either: those import fine, but hide a cycle of
dependencies all the same. Imports under ``if TYPE_CHECKING:`` never run; they
count for the layers, not for cycles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Each layer unit and the modules it holds (a name and everything below it).
#: "autodl" alone is the package's __init__ (the public API), not all of autodl.
UNITS: dict[str, tuple[str, ...]] = {
    "foundation": ("autodl.errors", "autodl.settings", "autodl._units", "autodl._csv"),
    "formats": ("autodl.formats",),
    "scoring": ("autodl.scoring",),
    "engine": ("autodl.engine",),
    "ingestion": (
        "autodl.ingestion",
        "autodl._engine_process",
        "autodl._confine",
        "autodl._load",
        "autodl._recorder",
        "autodl._checkproc",
    ),
    "model": ("autodl.model",),
    "pipeline": ("autodl.pipeline", "autodl._examples"),
    "api": ("autodl",),
    "service": ("autodl.service",),
    "cli": ("autodl.cli", "autodl.__main__"),
}

_BELOW_SERVICE = (
    "foundation",
    "formats",
    "scoring",
    "engine",
    "ingestion",
    "pipeline",
    "model",
    "api",
)

#: The units each unit may import besides itself: the rules, as data.
MAY_IMPORT: dict[str, set[str]] = {
    "foundation": set(),
    "formats": {"foundation"},
    "scoring": {"foundation"},
    "engine": {"foundation", "formats", "scoring"},
    "ingestion": {"foundation", "formats", "scoring", "engine"},
    # a run's saved model, used later: beside ingestion (neither imports the other)
    "model": {"foundation", "formats", "engine"},
    "pipeline": {"foundation", "formats", "scoring", "engine", "ingestion"},
    "api": {"foundation", "formats", "scoring", "engine", "ingestion", "pipeline", "model"},
    "service": {*_BELOW_SERVICE},
    "cli": {*_BELOW_SERVICE, "service"},
}

#: Pairs of packages inside one unit that must not import each other: the web pages
#: and the JSON API are two faces of the same functions underneath.
APART: list[tuple[str, str]] = [
    ("autodl.service.pages", "autodl.service.api"),
    ("autodl.service.api", "autodl.service.pages"),
]

#: The one message template of every rule.
MESSAGE = "{file}:{line}: {importer} imports {imported}: {why}"


@dataclass(frozen=True)
class Import:
    importer: str  # module name
    file: str  # path from the repository root
    line: int
    imported: str  # the module imported (a submodule when the name is one)
    name: str | None  # the name taken from it (``from m import name``), if not a module
    when: str  # "module" (runs on import), "function" (deferred) or "typing" (never runs)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / "autodl").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = _modules()


def _when(tree: ast.Module) -> dict[int, str]:
    """``when`` of the import nodes that do not run on import, by node id: "function"
    inside a function, "typing" under ``if TYPE_CHECKING:`` (which wins)."""
    out: dict[int, str] = {}
    for kind, test in (("function", _is_function), ("typing", _is_typing_block)):
        for node in ast.walk(tree):
            for part in test(node):
                for n in ast.walk(part):
                    if isinstance(n, ast.Import | ast.ImportFrom):
                        out[id(n)] = kind
    return out


def _is_function(node: ast.AST) -> list[ast.AST]:
    return [node] if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) else []


def _is_typing_block(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
        return list(node.body)
    return []


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    whens = _when(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    file = path.relative_to(ROOT).as_posix()
    out = []
    for node in ast.walk(tree):
        here = dict(
            importer=module,
            file=file,
            line=getattr(node, "lineno", 0),
            when=whens.get(id(node), "module"),
        )
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "autodl":
                    out.append(Import(**here, imported=alias.name, name=None))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != "autodl":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if sub in MODULES:
                    out.append(Import(**here, imported=sub, name=None))
                else:
                    out.append(Import(**here, imported=source, name=alias.name))
    return out


IMPORTS = [i for module, path in MODULES.items() for i in _imports(module, path)]


def unit_of(module: str) -> str | None:
    best, unit = -1, None
    for name, prefixes in UNITS.items():
        for prefix in prefixes:
            exact_only = prefix == "autodl"
            if module == prefix or (not exact_only and module.startswith(prefix + ".")):
                if len(prefix) > best:
                    best, unit = len(prefix), name
    return unit


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _violations(i: Import) -> list[str]:
    """Why ``i`` breaks the rules (empty when it does not)."""
    why = []
    mine, theirs = unit_of(i.importer), unit_of(i.imported)
    known = mine is not None and theirs is not None  # else test_every_module_... says so
    if known and mine != theirs and theirs not in MAY_IMPORT[mine]:
        why.append(f"the {mine} layer may not import the {theirs} layer")
    parts = i.imported.split(".")
    for k, part in enumerate(parts):
        owner = ".".join(parts[:k])
        if _private(part) and not _inside(i.importer, owner):
            why.append(f"{'.'.join(parts[: k + 1])} is private to {owner}")
            break
    if i.name is not None and _private(i.name) and i.imported != i.importer:
        package = i.imported.rpartition(".")[0]
        if not _private(parts[-1]):
            why.append(f"{i.name} is private to {i.imported}")
        elif mine != theirs or not _inside(i.importer, package):
            why.append(f"{i.name} is private to the {theirs} layer ({i.imported})")
    for a, b in APART:
        if _inside(i.importer, a) and _inside(i.imported, b):
            why.append(f"{a} and {b} are kept apart")
    return why


def test_every_module_belongs_to_a_layer():
    assert [m for m in MODULES if unit_of(m) is None] == [], "add it to UNITS"


@pytest.mark.parametrize(
    ("importer", "imported", "name", "why"),
    [
        ("autodl.engine.loop", "autodl.scoring._score", None, "private to autodl.scoring"),
        ("autodl.engine.loop", "autodl.scoring.metrics", "auc", None),
        ("autodl.formats.dataset", "autodl.engine.loop", None, "formats layer may not import"),
        ("autodl.scoring.curve", "autodl.formats.dataset", None, "scoring layer may not import"),
        ("autodl.settings", "autodl.formats.limits", None, "foundation layer may not import"),
        ("autodl.ingestion", "autodl.pipeline", None, "ingestion layer may not import"),
        ("autodl.pipeline", "autodl.service.app", None, "pipeline layer may not import"),
        ("autodl.service.app", "autodl.cli", None, "service layer may not import the cli"),
        ("autodl.service.pages.jobs", "autodl.service.api.jobs", None, "kept apart"),
        ("autodl.service.app", "autodl.ingestion", "_Recorder", "private to autodl.ingestion"),
        ("autodl.cli.run", "autodl.cli.common", "_helper", "private to autodl.cli.common"),
        (
            "autodl.service.app",
            "autodl._engine_process",
            "_spawn",
            "private to the ingestion layer",
        ),
        ("autodl.ingestion", "autodl._engine_process", "_spawn", None),
        ("autodl.formats.archive", "autodl._units", "human_bytes", None),
        ("autodl.formats.check", "autodl.formats._scan", "SplitScan", None),
        ("autodl.cli.run", "autodl.pipeline", "run", None),
    ],
)
def test_the_rules_catch_what_they_are_for(importer, imported, name, why):
    found = _violations(Import(importer, "x.py", 1, imported, name, "function"))
    assert (why is None and found == []) or any(why in w for w in found), found


def test_imports_follow_the_layers():
    found = [
        MESSAGE.format(file=i.file, line=i.line, importer=i.importer, imported=i.imported, why=w)
        for i in IMPORTS
        for w in _violations(i)
    ]
    assert found == [], "\n" + "\n".join(found)


def _cycles(whens: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), over the
    imports whose ``when`` is in ``whens``."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for i in IMPORTS:
        if i.when in whens and i.imported in MODULES and i.imported != i.importer:
            graph[i.importer].add(i.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def _describe(cycles: list[list[str]], whens: set[str]) -> str:
    lines = []
    for component in cycles:
        lines.append("cycle: " + ", ".join(component))
        for i in IMPORTS:
            if i.importer in component and i.imported in component and i.imported != i.importer:
                if i.when in whens:
                    why = f"at {i.when} level"
                    line = "  " + MESSAGE.format(**vars(i) | {"why": why})
                    if line not in lines:  # one line per statement, not per name
                        lines.append(line)
    return "\n".join(lines)


def test_no_import_cycles():
    cycles = _cycles({"module"})
    assert cycles == [], "\n" + _describe(cycles, {"module"})


def test_no_cycle_through_deferred_imports():
    cycles = _cycles({"module", "function"})
    assert cycles == [], "\n" + _describe(cycles, {"module", "function"})

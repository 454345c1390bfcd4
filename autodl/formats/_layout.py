"""Find the parts of a dataset in a folder or a zip archive.

Accepted layouts (``<name>`` is the dataset name):

- the dataset root folder ``<name>/`` holding ``<name>.data/`` and ``<name>.solution``;
- the ``<name>.data`` folder itself (the solution is looked up beside it);
- a zip with ``<name>.data/`` and ``<name>.solution`` (and ``metadata``) at its
  root, as the public service wants, or inside one top-level folder;
- the official zip pair ``<name>.data.zip`` (+ ``<name>.solution.zip`` beside
  it), given as the ``.data.zip`` file or as the folder holding the pair.

The unlabelled part is ``<name>.data/unlabelled/`` or ``<root>/unlabelled/``
(where ``format_unseen.py`` writes it). Zip members are read in place through
``zipfile.Path``; nothing is extracted. Every zip opened here (the one given, a
``.data.zip`` found in a folder, a ``.solution.zip``) first passes the archive
checks of an upload (`archive.check_zip`: entries, paths, links, encryption,
size, ratio), so a dataset folder cannot smuggle in an archive that an upload of
the same archive would be refused for.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import FormatError
from autodl.formats import archive

Node = Any  # pathlib.Path or zipfile.Path: name, is_dir, is_file, iterdir, /, open


@dataclass
class Layout:
    """Where each part of a dataset lives (None: not found)."""

    name: str
    data_dir: Node
    solution: Node | None = None
    unlabelled: Node | None = None
    label_file: Node | None = None
    archives: list[zipfile.ZipFile] = field(default_factory=list)

    def close(self) -> None:
        for z in self.archives:
            z.close()


def _children(node: Node) -> list[Node]:
    try:
        return sorted(node.iterdir(), key=lambda p: p.name) if node.is_dir() else []
    except OSError:
        return []


def _is_data_dir(node: Node) -> bool:
    return node.is_dir() and ((node / "train").is_dir() or (node / "test").is_dir())


def _stem(name: str) -> str:
    return name[: -len(".data")] if name.endswith(".data") else name


def _find_data_dir(root: Node) -> Node | None:
    """``root`` itself, else a ``*.data`` folder at depth 1 or 2 (one top-level folder)."""
    if _is_data_dir(root):
        return root
    level = [root]
    for _ in range(2):
        level = [c for n in level for c in _children(n) if c.is_dir()]
        found = [c for c in level if c.name.endswith(".data") and _is_data_dir(c)]
        if found:
            # Prefer <x>/<x>.data when a zip holds several folders.
            for c in found:
                if _stem(c.name) == _parent_name(c):
                    return c
            return found[0]
        found = [c for c in level if _is_data_dir(c)]
        if len(found) == 1:
            return found[0]
    return None


def _parent_name(node: Node) -> str:
    try:
        return node.parent.name
    except (AttributeError, ValueError):
        return ""


def _first_file(dirs: list[Node], names: list[str]) -> Node | None:
    for d in dirs:
        for n in names:
            p = d / n
            if p.is_file():
                return p
    return None


def _solution_in_zip(path: Path, name: str, archives: list[zipfile.ZipFile]) -> Node | None:
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    z = archive.open_zip(path)
    members = [m for m in z.namelist() if m.endswith(".solution")]
    pick = [m for m in members if m.rsplit("/", 1)[-1] == f"{name}.solution"] or members[:1]
    if not pick:
        z.close()
        return None
    archives.append(z)
    return zipfile.Path(z, pick[0])


def _complete(
    name: str, data_dir: Node, parents: list[Node], disk_dirs: list[Path], archives
) -> Layout:
    dirs = parents + [d for d in disk_dirs if d not in parents]
    solution = _first_file(dirs, [f"{name}.solution"])
    if solution is None:
        for d in dirs:
            sols = [c for c in _children(d) if c.name.endswith(".solution") and c.is_file()]
            if len(sols) == 1:
                solution = sols[0]
                break
    if solution is None:
        for d in disk_dirs:
            solution = _solution_in_zip(d / f"{name}.solution.zip", name, archives)
            if solution is not None:
                break
    unlabelled = None
    for cand in [data_dir / "unlabelled"] + [d / "unlabelled" for d in dirs]:
        if cand.is_dir():
            unlabelled = cand
            break
    label_file = _first_file(dirs, [f"{name}_label.name", "label.name"])
    return Layout(name, data_dir, solution, unlabelled, label_file, archives)


def _not_found(path: Path, inside: str) -> FormatError:
    return FormatError(
        f"{path}: no dataset found {inside} (expected a '<name>.data' folder holding train/ and test/).",
        "Give the dataset folder, its <name>.data folder or a zip of them.",
        file=str(path),
    )


def _open_zip(path: Path, archives: list[zipfile.ZipFile]) -> zipfile.ZipFile:
    z = archive.open_zip(path, file=str(path))
    archives.append(z)
    return z


def locate(path: str | Path) -> Layout:
    """Find the dataset at ``path`` (a folder or a zip). Raises `FormatError`."""
    path = Path(path)
    archives: list[zipfile.ZipFile] = []
    try:
        if not path.exists():
            raise FormatError(f"{path}: no such file or folder.", "Check the path.", file=str(path))
        if path.is_file():
            z = _open_zip(path, archives)
            root = zipfile.Path(z)
            data_dir = _find_data_dir(root)
            if data_dir is None:
                raise _not_found(path, "in the archive")
            name = _stem(data_dir.name) if data_dir.name.endswith(".data") else path.stem
            parents = [data_dir.parent] if data_dir.at else []
            return _complete(name, data_dir, parents, [path.parent], archives)
        data_dir = _find_data_dir(path)
        if data_dir is not None:
            if data_dir.name.endswith(".data"):
                name = _stem(data_dir.name)
            else:
                name = data_dir.name
            parent = data_dir.parent
            return _complete(name, data_dir, [parent], [parent], archives)
        zips = sorted(path.glob("*.data.zip"))
        if len(zips) == 1:
            z = _open_zip(zips[0], archives)
            data_dir = _find_data_dir(zipfile.Path(z))
            if data_dir is not None:
                return _complete(_stem(data_dir.name), data_dir, [], [path], archives)
        raise _not_found(path, "in the folder")
    except BaseException:
        for z in archives:
            z.close()
        raise

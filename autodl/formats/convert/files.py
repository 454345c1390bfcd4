"""Folders of files: find the files, their labels and their split.

Layouts accepted (the first that matches):

- ``labels.csv`` at the top: a file column (``file``, ``filename``, ``path`` …,
  else the first) and a label column (``--label``, else ``labels``, ``label``,
  ``class`` …, else the second) whose labels are separated by spaces (or
  ``--label-separator``); several ``--label`` columns of 0/1 are one class each.
  Integer labels with a ``label.name`` file beside (the official file format)
  are named from it. A ``split``/``subset`` column of train/test values (or
  ``--split-column``) gives the split;
- ``train/`` and ``test/`` folders (and optionally ``unlabelled/``), each with
  one folder per class;
- one folder per class (files may sit deeper inside it).

A CSV listing the files can also be INPUT itself (``train.csv`` beside an
``images/`` folder): it is read as a ``labels.csv`` in its own folder, and a
file listed by its bare name is found in any subfolder when the name is unique.

Hidden files and folders, and files of other kinds, are left out (and counted).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from autodl.errors import FormatError
from autodl.formats.convert import audio, image, text, video
from autodl.formats.convert._items import Bad, BadInput, Decoded
from autodl.formats.convert.labels import TEST, TRAIN, UNLABELLED, flag, natural_key, split_word
from autodl.formats.convert.options import FormatOptions

KINDS = {
    "image": image.EXTENSIONS,
    "audio": audio.EXTENSIONS,
    "video": video.EXTENSIONS,
    "text": (".txt",),
}
KIND_OF_DOMAIN = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "text": "text",
    "series": "audio",
}
_FILE_COLUMNS = (
    "file",
    "filename",
    "file_name",
    "fname",
    "path",
    "filepath",
    "name",
    "image",
    "audio",
    "video",
)
_LABEL_COLUMNS = ("labels", "label", "class", "classes", "category", "target", "tags", "y")
_SPLIT_COLUMNS = ("split", "subset")


@dataclass
class FileItem:
    """One input file: where it is, its class names, its part (-2: to decide) and any problem."""

    path: Path
    source: str
    labels: list[str] = field(default_factory=list)
    part: int = -2
    problem: str | None = None


@dataclass
class FileSource:
    """The files of a folder input, ready to split and convert."""

    root: Path
    kind: str
    items: list[FileItem]
    layout: str
    explicit_split: bool = False
    label_order: list[str] | None = None
    warnings: list[str] = field(default_factory=list)


def kind_of(path: Path) -> str | None:
    ext = path.suffix.lower()
    return next((k for k, exts in KINDS.items() if ext in exts), None)


def walk(root: Path, exclude: list[Path]) -> list[Path]:
    """Every visible file under ``root`` (not inside ``exclude``), in natural path order."""
    skip = {p.resolve() for p in exclude}
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [
            d for d in dirnames if not d.startswith(".") and (here / d).resolve() not in skip
        ]
        out += [here / f for f in filenames if not f.startswith(".")]
    return sorted(out, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def detect_kind(root: Path, files: list[Path], domain: str | None) -> str:
    """The kind of media to convert: from ``--domain``, else the kind most files are."""
    counts: dict[str, int] = {}
    for f in files:
        k = kind_of(f)
        if k:
            counts[k] = counts.get(k, 0) + 1
    if domain is not None:
        if domain not in KIND_OF_DOMAIN:
            raise FormatError(
                f"{root} is a folder of files; --domain {domain} needs a CSV or Parquet table.",
                "Give the table file as INPUT.",
            )
        kind = KIND_OF_DOMAIN[domain]
        if not counts.get(kind):
            raise FormatError(
                f"{root}: no {kind} files found ({', '.join(KINDS[kind])}).",
                "Check INPUT and --domain.",
            )
        return kind
    if not counts:
        raise FormatError(
            f"{root}: no image, audio, video or .txt files found.",
            "INPUT is a CSV/Parquet file or a folder of class folders (or files plus labels.csv).",
        )
    best = max(counts, key=lambda k: counts[k])
    if counts[best] < 0.9 * sum(counts.values()):
        found = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        raise FormatError(
            f"{root} holds several kinds of files ({found}).", "Choose one with --domain."
        )
    return best


def _column(
    header: list[str],
    wanted: str | None,
    names: tuple[str, ...],
    default: int | None,
    what: str,
    where: Path,
) -> int | None:
    lower = [h.strip().lower() for h in header]
    if wanted is not None:
        if wanted in header:
            return header.index(wanted)
        if wanted.lower() in lower:
            return lower.index(wanted.lower())
        raise FormatError(
            f"{where}: no column {wanted!r} (columns: {', '.join(header)}).",
            f"Name the {what} column as it is in the header.",
        )
    for n in names:
        if n in lower:
            return lower.index(n)
    return default


def _label_file(root: Path) -> Path | None:
    return next((root / n for n in ("labels.csv", "labels.tsv") if (root / n).is_file()), None)


def _read_labels_csv(
    root: Path, path: Path, opts: FormatOptions, src: FileSource, media: list[Path]
) -> None:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f, delimiter="\t" if path.suffix == ".tsv" else ",") if r]
    if not rows:
        raise FormatError(f"{path} is empty.", "Write a header (file,labels) and one row per file.")
    header, rows = rows[0], rows[1:]
    fcol = _column(header, None, _FILE_COLUMNS, 0, "file", path)
    if len(opts.labels) > 1:
        lcols = [_column(header, n, (), None, "label", path) for n in opts.labels]
    else:
        lcols = [
            _column(
                header, opts.labels[0] if opts.labels else None, _LABEL_COLUMNS, 1, "label", path
            )
        ]
    scol = _column(header, opts.split_column, _SPLIT_COLUMNS, None, "split", path)
    if (
        opts.split_column is None
        and scol is not None
        and not all(split_word(r[scol]) is not None for r in rows if scol < len(r))
    ):
        scol = None  # a column named 'split' that is not a train/test split
    src.explicit_split = scol is not None
    by_name: dict[str, Path | None] | None = None
    for n, r in enumerate(rows, 2):
        rel = r[fcol].strip() if fcol < len(r) else ""
        item = FileItem(root / rel, rel)
        src.items.append(item)
        if not rel or any(c is not None and c >= len(r) for c in lcols + [scol]):
            item.problem = f"{path.name} line {n} has {len(r)} fields, the header {len(header)}"
            continue
        if not item.path.is_file():
            by_name = by_name if by_name is not None else _by_name(media)
            found = by_name.get(Path(rel).name)  # listed by bare name, kept in a subfolder
            if found is not None:
                item.path, item.source = found, found.relative_to(root).as_posix()
            else:
                item.problem = f"listed in {path.name} (line {n}) but not found"
        if len(lcols) > 1:
            flags = [flag(r[c]) for c in lcols]
            if None in flags:
                item.problem = (
                    f"{path.name} line {n}: a class column holds something other than 0/1"
                )
            item.labels = [header[c] for c, on in zip(lcols, flags, strict=True) if on]
        else:
            assert lcols[0] is not None
            item.labels = (
                r[lcols[0]].split(opts.label_separator)
                if opts.label_separator
                else r[lcols[0]].split()
            )
            item.labels = [s.strip() for s in item.labels if s.strip()]
        if scol is not None:
            item.part = split_word(r[scol]) if split_word(r[scol]) is not None else -2
            if item.part == -2:
                item.problem = (
                    f"{path.name} line {n}: split {r[scol]!r} is not train, test or unlabelled"
                )
    names_file = root / "label.name"
    if names_file.is_file() and len(lcols) == 1:
        names = [
            s.strip() for s in names_file.read_text(encoding="utf-8").splitlines() if s.strip()
        ]
        used = {lab for it in src.items for lab in it.labels}
        if used and all(u.isdigit() and int(u) < len(names) for u in used):
            for it in src.items:
                it.labels = [names[int(u)] for u in it.labels]
            src.label_order = names


def _by_name(media: list[Path]) -> dict[str, Path | None]:
    """Media files by bare name (None when a name is not unique)."""
    names: dict[str, Path | None] = {}
    for f in media:
        names[f.name] = None if f.name in names else f
    return names


def scan_folder(
    root: Path, opts: FormatOptions, exclude: list[Path], labels_file: Path | None = None
) -> FileSource:
    """The labelled files of a folder input (see the module doc for the layouts);
    ``labels_file``: a table listing the files, given as INPUT (its folder is the root)."""
    files = walk(root, exclude)
    kind = detect_kind(root, files, opts.domain)
    src = FileSource(root, kind, [], "class folders")
    media = [f for f in files if kind_of(f) == kind]
    labels_csv = labels_file or _label_file(root)
    tops = {p.name.lower(): p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    if labels_csv is not None:
        src.layout = labels_csv.name
        _read_labels_csv(root, labels_csv, opts, src, media)
        listed = {it.path.resolve() for it in src.items}
        left = sum(1 for f in media if f.resolve() not in listed)
        if left:
            src.warnings.append(
                f"{left} {kind} file(s) not listed in {labels_csv.name} were left out"
            )
        return src
    parts = {"train": TRAIN, "test": TEST, "unlabelled": UNLABELLED, "unlabeled": UNLABELLED}
    split_layout = "train" in tops and "test" in tops
    if split_layout:
        src.layout, src.explicit_split = "train/ and test/ folders", True
    for f in media:
        rel = f.relative_to(root).parts
        part = parts.get(rel[0].lower()) if split_layout else -2
        if part == UNLABELLED:
            src.items.append(FileItem(f, "/".join(rel), [], UNLABELLED))
            continue
        if split_layout:
            rel = rel[1:] if part is not None else ()
        if len(rel) < 2:
            continue
        src.items.append(
            FileItem(f, f.relative_to(root).as_posix(), [rel[0]], part if part is not None else -2)
        )
    outside = len(media) - len(src.items)
    if outside:
        where = "in train/, test/ or unlabelled/" if split_layout else "in a class folder"
        src.warnings.append(f"{outside} {kind} file(s) not {where} were left out")
    if not src.items:
        raise FormatError(
            f"{root}: no {kind} file is inside a class folder.",
            "Put the files in one folder per class, or list them in a labels.csv (file,labels).",
        )
    return src


def scan_unlabelled(path: Path, kind: str, exclude: list[Path]) -> list[FileItem]:
    """The files of an ``--unlabelled`` folder (or one file), in natural path order."""
    if path.is_file():
        return [FileItem(path, path.name, [], UNLABELLED)]
    files = [f for f in walk(path, exclude) if kind_of(f) == kind]
    if not files:
        raise FormatError(
            f"--unlabelled {path}: no {kind} files found.",
            f"Give a folder of {kind} files like the labelled ones.",
        )
    return [FileItem(f, f.relative_to(path).as_posix(), [], UNLABELLED) for f in files]


def decode_item(task: tuple[str, str, FormatOptions]) -> Decoded | Bad:
    """Decode one file (runs in a worker process): the record's data, or why not."""
    kind, path, opts = task
    try:
        if kind == "image":
            return image.decode(Path(path), opts.max_size)
        if kind == "audio":
            return audio.decode(Path(path), opts.sample_rate, raw=opts.domain == "series")
        if kind == "video":
            return video.decode(Path(path), opts.fps, opts.max_frames, opts.max_size)
        return text.decode(Path(path), opts.char_tokens)
    except BadInput as e:
        return Bad(str(e))
    except MemoryError:
        return Bad("too large to decode in memory")
    except Exception as e:  # noqa: BLE001 - one odd file must not end the whole conversion
        return Bad(f"could not be converted ({type(e).__name__}: {e})")

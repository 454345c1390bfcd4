"""New data for a saved model, read in batches and checked against the model's spec.

`open_input(model, path, split)` takes:

- an **AutoDL dataset** (folder or zip): its ``split`` (default: unlabelled when it has
  records, else test); rows are named by record id. Its domain, channels and fixed
  sizes (and, for text, its vocabulary) must be the model's;
- a **table** (CSV, TSV, Parquet): one example per row, named by row number (1 for
  the first data row, under the header; messages add the file's line). Tabular: the
  columns by name as the run's ``autodl format`` manifest lists them (extra columns,
  the label column among them, are ignored), or, for a dataset without a manifest,
  exactly as many columns as the model has features. Text: the text column the
  manifest names (else the one column of text); a text with no word of the model's
  vocabulary (or no word at all) is an empty document, predicted as such;
- **raw files**: a folder (searched recursively), a zip of one, or one file, of the
  model's kind (images, audio, video, .txt), named by their path relative to the
  input. They are converted as ``autodl format`` converted the training data (its
  options from the manifest: image size, sample rate, frames per second, tokens),
  then as the run loaded them (images shrunk to the run's ``max_side``). Files of
  another kind are left out and listed in ``Source.notes``; a file that does not
  decode is an error, or, with ``skip_bad``, left out and listed in ``Source.skipped``.

A mismatch is a `FormatError` naming the input (``name``, else the path as given; the
service may pass the upload's name), the file (and record, row or column) and what the
model expects. Memory: one batch of examples at a time, or, for a dataset split of
fixed-size examples under ``BULK_BYTES`` decoded, or of DENSE examples of varying length
(texts, series) whose files are under half of it, the split (read in one pass).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autodl.errors import FormatError

if TYPE_CHECKING:  # pragma: no cover
    from autodl.model.saved import Model

SPLITS = ("unlabelled", "test", "train")
#: a dataset split whose decoded examples fit in this is read in one pass (as the run
#: reads it: bulk decoding on every core), then predicted a batch at a time
BULK_BYTES = 256 * 1024 * 1024
#: raw files of each domain (the kinds of `autodl.formats.convert.files`)
KIND_OF_DOMAIN = {"image": "image", "speech": "audio", "video": "video", "text": "text"}


class BadFile(FormatError):
    """A raw file of the input that does not decode (``skip_bad`` leaves such files out)."""


@dataclass
class Source:
    """Examples to predict: ``total`` of them, ``batches(n)`` yields (names, arrays)."""

    kind: str  # "dataset", "table" or "files"
    id_column: str  # the CSV's first column: "id", "row" or "path"
    total: int
    batches: Callable[[int], Iterator[tuple[list[Any], Any]]]
    #: the examples are decoded in one pass (a dataset split under ``BULK_BYTES``):
    #: batching them bounds no memory, and each learner call has a fixed cost
    in_memory: bool = False
    #: what is predicted, for people (``autodl predict`` says it): e.g. which split
    what: str = ""
    #: lines to tell people before predicting (files of another kind left out)
    notes: list[str] = field(default_factory=list)
    #: (name, why) of the files of another kind than the model's, left out
    others: list[tuple[str, str]] = field(default_factory=list)
    #: (name, why) of each file left out while reading because it does not decode
    #: (``skip_bad``); filled as ``batches`` goes
    skipped: list[tuple[str, str]] = field(default_factory=list)


@contextlib.contextmanager
def open_input(
    model: Model,
    path: str | os.PathLike,
    split: str | None = None,
    *,
    skip_bad: bool = False,
    name: str | None = None,
) -> Iterator[Source]:
    """The examples at ``path`` for ``model`` (module doc); temporary files go on exit.
    ``skip_bad``: leave out raw files that do not decode (`Source.skipped`) instead of
    failing; ``name``: the input's name in messages (default: ``path`` as given)."""
    path = Path(path)
    shown = Path(name) if name else path
    if not path.exists():
        raise FormatError(f"{shown}: no such file or folder", "Give the data to predict on.")
    if split is not None and split not in SPLITS:
        raise FormatError(f"unknown split {split!r}", f"Use one of: {', '.join(SPLITS)}.")
    if path.is_file() and not _is_text_file(model, path):
        # imported only for a file: a dataset folder needs none of the converters
        from autodl.formats.convert.tables import TABLE_EXTENSIONS

        if path.suffix.lower() in TABLE_EXTENSIONS:
            yield _table(model, path, shown)
            return
    dataset_error = None
    from autodl.formats.dataset import open_dataset

    try:
        ds = open_dataset(path)
    except FormatError as e:
        dataset_error = e
    if dataset_error is None:
        try:
            yield _dataset(model, ds, split, path, shown)
        finally:
            ds.close()
        return
    tmp = None
    try:
        root = path
        if path.is_file() and zipfile.is_zipfile(path):
            tmp = Path(tempfile.mkdtemp(prefix="autodl-predict-"))
            root = _extract(path, tmp)
        yield _files(model, root, shown, dataset_error, skip_bad)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _is_text_file(model: Model, path: Path) -> bool:
    """A single .txt for a text model is a document, not a table."""
    return model.spec.domain == "text" and path.suffix.lower() == ".txt"


def _options(model: Model) -> dict[str, Any]:
    return dict((model.manifest or {}).get("options") or {})


# ---- an AutoDL dataset ---------------------------------------------------------------


def _dataset(model: Model, ds, split: str | None, path: Path, shown: Path) -> Source:
    spec, want = ds.spec, model.spec
    if spec.domain != want.domain:
        raise FormatError(
            f"{shown}: an AutoDL dataset of {spec.domain} data; the model was trained on "
            f"{want.domain} data",
            "Give data of the model's domain.",
            file=str(shown),
        )
    model.check_shape(tuple(spec.shape), f"{shown}: its examples", str(shown))
    if want.vocabulary is not None and spec.vocabulary not in (None, want.vocabulary):
        raise FormatError(
            f"{shown}: its vocabulary differs from the model's ({len(spec.vocabulary or {})} "
            f"tokens, the model's {len(want.vocabulary)}): token ids would mean other words",
            "Convert the texts with the model's vocabulary: give the raw texts (.txt files "
            "or a CSV) instead of a dataset.",
            file=str(shown),
        )
    if split is None:
        split = "unlabelled" if ds.unlabelled is not None and len(ds.unlabelled) else "test"
    chosen = getattr(ds, split, None)
    if chosen is None:
        raise FormatError(f"{shown}: the dataset has no {split} split", "Choose another --split.")
    compressed = spec.format == "COMPRESSED"
    channels = spec.shape[3]

    def batches(n: int) -> Iterator[tuple[list[Any], Any]]:
        if in_memory:
            # small enough to read in one pass as the run reads (bulk decoding, every core)
            arrays = chosen.load(max_side=model.max_side)
            for start in range(0, len(arrays), n):
                yield arrays.ids[start : start + n].tolist(), arrays.x[start : start + n]
            return
        ids: list[Any] = []
        xs: list[np.ndarray] = []
        items = chosen.iter_raw() if compressed else iter(chosen)
        for ex in items:
            ids.append(ex.id)
            if compressed:
                xs.append(_frames(ex.frames, channels, model.max_side, f"record {ex.id}"))
            else:
                xs.append(_shrunk(model, ex.x))
            if len(ids) >= n:
                yield ids, _stack(xs)
                ids, xs = [], []
        if ids:
            yield ids, _stack(xs)

    in_memory = _bulk_bytes(spec.shape, model.max_side, len(chosen)) <= BULK_BYTES
    if not in_memory and spec.format == "DENSE" and model.max_side is None:
        # examples of varying length (texts, series): a packed float takes 4 bytes on
        # disk and 4 decoded, so the files' size bounds the decoded split (twice over)
        in_memory = 2 * chosen.stored_bytes() <= BULK_BYTES
    what = f"the {split} split of {shown.name}"
    if split == "test" and ds.unlabelled is None:
        what += " (it has no unlabelled part)"
    return Source("dataset", "id", len(chosen), batches, in_memory, what)


def _bulk_bytes(shape: tuple[int, ...], max_side: int | None, n: int) -> float:
    """Bytes of ``n`` decoded examples of a fixed ``shape`` (inf when a size varies)."""
    t, h, w, c = shape
    if min(shape) < 1:
        return float("inf")
    if max_side:
        from autodl.formats.images import shrunk_size

        h, w = shrunk_size(h, w, max_side)
    return 4.0 * n * t * h * w * c


def _stack(xs: list[np.ndarray]) -> Any:
    from autodl.formats.types import stack_if_same_shape

    return stack_if_same_shape(xs)


def _shrunk(model: Model, x: np.ndarray) -> np.ndarray:
    from autodl.formats.images import shrink_float

    return shrink_float(x, model.max_side) if model.max_side else x


def _frames(frames: list[bytes], channels: int, max_side: int | None, what: str) -> np.ndarray:
    """Encoded frames -> float32 (T, H, W, C), decoded as the run's reader decodes them."""
    from autodl.formats import images

    out = []
    for f in frames:
        try:
            out.append(images.to_float(images.decode_frame(f, channels, max_side)))
        except images.FrameTooLarge as e:
            raise FormatError(
                f"{what}: {e}.",
                "Make the image smaller, or raise AUTODL_MAX_FRAME_PIXELS where autodl runs "
                "(on a shared service, its operator sets it).",
            ) from None
        except ValueError as e:
            raise FormatError(f"{what}: a frame does not decode ({e})") from None
    return np.stack(out)


# ---- raw files -----------------------------------------------------------------------


def _extract(path: Path, into: Path) -> Path:
    from autodl.formats.archive import ArchiveRefused, extract_zip

    try:
        extract_zip(path, into)
    except ArchiveRefused as e:
        raise FormatError(str(e), "Zip the files again.", file=path.name) from None
    return into


#: what a file of each kind is, for people: (one, several)
NOUNS = {
    "image": ("an image", "images"),
    "audio": ("an audio file", "audio files"),
    "video": ("a video", "videos"),
    "text": ("a .txt file", ".txt files"),
}
#: names of files left out that a message lists (then "and N more")
LISTED = 10


def _listed(names: list[str]) -> str:
    more = len(names) - LISTED
    return ", ".join(names[:LISTED]) + (f" and {more} more" if more > 0 else "")


def _files(
    model: Model, root: Path, shown: Path, dataset_error: FormatError, skip_bad: bool = False
) -> Source:
    from autodl.formats.convert.files import KINDS, kind_of, walk

    domain = model.spec.domain
    kind = KIND_OF_DOMAIN.get(domain)
    if kind is None and root.is_dir():
        # a folder (or a zip, as uploaded to the service) holding one table: that table
        from autodl.formats.convert.tables import TABLE_EXTENSIONS

        tables = [f for f in walk(root, []) if f.suffix.lower() in TABLE_EXTENSIONS]
        if len(tables) == 1:
            return _table(model, tables[0], Path(tables[0].name))
        if len(tables) > 1:
            named = _listed([t.relative_to(root).as_posix() for t in tables])
            raise FormatError(
                f"{shown}: holds {len(tables)} tables ({named}); the model needs one",
                "Give one CSV of rows with the training columns (or a zip of one).",
                file=str(shown),
            )
    if kind is None:
        raise FormatError(
            f"{shown}: the model ({domain}) reads a table (CSV) or an AutoDL dataset, and this "
            f"is neither ({dataset_error.message})",
            "Give a CSV of rows with the training columns, or an AutoDL dataset.",
            file=shown.name,
        )
    files = [root] if root.is_file() else walk(root, [])
    picked = [f for f in files if kind_of(f) == kind]
    if not picked:
        raise FormatError(
            f"{shown}: no {kind} files ({', '.join(KINDS[kind])}) and not an AutoDL dataset "
            f"({dataset_error.message}); the model was trained on {domain} data",
            f"Give {kind} files (a folder, a zip or one file), or an AutoDL dataset.",
            file=shown.name,
        )

    def named(f: Path) -> str:
        return f.name if root.is_file() else f.relative_to(root).as_posix()

    names = [named(f) for f in picked]
    notes = []
    one, several = NOUNS[kind]
    others = [(named(f), f"not {one}") for f in files if kind_of(f) != kind]
    if others:
        notes.append(
            f"skipped {len(others)} file{'s that are' if len(others) > 1 else ' that is'} "
            f"not {several if len(others) > 1 else one}: {_listed([n for n, _ in others])}"
        )
    decode = _decoder(model, kind)
    skipped: list[tuple[str, str]] = []

    def batches(n: int) -> Iterator[tuple[list[Any], Any]]:
        for start in range(0, len(picked), n):
            chunk = zip(names[start : start + n], picked[start : start + n], strict=True)
            ids, xs = [], []
            for name, f in chunk:
                try:
                    xs.append(decode(f, name))
                except FormatError as e:
                    if not skip_bad:
                        raise BadFile(e.message, e.hint, file=e.file or name) from None
                    skipped.append((name, e.message.removeprefix(f"{name}: ")))
                    continue
                ids.append(name)
            if ids:
                yield ids, _stack(xs)
        if skip_bad and len(skipped) == len(picked):
            first, why = skipped[0]
            raise FormatError(
                f"{shown}: none of its {len(picked)} file{'s' if len(picked) > 1 else ''} "
                f"could be read as {NOUNS[kind][1]} ({first}: {why})",
                f"The model expects {NOUNS[kind][1]} like its training data.",
                file=shown.name,
            )

    return Source(
        "files", "path", len(picked), batches, notes=notes, others=others, skipped=skipped
    )


def _decoder(model: Model, kind: str) -> Callable[[Path, str], np.ndarray]:
    from autodl.formats.convert import audio, image, video
    from autodl.formats.convert.image import BadInput
    from autodl.formats.convert.options import FormatOptions

    opts = _options(model)
    defaults = FormatOptions()
    spec = model.spec
    t, h, w, c = spec.shape

    def fail(name: str, why: str) -> FormatError:
        return FormatError(
            f"{name}: {why}", f"The model expects {NOUNS[kind][1]} like its training data.",
            file=name,
        )  # fmt: skip

    def decode(path: Path, name: str) -> np.ndarray:
        try:
            if kind == "image":
                d = image.decode(path, opts.get("max_size"))
                x = _frames(d.x, c, model.max_side, name)
                return _fit_size(model, x, name)
            if kind == "video":
                d = video.decode(
                    path,
                    opts.get("fps", defaults.fps),
                    opts.get("max_frames", defaults.max_frames),
                    opts.get("max_size"),
                )
                x = _frames(d.x, c, model.max_side, name)
                return _fit_size(model, x, name)
            if kind == "audio":
                raw = opts.get("domain") == "series"
                d = audio.decode(path, int(opts.get("sample_rate", defaults.sample_rate)), raw)
                return _check(model, d.x, name)
            return _tokens(model, _text(path, _chars(model)), name)
        except BadInput as e:
            raise fail(name, str(e)) from None
        except MemoryError:
            raise fail(name, "too large to decode in memory") from None

    return decode


def _text(path: Path, chars: bool) -> list[str]:
    """A .txt file's tokens, as `autodl.formats.convert.text.decode` reads them; none is
    a valid input here (an empty document: the model predicts from no words)."""
    from autodl.formats.convert.image import BadInput
    from autodl.formats.convert.text import read_text, tokenize

    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot be read ({e.strerror})") from None
    return tokenize(read_text(data)[0], chars)


def _fit_size(model: Model, x: np.ndarray, name: str) -> np.ndarray:
    """Images of another size than a fixed-size model's: resized to its size (channels are
    the decoder's); then the shape is checked."""
    t, h, w, _ = model.spec.shape
    if h > 0 and w > 0 and model.max_side:
        from autodl.formats.images import shrunk_size

        h, w = shrunk_size(h, w, model.max_side)
    if h > 0 and w > 0 and x.shape[1:3] != (h, w):
        from PIL import Image

        planes = [
            np.stack(
                [
                    np.asarray(
                        Image.fromarray(np.ascontiguousarray(f[:, :, j])).resize(
                            (w, h), Image.BILINEAR
                        ),
                        np.float32,
                    )
                    for j in range(f.shape[2])
                ],
                axis=-1,
            )
            for f in x
        ]
        x = np.stack(planes)
    if t > 0 and x.shape[0] != t:
        raise FormatError(
            f"{name}: {x.shape[0]} frames; the model expects {t}",
            "Give clips as long as the training clips.",
            file=name,
        )
    return x


def _check(model: Model, x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, np.float32)
    model.check_shape(x.shape, name, name)
    return x


def _chars(model: Model) -> bool:
    details = (model.manifest or {}).get("details") or {}
    return details.get("tokens") == "characters"


def _tokens(model: Model, tokens: list[str], name: str) -> np.ndarray:
    """Tokens -> the model's ids (T, 1, 1, 1); tokens it never saw are left out. None
    left (an empty text, or only unknown words) is a (0, 1, 1, 1) document: the model
    sees no known word and predicts from that, as for an empty record of a dataset."""
    vocab = model.spec.vocabulary
    if vocab is None:
        raise FormatError(
            f"{name}: the model has no vocabulary to read text with",
            "Give an AutoDL dataset with the model's token ids.",
            file=name,
        )
    ids = [vocab[tk] for tk in tokens if tk in vocab]
    return np.asarray(ids, np.float32).reshape(-1, 1, 1, 1)


# ---- a table -------------------------------------------------------------------------


def _table(model: Model, path: Path, shown: Path) -> Source:
    """Rows numbered from 1 (the first row under the header), as a spreadsheet counts
    data rows; a message about a row adds its line in the file (`_where`)."""
    from autodl.formats.convert.tables import Table

    domain = model.spec.domain
    if domain not in ("tabular", "text"):
        from autodl.formats.convert.files import KINDS

        kind = KIND_OF_DOMAIN.get(domain)
        what = "a text file (.txt)" if path.suffix.lower() == ".txt" else "a table"
        raise FormatError(
            f"{shown.name}: {what}; the model was trained on {domain} data"
            + (f" and reads {NOUNS[kind][1]}" if kind else ""),
            (f"Give {kind} files ({', '.join(KINDS[kind])}): a folder, a zip or one file; "
             "or an AutoDL dataset.") if kind else "Give an AutoDL dataset.",
            file=shown.name,
        )  # fmt: skip
    table = Table(path)
    columns = list(table.columns)
    if domain == "tabular":
        encode = _tabular_encoder(model, table, columns, shown.name)
    else:
        encode = _text_encoder(model, table, columns, shown.name)
    total = sum(len(chunk) for chunk in Table(path).chunks())

    def batches(n: int) -> Iterator[tuple[list[Any], Any]]:
        row_no = 0
        for chunk in Table(path).chunks(n):
            xs = []
            # huge cells (1e300) overflow float32 to inf, which the learners map to NaN
            with np.errstate(over="ignore", invalid="ignore"):
                for row in chunk:
                    row_no += 1
                    xs.append(encode(row, row_no))
            yield list(range(row_no - len(chunk) + 1, row_no + 1)), _stack(xs)

    return Source("table", "row", total, batches)


def _where(table, row_no: int) -> str:
    """``row N (line L)``: data row ``row_no`` (1 for the first under the header) and the
    line of the file it starts on (blank lines and quoted line breaks counted), read
    again only for a message; Parquet has rows, not lines."""
    import csv

    if table.parquet:
        return f"row {row_no}"
    try:
        with open(table.path, newline="", encoding=table.encoding) as f:
            reader = csv.reader(f, delimiter=table.delimiter)
            seen, start = -1, 1  # the header is row 0
            for r in reader:
                if r:  # a blank line is not a row (`Table`)
                    seen += 1
                    if seen == row_no:
                        return f"row {row_no} (line {start})"
                start = reader.line_num + 1
    except (OSError, ValueError, csv.Error):
        pass
    return f"row {row_no}"


def _tabular_encoder(model: Model, table, columns: list[str], name: str):
    from autodl.formats.convert.tables import LABEL_NAMES
    from autodl.formats.convert.tabular import encode_row

    features = ((model.manifest or {}).get("details") or {}).get("features")
    width = model.spec.shape[2]
    if features:
        needed = list(dict.fromkeys(f["column"] for f in features))
        missing = [c for c in needed if c not in columns]
        if missing:
            raise FormatError(
                f"{name}: no column {', '.join(map(repr, missing))}; the model reads the "
                f"columns {', '.join(map(repr, needed))} (by name)",
                "Give a table with the training table's columns (others are ignored).",
                file=name,
            )
        plan = []
        for f in features:
            col = columns.index(f["column"])
            if f["kind"] == "number":
                plan.append(("number", col, None))
            elif f["kind"] == "one-hot":
                plan.append(("onehot", col, f["value"]))
            else:
                plan.append(("code", col, {v: float(i) for i, v in enumerate(f["categories"])}))
    else:
        labels = set((model.manifest or {}).get("options", {}).get("labels") or []) | set(
            LABEL_NAMES
        )
        cols = [i for i, c in enumerate(columns) if c.strip().lower() not in labels]
        if len(cols) != width:
            raise FormatError(
                f"{name}: {len(cols)} feature columns; the model expects {width} "
                "(its dataset has no `autodl format` manifest to match columns by name)",
                f"Give a table of {width} numeric columns in the training order "
                "(and optionally a label column).",
                file=name,
            )
        plan = [("number", i, None) for i in cols]

    def encode(row: list[Any], row_no: int) -> np.ndarray:
        def not_a_number(col: int, v: Any) -> None:
            raise FormatError(
                f"{name}: {_where(table, row_no)}, column {columns[col]!r}: {v!r} is not a number",
                "The model reads this column as numbers, as in its training data.",
                file=name,
                record=row_no,
                field=columns[col],
            )

        return encode_row(plan, row, table.number, not_a_number)

    return encode


def _text_encoder(model: Model, table, columns: list[str], name: str):
    from autodl.formats.convert.tables import LABEL_NAMES
    from autodl.formats.convert.text import tokenize

    want = ((model.manifest or {}).get("details") or {}).get("text_column")
    if want in columns:
        col = columns.index(want)
    else:
        rest = [i for i, c in enumerate(columns) if c.strip().lower() not in LABEL_NAMES]
        if len(rest) != 1:
            raise FormatError(
                f"{name}: which column holds the text? "
                + (f"The model's was {want!r}; " if want else "")
                + f"columns: {', '.join(map(repr, columns))}",
                "Give a table with the training text column (or one column of text).",
                file=name,
            )
        col = rest[0]
    chars = _chars(model)

    def encode(row: list[Any], row_no: int) -> np.ndarray:
        return _tokens(model, tokenize(str(row[col] or ""), chars), f"{name}: row {row_no}")

    return encode

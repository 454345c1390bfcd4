"""New data for a saved model, read in batches and checked against the model's spec.

`open_input(model, path, split)` takes:

- an **AutoDL dataset** (folder or zip): its ``split`` (default: unlabelled when it has
  records, else test); rows are named by record id. Its domain, channels and fixed
  sizes (and, for text, its vocabulary) must be the model's;
- a **table** (CSV, TSV, Parquet): one example per row, named by row number (0 for
  the first data row). Tabular: the columns by name as the run's ``autodl format``
  manifest lists them (extra columns, the label column among them, are ignored),
  or, for a dataset without a manifest, exactly as many columns as the model has
  features. Text: the text column the manifest names (else the one column of text);
- **raw files**: a folder (searched recursively), a zip of one, or one file, of the
  model's kind (images, audio, video, .txt), named by their path relative to the
  input. They are converted as ``autodl format`` converted the training data (its
  options from the manifest: image size, sample rate, frames per second, tokens),
  then as the run loaded them (images shrunk to the run's ``max_side``).

A mismatch is a `FormatError` naming the file (and record or column) and what the
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
from dataclasses import dataclass
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


@contextlib.contextmanager
def open_input(model: Model, path: str | os.PathLike, split: str | None = None) -> Iterator[Source]:
    """The examples at ``path`` for ``model`` (module doc); temporary files go on exit."""
    path = Path(path)
    if not path.exists():
        raise FormatError(f"{path}: no such file or folder", "Give the data to predict on.")
    if split is not None and split not in SPLITS:
        raise FormatError(f"unknown split {split!r}", f"Use one of: {', '.join(SPLITS)}.")
    if path.is_file() and not _is_text_file(model, path):
        # imported only for a file: a dataset folder needs none of the converters
        from autodl.formats.convert.tables import TABLE_EXTENSIONS

        if path.suffix.lower() in TABLE_EXTENSIONS:
            yield _table(model, path)
            return
    dataset_error = None
    from autodl.formats.dataset import open_dataset

    try:
        ds = open_dataset(path)
    except FormatError as e:
        dataset_error = e
    if dataset_error is None:
        try:
            yield _dataset(model, ds, split, path)
        finally:
            ds.close()
        return
    tmp = None
    try:
        root = path
        if path.is_file() and zipfile.is_zipfile(path):
            tmp = Path(tempfile.mkdtemp(prefix="autodl-predict-"))
            root = _extract(path, tmp)
        yield _files(model, root, path, dataset_error)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _is_text_file(model: Model, path: Path) -> bool:
    """A single .txt for a text model is a document, not a table."""
    return model.spec.domain == "text" and path.suffix.lower() == ".txt"


def _options(model: Model) -> dict[str, Any]:
    return dict((model.manifest or {}).get("options") or {})


# ---- an AutoDL dataset ---------------------------------------------------------------


def _dataset(model: Model, ds, split: str | None, path: Path) -> Source:
    spec, want = ds.spec, model.spec
    meta = f"{path.name}: metadata.textproto"
    if spec.domain != want.domain:
        raise FormatError(
            f"{meta} describes {spec.domain} data; the model was trained on {want.domain} data",
            "Give data of the model's domain.",
            file=meta,
        )
    model.check_shape(tuple(spec.shape), f"{path.name}'s examples", meta)
    if want.vocabulary is not None and spec.vocabulary not in (None, want.vocabulary):
        raise FormatError(
            f"{meta}: its vocabulary differs from the model's ({len(spec.vocabulary or {})} "
            f"tokens, the model's {len(want.vocabulary)}): token ids would mean other words",
            "Convert the texts with the model's vocabulary: give the raw texts (.txt files "
            "or a CSV) instead of a dataset.",
            file=meta,
        )
    if split is None:
        split = "unlabelled" if ds.unlabelled is not None and len(ds.unlabelled) else "test"
    chosen = getattr(ds, split, None)
    if chosen is None:
        raise FormatError(f"{path}: the dataset has no {split} split", "Choose another --split.")
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
    what = f"the {split} split of {path.name}"
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


def _files(model: Model, root: Path, shown: Path, dataset_error: FormatError) -> Source:
    from autodl.formats.convert.files import KINDS, kind_of, walk

    domain = model.spec.domain
    kind = KIND_OF_DOMAIN.get(domain)
    if kind is None and root.is_dir():
        # a folder (or a zip, as uploaded to the service) holding one table: that table
        from autodl.formats.convert.tables import TABLE_EXTENSIONS

        tables = [f for f in walk(root, []) if f.suffix.lower() in TABLE_EXTENSIONS]
        if len(tables) == 1:
            return _table(model, tables[0])
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
    names = [f.name if root.is_file() else f.relative_to(root).as_posix() for f in picked]
    decode = _decoder(model, kind)

    def batches(n: int) -> Iterator[tuple[list[Any], Any]]:
        for start in range(0, len(picked), n):
            chunk = list(zip(names[start : start + n], picked[start : start + n], strict=True))
            yield [name for name, _ in chunk], _stack([decode(f, name) for name, f in chunk])

    return Source("files", "path", len(picked), batches)


def _decoder(model: Model, kind: str) -> Callable[[Path, str], np.ndarray]:
    from autodl.formats.convert import audio, image, text, video
    from autodl.formats.convert.image import BadInput
    from autodl.formats.convert.options import FormatOptions

    opts = _options(model)
    defaults = FormatOptions()
    spec = model.spec
    t, h, w, c = spec.shape

    def fail(name: str, why: str) -> FormatError:
        return FormatError(
            f"{name}: {why}", f"The model expects {kind} like its training data.", file=name
        )

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
            return _tokens(model, text.decode(path, _chars(model)).x, name)
        except BadInput as e:
            raise fail(name, str(e)) from None
        except MemoryError:
            raise fail(name, "too large to decode in memory") from None

    return decode


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
    """Tokens -> the model's ids (T, 1, 1, 1); tokens it never saw are left out."""
    vocab = model.spec.vocabulary
    if vocab is None:
        raise FormatError(
            f"{name}: the model has no vocabulary to read text with",
            "Give an AutoDL dataset with the model's token ids.",
            file=name,
        )
    ids = [vocab[tk] for tk in tokens if tk in vocab]
    if not ids:
        raise FormatError(
            f"{name}: none of its {len(tokens)} tokens is in the model's vocabulary",
            "Give text in the language of the training texts.",
            file=name,
        )
    return np.asarray(ids, np.float32).reshape(-1, 1, 1, 1)


# ---- a table -------------------------------------------------------------------------


def _table(model: Model, path: Path) -> Source:
    from autodl.formats.convert.tables import Table

    table = Table(path)
    columns = list(table.columns)
    domain = model.spec.domain
    if domain == "tabular":
        encode = _tabular_encoder(model, table, columns, path)
    elif domain == "text":
        encode = _text_encoder(model, table, columns, path)
    else:
        raise FormatError(
            f"{path.name}: a table; the model was trained on {domain} data",
            f"Give {KIND_OF_DOMAIN.get(domain, domain)} files or an AutoDL dataset.",
            file=path.name,
        )
    total = sum(len(chunk) for chunk in Table(path).chunks())

    def batches(n: int) -> Iterator[tuple[list[Any], Any]]:
        row_no = 0
        for chunk in Table(path).chunks(n):
            xs = []
            for row in chunk:
                xs.append(encode(row, row_no))
                row_no += 1
            yield list(range(row_no - len(chunk), row_no)), _stack(xs)

    return Source("table", "row", total, batches)


def _tabular_encoder(model: Model, table, columns: list[str], path: Path):
    from autodl.formats.convert.tables import LABEL_NAMES
    from autodl.formats.convert.tabular import encode_row

    features = ((model.manifest or {}).get("details") or {}).get("features")
    width = model.spec.shape[2]
    if features:
        needed = list(dict.fromkeys(f["column"] for f in features))
        missing = [c for c in needed if c not in columns]
        if missing:
            raise FormatError(
                f"{path.name}: no column {', '.join(map(repr, missing))}; the model reads the "
                f"columns {', '.join(map(repr, needed))} (by name)",
                "Give a table with the training table's columns (others are ignored).",
                file=path.name,
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
                f"{path.name}: {len(cols)} feature columns; the model expects {width} "
                "(its dataset has no `autodl format` manifest to match columns by name)",
                f"Give a table of {width} numeric columns in the training order "
                "(and optionally a label column).",
                file=path.name,
            )
        plan = [("number", i, None) for i in cols]

    def encode(row: list[Any], row_no: int) -> np.ndarray:
        def not_a_number(col: int, v: Any) -> None:
            raise FormatError(
                f"{path.name}: row {row_no}, column {columns[col]!r}: {v!r} is not a number",
                "The model reads this column as numbers, as in its training data.",
                file=path.name,
                record=row_no,
                field=columns[col],
            )

        return encode_row(plan, row, table.number, not_a_number)

    return encode


def _text_encoder(model: Model, table, columns: list[str], path: Path):
    from autodl.formats.convert.tables import LABEL_NAMES
    from autodl.formats.convert.text import tokenize

    want = ((model.manifest or {}).get("details") or {}).get("text_column")
    if want in columns:
        col = columns.index(want)
    else:
        rest = [i for i, c in enumerate(columns) if c.strip().lower() not in LABEL_NAMES]
        if len(rest) != 1:
            raise FormatError(
                f"{path.name}: which column holds the text? "
                + (f"The model's was {want!r}; " if want else "")
                + f"columns: {', '.join(map(repr, columns))}",
                "Give a table with the training text column (or one column of text).",
                file=path.name,
            )
        col = rest[0]
    chars = _chars(model)

    def encode(row: list[Any], row_no: int) -> np.ndarray:
        name = f"{path.name}: row {row_no}"
        return _tokens(model, tokenize(str(row[col] or ""), chars), name)

    return encode

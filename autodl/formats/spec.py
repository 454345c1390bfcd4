"""``metadata.textproto`` (an AutoDL ``DataSpecification``) <-> `Metadata` <-> `DatasetSpec`.

Reading uses protobuf's real text-format parser (``text_format.Merge``, as the
official reader), so keys in single or double quotes, escapes and UTF-8 tokens
all work. `Metadata` keeps every field, with None for a field the file does not
set, and the maps as (key, value) pairs in file order.

Writing follows the official tools byte for byte (``render_metadata``): fields
one per line in the order of their template, keys quoted like Python's
``repr`` (single quotes unless the key holds a ``'``). Two layouts exist in the
wild and both are reproduced:

- ``"contrib"``: autodl-contrib (``check_n_format.py``, ``format_unseen.py``):
  the label map, a blank line, the channel map, a blank line; nothing after the
  matrix spec when both maps are empty (the tabular tool);
- ``"kit"``: the older starting-kit samples (miniciao, Monkeys): the label map
  then one blank line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from google.protobuf import text_format

from autodl.errors import FormatError
from autodl.formats import _textproto, limits
from autodl.formats.example import DataSpecification
from autodl.formats.types import DatasetSpec, StorageFormat

_FORMATS = ("DENSE", "SPARSE", "COMPRESSED")


@dataclass
class Metadata:
    """Every field of a DataSpecification (first matrix spec); None = not set."""

    sample_count: int | None = None
    sequence_size: int | None = None
    output_dim: int | None = None
    is_sequence: bool | None = None
    col_count: int | None = None
    row_count: int | None = None
    num_channels: int | None = None
    is_sequence_col: bool | None = None
    is_sequence_row: bool | None = None
    has_locality_col: bool | None = None
    has_locality_row: bool | None = None
    format: StorageFormat | None = None
    label_to_index: list[tuple[str, int]] = field(default_factory=list)
    channel_to_index: list[tuple[str, int]] = field(default_factory=list)
    feature_to_index: list[tuple[str, int]] = field(default_factory=list)
    matrix_spec_count: int = 1

    @property
    def storage_format(self) -> StorageFormat:
        return self.format or "DENSE"


_TOP = ("sample_count", "sequence_size", "output_dim", "is_sequence")
_MATRIX = (
    "col_count", "row_count", "num_channels", "is_sequence_col", "is_sequence_row",
    "has_locality_col", "has_locality_row",
)  # fmt: skip
_MAPS = (
    ("label_to_index", "label_to_index_map"),
    ("channel_to_index", "channel_to_index_map"),
    ("feature_to_index", "feature_to_index_map"),
)


def parse_metadata(text: str | bytes, file: str = "metadata.textproto") -> Metadata:
    """Parse a DataSpecification in protobuf text format.

    Raises `FormatError` with the line number when the text does not parse, and
    `limits.LimitExceeded` for a text or an ``output_dim`` above its cap (checked
    before anything is built for the classes).

    >>> m = parse_metadata("output_dim: 2\\nmatrix_spec { col_count: 3 row_count: 1 }")
    >>> m.output_dim, m.col_count, m.sequence_size
    (2, 3, None)
    """
    limits.check(
        "max_metadata_bytes", len(text), "the file ({value:,} bytes)", file=file, unit=" bytes"
    )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(
                f"{file}: byte {e.start} is not valid UTF-8.",
                "Save the metadata file as UTF-8.",
                file=file,
            ) from None
    direct = _textproto.parse(text)
    if direct is not None:
        return _from_direct(*direct, file=file)
    text, quick_maps = _split_plain_entries(text)
    msg = DataSpecification()
    try:
        text_format.Merge(text, msg)
    except text_format.ParseError as e:
        line = e.GetLine() if hasattr(e, "GetLine") else None
        where = f" line {line}" if line else ""
        raise FormatError(
            f"{file}:{where}: not a valid DataSpecification ({e}).",
            "Fix the metadata file; the official tools write it in protobuf text format.",
            file=file,
            record=None,
            field=f"line {line}" if line else None,
        ) from None
    m = Metadata(matrix_spec_count=len(msg.matrix_spec))
    for name in _TOP:
        if msg.HasField(name):
            setattr(m, name, getattr(msg, name))
    if msg.matrix_spec:
        spec = msg.matrix_spec[0]
        for name in _MATRIX:
            if spec.HasField(name):
                setattr(m, name, getattr(spec, name))
        if spec.HasField("format"):
            m.format = _FORMATS[spec.format]  # type: ignore[assignment]
    check_classes(m, file)
    for attr, proto_name in _MAPS:
        setattr(
            m,
            attr,
            quick_maps.get(proto_name) or [(e.key, e.value) for e in getattr(msg, proto_name)],
        )
    return m


def _from_direct(
    top: dict, blocks: list[dict], maps: dict[str, list[tuple[str, int]]], file: str
) -> Metadata:
    """`Metadata` from `_textproto.parse`'s fields (what protobuf would have set)."""
    m = Metadata(matrix_spec_count=len(blocks), **top)
    for name, value in (blocks[0] if blocks else {}).items():
        setattr(m, name, value)
    check_classes(m, file)
    for attr, proto_name in _MAPS:
        setattr(m, attr, maps.get(proto_name, []))
    return m


# One map entry exactly as the official tools write it, with a key free of
# escapes: its meaning is plain. protobuf's pure-Python text parser needs
# 0.2 s for convention2012's 8903-entry vocabulary; this regex needs 5 ms.
_PLAIN_ENTRY = re.compile(
    r"^(label_to_index_map|channel_to_index_map|feature_to_index_map) \{\n"
    r"  key: (?:'([^'\\\n]*)'|\"([^\"\\\n]*)\")\n  value: (-?\d+)\n\}\n",
    re.MULTILINE,
)
_MAP_NAME = re.compile(r"\b(label_to_index_map|channel_to_index_map|feature_to_index_map)\b")


def _split_plain_entries(text: str) -> tuple[str, dict[str, list[tuple[str, int]]]]:
    """Take the plain map entries out of ``text`` (the rest goes to protobuf's
    parser). All or nothing: when any mention of a map is not a plain entry (an
    escape, a comment, another layout), the whole text goes to the parser."""
    if "#" in text:
        return text, {}
    found = _PLAIN_ENTRY.findall(text)
    if not found or len(found) != len(_MAP_NAME.findall(text)):
        return text, {}
    maps: dict[str, list[tuple[str, int]]] = {}
    for name, k1, k2, v in found:
        if not -(2**31) <= int(v) < 2**31:
            return text, {}  # let the parser report the int32 overflow
        maps.setdefault(name, []).append((k1 or k2, int(v)))
    return _PLAIN_ENTRY.sub("", text), maps


def _bool(v: bool) -> str:
    return "true" if v else "false"


def quote_key(key: str) -> str:
    """Quote a map key as the official tools (Python ``repr``) do, in a form
    protobuf's text parser reads back: ``'x'``, or ``"that's"``.

    >>> quote_key("that's"), quote_key("a"), quote_key("—")
    ('"that\\'s"', "'a'", "'—'")
    """
    q = '"' if ("'" in key and '"' not in key) else "'"
    out = []
    for ch in key:
        if ch == "\\":
            out.append("\\\\")
        elif ch == q:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return q + "".join(out) + q


def _map_text(name: str, entries: list[tuple[str, int]]) -> str:
    return "".join(f"{name} {{\n  key: {quote_key(k)}\n  value: {v}\n}}\n" for k, v in entries)


def render_metadata(meta: Metadata, layout: str = "contrib") -> str:
    """The metadata in the official tools' text layout (see the module doc).

    >>> print(render_metadata(Metadata(sample_count=2, sequence_size=1, output_dim=2,
    ...       col_count=3, row_count=1, format="DENSE")), end="")
    sample_count: 2
    sequence_size: 1
    output_dim: 2
    matrix_spec {
      col_count: 3
      row_count: 1
      format: DENSE
    }
    """
    lines = []
    if meta.is_sequence is not None:
        lines.append(f"is_sequence: {_bool(meta.is_sequence)}")
    for name in ("sample_count", "sequence_size", "output_dim"):
        v = getattr(meta, name)
        if v is not None:
            lines.append(f"{name}: {v}")
    lines.append("matrix_spec {")
    for name in _MATRIX:
        v = getattr(meta, name)
        if v is not None:
            lines.append(f"  {name}: {_bool(v) if isinstance(v, bool) else v}")
    if meta.format is not None:
        lines.append(f"  format: {meta.format}")
    lines.append("}")
    head = "\n".join(lines) + "\n"
    labels = _map_text("label_to_index_map", meta.label_to_index)
    channels = _map_text("channel_to_index_map", meta.channel_to_index)
    features = _map_text("feature_to_index_map", meta.feature_to_index)
    if layout == "kit":
        return head + labels + channels + features + "\n"
    if layout != "contrib":
        raise ValueError(f"unknown metadata layout {layout!r}")
    if not (labels or channels or features):
        return head
    return head + labels + "\n" + channels + "\n" + (features + "\n" if features else "")


def check_classes(meta: Metadata, file: str) -> None:
    """Refuse an ``output_dim`` above AUTODL_MAX_CLASSES (names, label vectors and sums
    are all sized by it)."""
    limits.check(
        "max_classes",
        meta.output_dim or 0,
        "output_dim {value:,}",
        file=file,
        field="output_dim",
    )


def label_names_from(meta: Metadata, label_file_lines: list[str] | None = None) -> list[str] | None:
    """Class names in column order: from ``label_to_index_map`` (missing indices
    named by their number), else from a ``<name>_label.name`` file when it has
    one line per class, else None."""
    n = meta.output_dim or 0
    if meta.label_to_index:
        names = [str(i) for i in range(n)]
        for k, v in meta.label_to_index:
            if 0 <= v < n:
                names[v] = k
        return names
    if label_file_lines is not None:
        lines = [s for s in label_file_lines if s.strip()]
        if len(lines) == n:
            return [s.strip() for s in lines]
    return None


def spec_from_metadata(
    meta: Metadata,
    name: str,
    *,
    label_file_lines: list[str] | None = None,
    learned_channels: int | None = None,
    file: str = "train/metadata.textproto",
) -> DatasetSpec:
    """The `DatasetSpec` of a split's metadata.

    Shape is (sequence_size, row_count, col_count, num_channels). When
    ``num_channels`` is missing (or -1) for COMPRESSED data, the count learned by
    decoding a frame (``learned_channels``) is used, else 3 as the official
    ``get_num_channels`` says; for other formats 1.
    """
    if meta.output_dim is None or meta.output_dim <= 0:
        raise FormatError(
            f"{file}: output_dim is {'missing' if meta.output_dim is None else meta.output_dim}.",
            "Set output_dim to the number of classes.",
            file=file,
            field="output_dim",
        )
    check_classes(meta, file)
    if meta.matrix_spec_count == 0:
        raise FormatError(
            f"{file}: there is no matrix_spec.",
            "Add a matrix_spec block with row_count, col_count and format.",
            file=file,
            field="matrix_spec",
        )
    fmt = meta.storage_format
    channels = meta.num_channels
    if channels is None or channels <= 0:
        if fmt == "COMPRESSED":
            channels = learned_channels or 3
        else:
            channels = 1
    t = meta.sequence_size if meta.sequence_size is not None else 1
    h = meta.row_count if meta.row_count is not None else -1
    w = meta.col_count if meta.col_count is not None else -1
    shape = (t, h, w, channels)
    vocab = dict(meta.channel_to_index) if meta.channel_to_index else None
    return DatasetSpec(
        name=name,
        shape=shape,
        output_dim=meta.output_dim,
        format=fmt,
        label_names=label_names_from(meta, label_file_lines),
        vocabulary=vocab,
        domain=DatasetSpec.detect_domain(shape, vocab is not None),
    )


def metadata_for(
    spec: DatasetSpec,
    sample_count: int,
    *,
    label_map: bool = True,
    has_locality: bool | None = None,
) -> Metadata:
    """Metadata for writing a split of ``spec``, as the official tools fill it.

    ``has_locality`` defaults to False for tabular data and True otherwise (as
    the tabular and file-format tools write). ``label_map=False`` leaves the
    label names out (the tabular and text tools do).
    """
    t, h, w, c = spec.shape
    loc = spec.domain != "tabular" if has_locality is None else has_locality
    return Metadata(
        is_sequence=False,
        sample_count=sample_count,
        sequence_size=t,
        output_dim=spec.output_dim,
        col_count=w,
        row_count=h,
        num_channels=c,
        is_sequence_col=False,
        is_sequence_row=False,
        has_locality_col=loc,
        has_locality_row=loc,
        format=spec.format,
        label_to_index=[(n, i) for i, n in enumerate(spec.label_names)]
        if (label_map and spec.label_names)
        else [],
        channel_to_index=list(spec.vocabulary.items()) if spec.vocabulary else [],
    )

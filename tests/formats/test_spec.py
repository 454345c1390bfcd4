"""metadata.textproto: parsing, writing in the official layout, DatasetSpec."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats import spec as S
from autodl.formats.types import DatasetSpec
from tests.conftest import DATASETS, KIT_SAMPLES, SHARED_DATA, needs_shared_data


def _reference_metadata_files():
    if not SHARED_DATA.is_dir():
        return []
    files = sorted(SHARED_DATA.glob("*/*/*.data/*/metadata.textproto"))
    files += sorted(DATASETS.glob("*/unlabelled/metadata.textproto"))
    return files


@needs_shared_data
@pytest.mark.parametrize("path", _reference_metadata_files(), ids=lambda p: "/".join(p.parts[-3:]))
def test_reference_metadata_round_trips_byte_for_byte(path):
    text = path.read_text(encoding="utf-8")
    meta = S.parse_metadata(text)
    layout = "kit" if KIT_SAMPLES in path.parents else "contrib"
    assert S.render_metadata(meta, layout) == text


@needs_shared_data
def test_quick_map_path_equals_full_parser(monkeypatch):
    for path in _reference_metadata_files():
        text = path.read_text(encoding="utf-8")
        quick = S.parse_metadata(text)
        monkeypatch.setattr(S, "_split_plain_entries", lambda t: (t, {}))
        assert S.parse_metadata(text) == quick, path
        monkeypatch.undo()


@needs_shared_data
def test_convention2012_vocabulary():
    meta = S.parse_metadata(
        (DATASETS / "convention2012/convention2012.data/train/metadata.textproto").read_bytes()
    )
    vocab = dict(meta.channel_to_index)
    assert len(vocab) == 8903 and sorted(vocab.values()) == list(range(8903))
    assert vocab["that's"] == 113 and "—" in vocab and vocab["Tampa's"] == 8902
    spec = S.spec_from_metadata(meta, "convention2012")
    assert spec.domain == "text" and spec.shape == (-1, 1, 1, 1) and spec.label_names is None


@needs_shared_data
def test_miniciao_labels_out_of_order_and_monkeys_without_channels():
    meta = S.parse_metadata(
        (KIT_SAMPLES / "miniciao/miniciao.data/train/metadata.textproto").read_bytes()
    )
    assert meta.label_to_index[0] == ("cat", 3)  # file order kept
    names = S.spec_from_metadata(meta, "miniciao").label_names
    assert names[:4] == ["airplane", "automobile", "bird", "cat"]
    monkeys = S.parse_metadata(
        (KIT_SAMPLES / "Monkeys/Monkeys.data/train/metadata.textproto").read_bytes()
    )
    assert monkeys.num_channels is None and monkeys.row_count == -1
    assert S.spec_from_metadata(monkeys, "Monkeys").shape == (1, -1, -1, 3)
    assert S.spec_from_metadata(monkeys, "Monkeys", learned_channels=1).shape == (1, -1, -1, 1)


def test_quotes_and_escapes_round_trip():
    keys = ["that's", 'say "hi"', "both ' and \"", "back\\slash", "—", "tab\there", "#hash", ""]
    meta = S.Metadata(sample_count=1, output_dim=2, col_count=1, row_count=1, format="DENSE")
    meta.channel_to_index = [(k, i) for i, k in enumerate(keys)]
    text = S.render_metadata(meta)
    assert 'key: "that\'s"' in text and "key: 'say \"hi\"'" in text and "key: '—'" in text
    assert S.parse_metadata(text).channel_to_index == meta.channel_to_index


def test_double_quoted_and_inline_text_parses():
    text = "output_dim: 3 sample_count: 9\nmatrix_spec { col_count: 4 row_count: 1 format: SPARSE num_channels: 2 }\nlabel_to_index_map { key: \"b\" value: 1 }\nlabel_to_index_map { key: 'a' value: 0 }"
    meta = S.parse_metadata(text)
    assert (
        meta.format == "SPARSE"
        and meta.num_channels == 2
        and meta.label_to_index == [("b", 1), ("a", 0)]
    )
    spec = S.spec_from_metadata(meta, "x")
    assert (
        spec.shape == (1, 1, 4, 2)
        and spec.label_names == ["a", "b", "2"]
        and spec.format == "SPARSE"
    )


def test_parse_error_names_the_line():
    with pytest.raises(FormatError) as e:
        S.parse_metadata(
            "output_dim: 2\nmatrix_spec {\n  col_count: x\n}\n", file="test/metadata.textproto"
        )
    assert "test/metadata.textproto" in e.value.message and e.value.field == "line 3"
    with pytest.raises(FormatError, match="not valid UTF-8"):
        S.parse_metadata(b"output_dim: 2 \xff")


def test_spec_requires_output_dim_and_matrix_spec():
    with pytest.raises(FormatError, match="output_dim is missing"):
        S.spec_from_metadata(S.parse_metadata("matrix_spec { col_count: 1 }"), "x")
    with pytest.raises(FormatError, match="no matrix_spec"):
        S.spec_from_metadata(S.parse_metadata("output_dim: 2"), "x")


def test_label_names_from_label_file_when_no_map():
    meta = S.parse_metadata("output_dim: 2\nmatrix_spec { col_count: 3 row_count: 1 }")
    assert S.label_names_from(meta, ["not spam", "spam", ""]) == ["not spam", "spam"]
    assert S.label_names_from(meta, ["only one"]) is None
    assert S.label_names_from(meta) is None


def test_metadata_for_spec_round_trips():
    spec = DatasetSpec(
        "t", (10, 32, 32, 1), 4, "COMPRESSED", ["left", "right", "up", "down"], domain="video"
    )
    text = S.render_metadata(S.metadata_for(spec, 211))
    back = S.spec_from_metadata(S.parse_metadata(text), "t")
    assert back == spec
    assert text.startswith(
        "is_sequence: false\nsample_count: 211\nsequence_size: 10\noutput_dim: 4\n"
    )
    assert text.endswith("  key: 'down'\n  value: 3\n}\n\n\n")


# ---------------------------------------------------------------- direct parser


def _both_parsers(text: str, monkeypatch):
    from autodl.formats import _textproto, spec

    direct = spec.parse_metadata(text)
    with monkeypatch.context() as m:
        m.setattr(_textproto, "parse", lambda t: None)
        reference = spec.parse_metadata(text)
    return direct, reference


def test_direct_parser_agrees_with_protobuf_on_every_sample(monkeypatch):
    from autodl.formats import _textproto
    from tests.conftest import SHARED_DATA

    files = sorted(SHARED_DATA.rglob("metadata.textproto"))
    if not files:
        pytest.skip(f"reference data not found at {SHARED_DATA}")
    for f in files:
        text = f.read_text("utf-8")
        assert _textproto.parse(text) is not None, f
        direct, reference = _both_parsers(text, monkeypatch)
        assert direct == reference, f


_KEYS = [
    "that's", 'say "hi"', "back\\slash", "tab\there", "new\nline", "", "é", "日本語", "a'b\"c",
    "\x01ctl", "#hash", "label_to_index_map { key: 'x' value: 1 }", "}", "{", " spaced ",
]  # fmt: skip


@pytest.mark.parametrize("layout", ["contrib", "kit"])
def test_direct_parser_agrees_with_protobuf_on_generated_metadata(monkeypatch, layout):
    from autodl.formats import _textproto
    from autodl.formats.spec import Metadata, render_metadata

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)] + _KEYS
    rng.shuffle(words)
    meta = Metadata(
        sample_count=12, sequence_size=-1, output_dim=len(_KEYS), is_sequence=False,
        col_count=1, row_count=1, num_channels=1, is_sequence_col=False,
        is_sequence_row=True, has_locality_col=True, has_locality_row=False, format="DENSE",
        label_to_index=[(k, i) for i, k in enumerate(_KEYS)],
        channel_to_index=[(w, i) for i, w in enumerate(words)],
    )  # fmt: skip
    text = render_metadata(meta, layout)
    assert _textproto.parse(text) is not None
    direct, reference = _both_parsers(text, monkeypatch)
    assert direct == reference
    assert direct.channel_to_index == meta.channel_to_index
    assert direct.label_to_index == meta.label_to_index


@pytest.mark.parametrize(
    "text",
    [
        "output_dim: 3\nmatrix_spec {\n  col_count: 2\n}\nmatrix_spec { row_count: 4 format: SPARSE }",
        "output_dim: 3 output_dim: 5 matrix_spec: { col_count: 2 col_count: 7 }",
        '  output_dim:3\n\n\tmatrix_spec{col_count:1}label_to_index_map{key:"a\\tb" value:-1}',
        "output_dim: 2\nlabel_to_index_map {\n  key: 'x'\n  value: 1\n}\n# a comment\n",
        "output_dim: 2\nlabel_to_index_map { key: 'x' 'y' value: 1 }",
        "output_dim: 2\nlabel_to_index_map { value: 1 key: 'x' }",
        "output_dim: 0x10\nmatrix_spec { format: 2 }",
        "output_dim: 2\nis_sequence: True\nmatrix_spec { has_locality_col: 1 }",
        "output_dim: 2\nlabel_to_index_map { key: '\\303\\251\\x41' value: 2147483647 }",
        "output_dim: 2\nchannel_to_index_map { key: 'a' value: 007 }",
        "",
    ],
)
def test_direct_parser_and_protobuf_agree_on_odd_texts(monkeypatch, text):
    from autodl.errors import FormatError

    try:
        direct, reference = _both_parsers(text, monkeypatch)
    except FormatError:
        from autodl.formats import _textproto

        assert _textproto.parse(text) is None  # only protobuf's parser reports errors
        return
    assert direct == reference

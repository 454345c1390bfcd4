"""metadata.textproto: parsing, writing in the official layout, DatasetSpec."""

from __future__ import annotations

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

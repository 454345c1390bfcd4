"""Text: CSV or class folders of .txt, token ids one per step, vocabulary in the metadata."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats.convert.text import tokenize
from tests.convert import inputs


def _words(c, x) -> list[str]:
    inverse = {i: t for t, i in c.ds.spec.vocabulary.items()}
    return [inverse[int(v)] for v in x.reshape(-1)]


def test_csv_text_becomes_token_ids_with_the_vocabulary_in_the_metadata(tmp_path, convert):
    rows = [[inputs.text_of(cls, i), cls, i] for i in range(8) for cls in inputs.WORDS]
    path = inputs.write_csv(tmp_path / "news.csv", ["body", "topic", "n"], rows)
    c = convert(path, label="topic")
    assert c.result.domain == "text" and c.ds.spec.shape == (-1, 1, 1, 1)
    assert c.ds.spec.vocabulary is not None and sorted(c.ds.spec.vocabulary.values()) == list(
        range(len(c.ds.spec.vocabulary))
    )
    meta = (c.result.dataset / "news.data" / "train" / "metadata.textproto").read_text()
    assert 'channel_to_index_map {\n  key: "isn\'t"' in meta  # quoted as the official tool
    for n, (text, cls, _) in enumerate(rows):
        split, x, names = c.get("news.csv", n)
        assert names == [cls] and _words(c, x) == tokenize(text)
    assert any("'n'" in w for w in c.result.warnings)  # the unused column is mentioned


def test_class_folders_of_txt_files_and_latin1_is_noted(tmp_path, convert):
    src = tmp_path / "reviews"
    for cls in ("food", "tech"):
        (src / cls).mkdir(parents=True)
        for i in range(5):
            (src / cls / f"{i}.txt").write_text(inputs.text_of(cls, i), encoding="utf-8")
    (src / "food" / "old.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    c = convert(src)
    assert c.result.domain == "text"
    assert _words(c, c.get("food/old.txt")[1]) == ["café", "crème", "brûlée"]
    assert any("Latin-1" in w for w in c.result.warnings)


def test_chinese_is_cut_into_characters(tmp_path, convert):
    rows = [["我爱北京天安门。", "a"], ["今天天气很好！", "b"]] * 6
    path = inputs.write_csv(tmp_path / "zh.csv", ["text", "label"], rows)
    c = convert(path, domain="text", language="zh")
    assert _words(c, c.get("zh.csv", 0)[1]) == list("我爱北京天安门。")
    assert tokenize("我爱 NLP 2024!", chars=True) == ["我", "爱", "NLP", "2024", "!"]


def test_a_row_without_text_or_label_is_named(tmp_path, convert):
    rows = [[inputs.text_of("sport", i), "sport" if i % 2 else "food"] for i in range(10)]
    rows[3][0] = "   "
    rows[6][1] = ""
    path = inputs.write_csv(tmp_path / "t.csv", ["text", "label"], rows)
    with pytest.raises(FormatError) as e:
        convert(path, domain="text")
    assert "t.csv data row 3" in e.value.message and "t.csv data row 6" in e.value.message
    c = convert(path, domain="text", skip_bad=True)
    assert sum(c.result.counts.values()) == 8
    assert ("t.csv", "3") not in c.records and np.all([r["row"] != "6" for r in c.manifest_rows])

"""Record order: train and test records are shuffled within their split with --seed
(a table sorted by label still gives splits whose first records hold every class);
--keep-order keeps the input's order; ids, solution and records manifest follow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autodl.formats.convert import _output, format_dataset
from autodl.formats.dataset import open_dataset
from tests.conftest import run_autodl
from tests.convert import inputs

SHARES = {"a": 500, "b": 300, "c": 150, "d": 50}  # rows per class, sorted by class


def _sorted_table(tmp_path: Path) -> Path:
    """Rows sorted by label; feature ``n`` is the row number (to find the row back)."""
    rows = [
        [n, float(n % 7), cls]
        for n, cls in enumerate(c for c, k in SHARES.items() for _ in range(k))
    ]
    return inputs.write_csv(tmp_path / "sorted.csv", ["n", "v", "label"], rows)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _outputs(result) -> dict[str, bytes]:
    """The dataset's files and the records manifest (not the zip: it holds times)."""
    tree = _tree(result.dataset)
    tree["records.csv"] = result.records.read_bytes()
    return tree


def _first_share(labels: np.ndarray, classes: list[str], fraction: float) -> dict[str, int]:
    head = labels[: int(len(labels) * fraction)]
    return {c: int(head[:, k].sum()) for k, c in enumerate(classes)}


def test_a_table_sorted_by_label_gives_shuffled_splits(tmp_path, convert):
    path = _sorted_table(tmp_path)
    c = convert(path, name="shuffled", test_size=0.3)
    train = np.stack([ex.labels for ex in c.ds.train])
    head = _first_share(train, c.classes, 0.1)
    n_head = int(len(train) * 0.1)
    total = sum(SHARES.values())
    for cls, count in head.items():
        expected = n_head * SHARES[cls] / total
        assert abs(count - expected) <= 0.5 * expected + 3, (cls, head)  # every class, ~its share
    sol = c.ds.solution
    assert _first_share(sol, c.classes, 0.1)["a"] < 0.9 * int(len(sol) * 0.1)  # test too
    # ids count up in the written order: test 0 …, train after them
    assert [ex.id for ex in c.ds.test] == list(range(len(sol)))
    assert [ex.id for ex in c.ds.train] == list(range(len(sol), len(sol) + len(train)))
    kept = convert(path, name="kept", test_size=0.3, keep_order=True)
    kept_train = np.stack([ex.labels for ex in kept.ds.train])
    assert _first_share(kept_train, kept.classes, 0.1) == {"a": n_head, "b": 0, "c": 0, "d": 0}
    rows = [int(r["row"]) for r in kept.manifest_rows if r["split"] == "train"]
    assert rows == sorted(rows)  # input order
    # the split itself does not depend on the order option
    assert {k for k, v in c.records.items() if v[0] == "test"} == {
        k for k, v in kept.records.items() if v[0] == "test"
    }


def test_solution_and_manifest_rows_follow_the_records(tmp_path, convert):
    path = _sorted_table(tmp_path)
    c = convert(path, test_size=0.3)
    labels = [cls for cls, k in SHARES.items() for _ in range(k)]
    assert len(c.manifest_rows) == len(labels)
    for r in c.manifest_rows:  # manifest row -> record id -> its x (feature n) and labels
        split, x, names = c.get(r["source"], r["row"])
        n = int(r["row"])
        assert split == r["split"] and x.reshape(-1)[0] == n and names == [labels[n]]
    order = [(r["split"], int(r["id"])) for r in c.manifest_rows]
    test_ids = [ex.id for ex in c.ds.test]
    train_ids = [ex.id for ex in c.ds.train]
    assert order == [("test", i) for i in test_ids] + [("train", i) for i in train_ids]


def test_the_same_seed_gives_the_same_bytes(tmp_path):
    path = _sorted_table(tmp_path)
    one = format_dataset(path, tmp_path / "one", name="d", seed=7, workers=1)
    two = format_dataset(path, tmp_path / "two", name="d", seed=7, workers=1)
    other = format_dataset(path, tmp_path / "other", name="d", seed=8, workers=1)
    assert _outputs(one) == _outputs(two)
    assert _outputs(one) != _outputs(other)


def test_records_spooled_to_bucket_files_give_the_same_bytes(tmp_path, monkeypatch):
    """The bounded-memory path (buckets on disk) writes what the in-memory one does."""
    path = _sorted_table(tmp_path)
    whole = format_dataset(path, tmp_path / "whole", name="d", seed=3, workers=1)
    flushes = []
    real = _output._Spool._flush

    def counted(self):
        flushes.append(len(self.held))
        real(self)
        assert not self.held

    monkeypatch.setattr(_output, "SPOOL_FLUSH_BYTES", 2_000)
    monkeypatch.setattr(_output, "SPOOL_BUCKET_BYTES", 5_000)
    monkeypatch.setattr(_output._Spool, "_flush", counted)
    spooled = format_dataset(path, tmp_path / "spooled", name="d", seed=3, workers=1)
    assert len(flushes) > 10  # the records went through bucket files
    assert _outputs(whole) == _outputs(spooled)
    assert not list(spooled.dataset.parent.glob(".d.*"))  # no spool left behind


def test_unlabelled_rows_stay_in_input_order(tmp_path, convert):
    path = _sorted_table(tmp_path)
    extra = inputs.write_csv(tmp_path / "new.csv", ["n", "v"], [[n, 1.0] for n in range(40)])
    c = convert(path, unlabelled=extra)
    assert [int(ex.x.reshape(-1)[0]) for ex in c.ds.unlabelled] == list(range(40))


def test_texts_and_series_are_shuffled_too(tmp_path, convert):
    words = {"a": "sun sky bright warm day light", "b": "rain cloud grey wet cold dark"}
    rows = [[f"{words[cls]} {i}", cls] for cls in "ab" for i in range(100)]
    c = convert(inputs.write_csv(tmp_path / "t.csv", ["text", "label"], rows), domain="text")
    head = np.stack([ex.labels for ex in c.ds.train])[:13]
    assert 0 < head[:, 0].sum() < 13
    long = [[f"s{k}", t, float(k + t), "ab"[k >= 30]] for k in range(60) for t in range(3)]
    s = convert(inputs.write_csv(tmp_path / "l.csv", ["id", "time", "v", "label"], long))
    assert s.result.domain == "speech"
    head = np.stack([ex.labels for ex in s.ds.train])[:8]
    assert 0 < head[:, 0].sum() < 8


def test_files_keep_their_order_with_keep_order(tmp_path, convert):
    inputs.write_images(tmp_path / "pets", per_class=6)
    kept = convert(tmp_path / "pets", name="kept", keep_order=True)
    sources = [r["source"] for r in kept.manifest_rows if r["split"] == "train"]
    classes = [s.split("/")[0] for s in sources]
    assert classes == sorted(classes)  # class folders in natural order
    mixed = convert(tmp_path / "pets", name="mixed")
    sources = [r["source"] for r in mixed.manifest_rows if r["split"] == "train"]
    assert [s.split("/")[0] for s in sources] != sorted(s.split("/")[0] for s in sources)


@pytest.mark.slow
def test_cli_keep_order(tmp_path):
    path = _sorted_table(tmp_path)
    proc = run_autodl(
        "format", path, "--output", tmp_path / "out", "--keep-order", "--seed", "2", timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    ds = open_dataset(tmp_path / "out" / "sorted")
    labels = np.stack([ex.labels for ex in ds.train])
    assert labels[:300, 0].all() and not labels[-30:, 0].any()  # sorted as the input

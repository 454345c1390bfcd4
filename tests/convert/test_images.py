"""Images: every format, both layouts, multi-label, resizing, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autodl.errors import FormatError
from autodl.formats.images import decode_frame
from tests.convert import inputs


def test_every_format_round_trips_with_its_class(tmp_path, convert):
    src = tmp_path / "pets"
    expected = inputs.write_images(src, per_class=10)
    c = convert(src)
    assert c.result.domain == "image" and c.classes == ["cat", "dog", "owl"]
    assert c.ds.spec.shape == (1, 12, 16, 3) and c.ds.spec.format == "COMPRESSED"
    assert c.result.counts == {"train": 20, "test": 10, "unlabelled": 0}
    for rel, (cls, _) in expected.items():
        split, x, names = c.get(rel)
        assert names == [cls], rel
        assert x.shape == (1, 12, 16, 3)
        want = np.asarray(Image.open(src / rel).convert("RGB"))  # GIF/WebP: as the file decodes
        if not rel.endswith(".jpg"):  # lossless formats, and re-encoded GIF/BMP/WebP as PNG
            assert np.array_equal(np.rint(x[0] * 255).astype(np.uint8), want), rel


def test_jpeg_and_png_bytes_are_kept_others_become_png(tmp_path, convert):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=5)
    c = convert(src)
    raw = {}
    for split in ("train", "test"):
        for ex in getattr(c.ds, split).iter_raw():
            raw[(split, ex.id)] = ex.frames[0]
    for (source, _), key in c.records.items():
        data = raw[key]
        if source.endswith((".jpg", ".png")):
            assert data == (src / source).read_bytes(), source
        else:
            assert data[:8] == b"\x89PNG\r\n\x1a\n", source


def test_labels_csv_multilabel_and_gray(tmp_path, convert):
    src = tmp_path / "scenes"
    src.mkdir()
    rows = []
    tags = [["sky"], ["sky", "sea"], ["sea", "sand"], ["sand"], ["sky", "sand"], ["sea"]] * 3
    for i, t in enumerate(tags):
        Image.fromarray(inputs.image_pixels(i % 3, i, channels=1)).save(src / f"f{i}.png")
        rows.append([f"f{i}.png", " ".join(t)])
    inputs.write_csv(src / "labels.csv", ["FileName", "Labels"], rows)
    c = convert(src, test_size=6)
    assert c.classes == ["sand", "sea", "sky"] and c.ds.spec.shape == (1, 12, 16, 1)
    assert c.result.counts["test"] == 6
    for i, t in enumerate(tags):
        assert c.get(f"f{i}.png")[2] == sorted(t)


def test_official_file_format_label_indices_named_by_label_name(tmp_path, convert):
    src = tmp_path / "digits"
    src.mkdir()
    rows = []
    for i in range(12):
        Image.fromarray(inputs.image_pixels(i % 2, i, channels=1)).save(src / f"{i}.png")
        rows.append([f"{i}.png", str(i % 2)])
    inputs.write_csv(src / "labels.csv", ["FileName", "Labels"], rows)
    (src / "label.name").write_text("zero\none\n")
    c = convert(src)
    assert c.classes == ["zero", "one"]
    assert c.get("3.png")[2] == ["one"]


def test_max_size_shrinks_keeping_the_aspect_ratio_and_sizes_may_vary(tmp_path, convert):
    src = tmp_path / "big"
    for k, cls in enumerate(["a", "b"]):
        (src / cls).mkdir(parents=True)
        for i in range(4):
            arr = np.full((40 + 10 * i, 80, 3), 40 * k + 30, np.uint8)
            Image.fromarray(arr).save(src / cls / f"{i}.jpg", quality=95)
    c = convert(src, max_size=20)
    assert c.ds.spec.shape[1:3] == (-1, 20)
    split, x, _ = c.get("a/0.jpg")
    assert x.shape == (1, 10, 20, 3) and abs(float(x.mean()) - 30 / 255) < 0.02
    assert convert(src, name="orig").ds.spec.shape[1:3] == (-1, 80)


def test_a_corrupt_image_is_named_and_skip_bad_leaves_it_out(tmp_path, convert):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=4)
    (src / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    good = (src / "cat" / "img0.png").read_bytes()
    (src / "cat" / "cut.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(FormatError) as e:
        convert(src)
    assert "dog/broken.png" in e.value.message and "cat/cut.png" in e.value.message
    assert "--skip-bad" in e.value.hint
    c = convert(src, skip_bad=True)
    assert sorted(s for s, _ in c.result.skipped) == ["cat/cut.png", "dog/broken.png"]
    assert c.result.counts["train"] + c.result.counts["test"] == 12


def test_train_test_folders_give_the_split_and_unlabelled_keeps_input_order(tmp_path, convert):
    src = tmp_path / "ds"
    for part in ("train", "test"):
        inputs.write_images(src / part, classes=("x", "y"), per_class=3 if part == "train" else 2)
    unl = tmp_path / "new"
    unl.mkdir()
    for i in (10, 2, 1):
        Image.fromarray(inputs.image_pixels(0, i)).save(unl / f"n{i}.png")
    c = convert(src, unlabelled=unl)
    assert c.result.counts == {"train": 6, "test": 4, "unlabelled": 3}
    assert all(
        c.get(f"test/{cls}/img{i}.{e}")[0] == "test"
        for cls in "xy"
        for i, e in ((0, "png"), (1, "jpg"))
    )
    rows = [r for r in c.manifest_rows if r["split"] == "unlabelled"]
    assert [(r["id"], r["source"]) for r in rows] == [
        ("0", "n1.png"),
        ("1", "n2.png"),
        ("2", "n10.png"),
    ]
    got = np.rint(c.ds.unlabelled.load().x[2, 0] * 255).astype(np.uint8)
    assert np.array_equal(got, np.asarray(Image.open(unl / "n10.png")))


def test_decoding_on_two_processes_gives_the_same_dataset(tmp_path, convert):
    src = tmp_path / "pets"
    inputs.write_images(src, per_class=8)
    one = convert(src, name="one", workers=1)
    two = convert(src, name="two", workers=2)
    for split in ("train", "test"):
        a, b = getattr(one.ds, split).load(), getattr(two.ds, split).load()
        assert np.array_equal(a.x, b.x) and np.array_equal(a.labels, b.labels)
    assert decode_frame((src / "cat/img0.png").read_bytes(), 3).shape == (12, 16, 3)


def test_a_csv_of_file_names_as_input_finds_files_kept_in_a_subfolder(tmp_path, convert):
    data = tmp_path / "kaggle"
    (data / "images").mkdir(parents=True)
    rows = []
    for i in range(12):
        Image.fromarray(inputs.image_pixels(i % 2, i)).save(data / "images" / f"p{i}.png")
        rows.append([f"p{i}.png", "yes" if i % 2 else "no"])
    table = inputs.write_csv(data / "train.csv", ["image_id", "label"], rows)
    c = convert(table)
    assert c.result.domain == "image" and c.classes == ["no", "yes"]
    assert c.get("images/p3.png")[2] == ["yes"]

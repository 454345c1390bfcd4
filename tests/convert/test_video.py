"""Video: mp4/avi/webm/mov/mkv sampled at a capped rate and count, one JPEG per frame."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats.convert.video import sample_times
from tests.convert import inputs


def _centre(frame: np.ndarray) -> np.ndarray:
    """(row, col) centre of brightness of a (H, W, C) frame."""
    w = frame.mean(axis=2) ** 4
    r, c = np.indices(w.shape)
    return np.array([(w * r).sum(), (w * c).sum()]) / w.sum()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("video") / "moves"
    return root, inputs.write_videos(root, exts=("mp4", "avi", "webm", "mov", "mkv"), per_class=5)


def test_every_container_decodes_to_gray_jpeg_frames_that_move_the_right_way(clips, convert):
    root, expected = clips
    c = convert(root, fps=10, max_frames=8)
    assert c.result.domain == "video" and c.ds.spec.shape == (8, 32, 32, 1)
    assert c.classes == ["down", "left", "right", "up"]
    raw = next(iter(c.ds.train.iter_raw()))
    assert len(raw.frames) == 8 and all(f[:2] == b"\xff\xd8" for f in raw.frames)
    for rel, cls in expected.items():
        _, x, names = c.get(rel)
        assert names == [cls], rel
        move = _centre(x[-1]) - _centre(x[0])
        dr, dc = inputs.MOVES[cls]
        assert np.sign(np.round(move / 3)).tolist() == [np.sign(dr), np.sign(dc)], (rel, move)


def test_frames_are_capped_by_rate_and_count(clips, convert):
    root, _ = clips
    c = convert(root, fps=5, max_frames=50)  # 0.8 s clips at 5 fps: 4 frames
    assert c.ds.spec.shape[0] == 4
    c = convert(root, name="few", fps=100, max_frames=3)  # never more than the clip has; 3 at most
    assert c.ds.spec.shape[0] == 3


def test_sample_times_spread_over_long_clips():
    assert sample_times(0.8, 100.0, 50)[:3].tolist() == pytest.approx([0.0, 0.016, 0.032])
    assert sample_times(0.3, 10.0, 50).tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert sample_times(60.0, 5.0, 4).tolist() == [0.0, 15.0, 30.0, 45.0]
    assert len(sample_times(None, 5.0, 7)) == 7


def test_colour_video_keeps_three_channels_and_max_size_shrinks(tmp_path, convert):
    root = tmp_path / "colour"
    inputs.write_videos(root, exts=("mp4",), per_class=2, colour=True)
    c = convert(root, fps=10, max_frames=4, max_size=16)
    assert c.ds.spec.shape == (4, 16, 16, 3)
    x = c.ds.train.load().x
    assert x[..., 0].max() > 0.8 and x[..., 1].max() < 0.5  # red squares stay red


def test_a_broken_video_is_named(tmp_path, convert):
    root = tmp_path / "moves"
    inputs.write_videos(root, exts=("mp4",), per_class=2)
    (root / "up" / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    with pytest.raises(FormatError, match="up/bad.mp4"):
        convert(root)
    assert convert(root, skip_bad=True).result.skipped[0][0] == "up/bad.mp4"

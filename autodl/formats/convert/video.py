"""Video: frames sampled at a capped rate and count, one JPEG per frame (COMPRESSED).

As the reference ``movingdigits`` (the official tool decoded AVI files and
re-encoded each frame as JPEG): a record is (T, H, W, C) with one encoded
frame per step. Frames are taken at ``--fps`` (never more often than the
video has them: a frame is never repeated); when that gives more than
``--max-frames``, ``--max-frames`` are taken evenly over the whole clip
instead of only its beginning. A video whose frames are all gray is stored
gray (C = 1). ``--max-size`` shrinks frames as for images.

Decoding is FFmpeg through PyAV (MP4, AVI, MOV, WebM, MKV and the rest).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from autodl.formats.convert._items import BadInput, Decoded
from autodl.formats.images import encode_frame

EXTENSIONS = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
JPEG_QUALITY = 90
_GRAY_TOLERANCE = 2  # levels: colour conversion of gray video leaves R, G, B this close


def sample_times(duration: float | None, fps: float, max_frames: int) -> np.ndarray:
    """Times (s) at which to take frames.

    >>> sample_times(2.0, 2.0, 10).tolist()
    [0.0, 0.5, 1.0, 1.5]
    >>> sample_times(10.0, 5.0, 4).tolist()
    [0.0, 2.5, 5.0, 7.5]
    """
    if duration is None or duration <= 0:
        return np.arange(max_frames) / fps
    n = int(np.ceil(duration * fps - 1e-9))
    if n <= max_frames:
        return np.arange(max(n, 1)) / fps
    return np.arange(max_frames) * (duration / max_frames)


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base
    return None


def _shrink(rgb: np.ndarray, max_size: int | None) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max_size is None or max(h, w) <= max_size:
        return rgb
    img = Image.fromarray(rgb)
    img.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
    return np.asarray(img)


def frames(path: Path, fps: float, max_frames: int, max_size: int | None) -> list[np.ndarray]:
    """The sampled frames of a video as RGB arrays; raises `BadInput`."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInput("holds no video stream")
            stream = container.streams.video[0]
            times = sample_times(_duration(container, stream), fps, max_frames)
            taken: list[np.ndarray] = []
            k = 0
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else len(taken) / fps
                if t + 1e-6 < times[k]:
                    continue
                rgb = _shrink(frame.to_ndarray(format="rgb24"), max_size)
                if taken and rgb.shape != taken[0].shape:  # a mid-stream size change
                    size = (taken[0].shape[1], taken[0].shape[0])
                    rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
                taken.append(rgb)
                while k < len(times) and times[k] <= t + 1e-6:
                    k += 1  # targets this frame already covers: no repeated frames
                if k >= len(times):
                    break
    except BadInput:
        raise
    except Exception as e:  # noqa: BLE001 - FFmpeg's errors have many types
        raise BadInput(f"not a readable video ({e})") from None
    if not taken:
        raise BadInput("holds no decodable frame")
    return taken


def decode(path: Path, fps: float, max_frames: int, max_size: int | None) -> Decoded:
    """One video file -> a record of JPEG frames."""
    rgb = frames(path, fps, max_frames, max_size)
    gray = all(
        int(np.abs(f[..., 0].astype(np.int16) - f[..., 1]).max()) <= _GRAY_TOLERANCE
        and int(np.abs(f[..., 0].astype(np.int16) - f[..., 2]).max()) <= _GRAY_TOLERANCE
        for f in rgb
    )
    if gray:
        pixels = [f.mean(axis=2, keepdims=True).round().astype(np.uint8) for f in rgb]
    else:
        pixels = rgb
    encoded = [encode_frame(p, "JPEG", JPEG_QUALITY) for p in pixels]
    h, w = rgb[0].shape[:2]
    return Decoded(encoded, (len(encoded), h, w, 1 if gray else 3))

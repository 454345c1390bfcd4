"""Tiny raw inputs of every kind, written for real (Pillow, soundfile, PyAV, csv, pyarrow).

Each writer returns what a correct conversion must give back, so the tests can
compare the dataset with the input: file -> class, and the data itself where it
survives exactly (PNG pixels, 16-bit samples, table values).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP", "gif": "GIF", "webp": "WEBP"}


def image_pixels(k: int, i: int, size=(12, 16), channels: int = 3) -> np.ndarray:
    """Class k: a bright band in row band k, plus noise that depends on i."""
    rng = np.random.default_rng(100 * k + i)
    h, w = size
    a = rng.integers(0, 60, (h, w, channels)).astype(np.uint8)
    a[k * 3 : k * 3 + 3] = 220
    return a[:, :, 0] if channels == 1 else a


def write_images(
    root: Path, classes=("cat", "dog", "owl"), per_class=6, exts=tuple(IMAGE_FORMATS)
) -> dict[str, tuple[str, np.ndarray]]:
    """Class folders of images in every format; returns {relative path: (class, pixels)}."""
    out = {}
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ext = exts[i % len(exts)]
            px = image_pixels(k, i)
            Image.fromarray(px).save(root / cls / f"img{i}.{ext}", format=IMAGE_FORMATS[ext])
            out[f"{cls}/img{i}.{ext}"] = (cls, px)
    return out


def tone(k: int, i: int, rate: int, seconds: float = 0.25) -> np.ndarray:
    """Class k: a sine of (300 + 200 k) Hz, as int16, length depending on i."""
    n = int(rate * seconds) + 37 * i
    t = np.arange(n) / rate
    return np.round(9000 * np.sin(2 * np.pi * (300 + 200 * k) * t + i)).astype(np.int16)


def write_audio(
    root: Path,
    ext: str,
    rate: int = 16000,
    classes=("low", "mid", "high"),
    per_class=4,
    stereo=False,
) -> dict[str, tuple[str, np.ndarray]]:
    """Class folders of audio files; returns {relative path: (class, int16 samples (mono))}."""
    import soundfile as sf

    subtype = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS", "mp3": "MPEG_LAYER_III"}[ext]
    out = {}
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            x = tone(k, i, rate)
            data = np.stack([x, x], axis=1) if stereo else x
            path = root / cls / f"clip{i}.{ext}"
            sf.write(str(path), data, rate, subtype=subtype)
            out[f"{cls}/clip{i}.{ext}"] = (cls, x)
    return out


MOVES = {"left": (0, -2), "right": (0, 2), "up": (-2, 0), "down": (2, 0)}


def clip_frames(cls: str, i: int, n: int = 8, size: int = 32, colour: bool = False) -> np.ndarray:
    """A bright square moving in the class direction: (n, size, size, 3) uint8."""
    dr, dc = MOVES[cls]
    frames = np.full((n, size, size, 3), 16, np.uint8)
    r0, c0 = size // 2 - 4 - dr * n // 4, size // 2 - 4 - dc * n // 4 + (i % 3) - 1
    for t in range(n):
        r, c = r0 + dr * t // 2, c0 + dc * t // 2
        frames[t, r : r + 8, c : c + 8] = (240, 60, 60) if colour else 235
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 10) -> None:
    """Write frames with PyAV: mp4/mov/mkv (H.264), avi (MJPEG), webm (VP8)."""
    import av

    ext = path.suffix.lower()
    codec, pix = {".avi": ("mjpeg", "yuvj420p"), ".webm": ("libvpx", "yuv420p")}.get(
        ext, ("libx264", "yuv420p")
    )
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix
        if codec == "libx264":
            s.options = {"crf": "10", "preset": "ultrafast"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def write_videos(
    root: Path, exts=("mp4", "avi", "webm"), per_class=3, n=8, colour=False
) -> dict[str, str]:
    """Class folders of clips; returns {relative path: class}."""
    out = {}
    for cls in MOVES:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            ext = exts[i % len(exts)]
            write_video(root / cls / f"v{i}.{ext}", clip_frames(cls, i, n, colour=colour))
            out[f"{cls}/v{i}.{ext}"] = cls
    return out


WORDS = {
    "sport": "ball goal team match win score",
    "food": "bread soup cheese taste cook meal",
    "tech": "code chip data cloud robot app",
}


def text_of(cls: str, i: int) -> str:
    rng = np.random.default_rng(i + 7 * len(cls))
    words = WORDS[cls].split()
    return " ".join(rng.choice(words, 6 + i % 5)) + ", isn't it?"


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def tabular_rows(n: int = 60, seed: int = 0) -> tuple[list[str], list[list]]:
    """Numeric, categorical and missing values; label 'species' in 3 classes."""
    rng = np.random.default_rng(seed)
    header = ["id", "length", "colour", "weight", "species"]
    species = ["alpha", "beta", "gamma"]
    rows = []
    for i in range(n):
        k = i % 3
        length = round(float(10 * k + rng.normal()), 3)
        weight = "" if i % 7 == 3 else round(float(rng.normal(5, 1)), 3)
        rows.append(
            [f"r{i}", length, ["red", "green", "blue"][(k + i // 9) % 3], weight, species[k]]
        )
    return header, rows

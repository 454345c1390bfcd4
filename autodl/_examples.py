"""The examples the model gets most wrong, made by the job and stored with its results.

For the run's last counted prediction against the solution, `worst_mistakes` picks the
test rows the model got wrong with the most confidence (a few per class, a bounded
number in all); `write_examples` reads *only those records* of the test split
(`TFRecordSplit.read_at`: the others pass undecoded, one at a time) and writes what
people would rather look at than read into ``<output>/examples/``:

    examples/index.json     the examples, most confident mistake first (see `write_examples`)
    examples/<k>.png        images as thumbnails, videos as a strip of frames, audio and
                            other series as a small waveform; text is decoded to words
                            with the dataset's vocabulary and tabular rows listed, in
                            index.json (no image)

The web service serves these files as they are: it never opens a dataset for them.

>>> import numpy as np
>>> sol = np.eye(3)[[0, 1, 2, 0]]
>>> pred = np.array([[.1, .8, .1], [.1, .8, .1], [.6, .2, .2], [.5, .3, .2]])
>>> [(m.row, m.predicted, round(m.probability, 2)) for m in worst_mistakes(sol, pred)]
[(0, [1], 0.8), (2, [0], 0.6)]
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autodl.scoring.metrics import is_multiclass

FOLDER = "examples"
INDEX = "index.json"
PER_CLASS = 3  # mistakes kept per class
MOST = 24  # mistakes kept in all (the report embeds them: keep it small)
THUMB = 128  # pixels on the longest side of an image thumbnail
FRAMES = 6  # frames in a video's strip
FRAME_HEIGHT = 64
SERIES_SIZE = (240, 64)  # width, height of a waveform
MAX_WORDS = 80
MAX_FEATURES = 16
THRESHOLD = 0.5  # multi-label: a label is predicted from this probability on


@dataclass(frozen=True)
class Mistake:
    """A test row the model got wrong.

    ``label`` is the class it is filed under (the true class for multi-class data, the
    label got wrong for multi-label data); ``probability`` is the predicted probability
    shown with it (of the predicted class; for multi-label, of ``label``); ``error`` how
    confidently wrong it is (the same number for multi-class, the distance from the
    truth for multi-label), by which the mistakes are ordered.
    """

    row: int
    label: int
    true: list[int]
    predicted: list[int]
    probability: float
    error: float


def probabilities(prediction: np.ndarray) -> np.ndarray:
    """Each row as shares summing to 1 (negative scores as 0; an all-zero row uniform).

    >>> probabilities(np.array([[2e-5, 6e-5], [-1.0, 0.0]])).round(2).tolist()
    [[0.25, 0.75], [0.5, 0.5]]
    """
    p = np.clip(np.asarray(prediction, dtype=np.float64), 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / max(p.shape[1], 1))


def worst_mistakes(
    solution: np.ndarray,
    prediction: np.ndarray,
    *,
    per_class: int = PER_CLASS,
    most: int = MOST,
    threshold: float = THRESHOLD,
) -> list[Mistake]:
    """The most confident mistakes first, at most ``per_class`` per class and ``most`` in
    all; ties keep row order.

    Multi-class: a row is wrong when the arg-max of the prediction is not its class,
    and its confidence is the probability of the class predicted: its share of the row,
    negative scores taken as 0 (an engine's rows need not sum to 1: the scores are
    ranks; the official soft accuracy normalises them so too). Multi-label: a label is
    predicted when its value (clipped to [0, 1]) is at least ``threshold``; a row is
    wrong when one of its labels is, and it is filed under the label furthest from the
    truth.
    """
    solution = np.asarray(solution, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    if solution.shape != prediction.shape or solution.ndim != 2:
        raise ValueError(
            f"the prediction has shape {prediction.shape}, the solution {solution.shape}"
        )
    found: list[Mistake] = []
    if is_multiclass(solution):
        prediction = probabilities(prediction)
        truth = solution.argmax(axis=1)
        guess = prediction.argmax(axis=1)
        for r in np.flatnonzero(truth != guess):
            p = float(prediction[r, guess[r]])
            found.append(Mistake(int(r), int(truth[r]), [int(truth[r])], [int(guess[r])], p, p))
    else:
        prediction = np.clip(prediction, 0.0, 1.0)
        positive = solution > 0.5
        error = np.where(positive, 1.0 - prediction, prediction)
        wrong = np.where(positive, prediction < threshold, prediction >= threshold)
        error = np.where(wrong, error, -1.0)
        for r in np.flatnonzero(wrong.any(axis=1)):
            c = int(error[r].argmax())
            found.append(
                Mistake(
                    int(r),
                    c,
                    np.flatnonzero(positive[r]).tolist(),
                    np.flatnonzero(prediction[r] >= threshold).tolist(),
                    float(prediction[r, c]),
                    float(error[r, c]),
                )
            )
    found.sort(key=lambda m: (-m.error, m.row))
    kept: list[Mistake] = []
    taken: dict[int, int] = {}
    for m in found:
        if taken.get(m.label, 0) < per_class:
            taken[m.label] = taken.get(m.label, 0) + 1
            kept.append(m)
            if len(kept) >= most:
                break
    return kept


# ------------------------------------------------------------------ pictures


def _png(img) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Pixels for the eye: [0, 1] data as is, anything else stretched to its range."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float32))
    lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
    if lo < 0.0 or hi > 1.0:
        x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _image(frame: np.ndarray):
    """A Pillow image of one (H, W, C) frame: gray, or RGB from its first 3 channels."""
    from PIL import Image

    if frame.shape[-1] >= 3:
        return Image.fromarray(np.ascontiguousarray(frame[..., :3]), "RGB")
    return Image.fromarray(np.ascontiguousarray(frame[..., 0]), "L")


def _fit(img, height: int | None = None, side: int = THUMB):
    """Scaled to ``height`` (or the longest side to ``side``); small images are enlarged
    with square pixels (an 8 x 8 digit stays readable), large ones averaged down."""
    from PIL import Image

    w, h = img.size
    scale = height / h if height else side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BOX)


def image_png(x: np.ndarray) -> bytes:
    """A thumbnail of an image example (1, H, W, C)."""
    return _png(_fit(_image(_to_uint8(x[0]))))


def video_png(x: np.ndarray, frames: int = FRAMES) -> bytes:
    """A strip of ``frames`` frames of a video example (T, H, W, C), evenly spaced."""
    from PIL import Image

    pixels = _to_uint8(x)
    picks = np.unique(np.linspace(0, len(pixels) - 1, min(frames, len(pixels))).round().astype(int))
    tiles = [_fit(_image(pixels[t]), height=FRAME_HEIGHT) for t in picks]
    gap = 2
    strip = Image.new(
        tiles[0].mode, (sum(t.width for t in tiles) + gap * (len(tiles) - 1), FRAME_HEIGHT), 255
    )
    left = 0
    for tile in tiles:
        strip.paste(tile, (left, 0))
        left += tile.width + gap
    return _png(strip)


def series_png(x: np.ndarray, size: tuple[int, int] = SERIES_SIZE) -> bytes:
    """A waveform of a series example (T, 1, 1, C), its first channel: the range of the
    values in each column of pixels, so that a long recording keeps its envelope."""
    from PIL import Image, ImageDraw

    w, h = size
    values = np.nan_to_num(np.asarray(x, dtype=np.float64).reshape(len(x), -1)[:, 0])
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    draw.line([(0, h // 2), (w, h // 2)], fill="#e5e7eb")
    if len(values):
        lo, hi = float(values.min()), float(values.max())
        span = max(hi - lo, 1e-12)
        starts = np.minimum(
            np.linspace(0, len(values), w, endpoint=False).astype(int), len(values) - 1
        )
        tops = np.maximum.reduceat(values, starts)  # a column past the samples repeats its
        bottoms = np.minimum.reduceat(values, starts)  # neighbour's sample (short series)
        scale = (h - 6) / span
        for col, (top, bottom) in enumerate(zip(tops, bottoms, strict=True)):
            draw.line(
                [(col, h - 1.5 - (top - lo) * scale), (col, h - 1.5 - (bottom - lo) * scale)],
                fill="#2563eb",
            )
    return _png(img)


def words(x: np.ndarray, vocabulary: dict[str, int] | None, most: int = MAX_WORDS) -> str:
    """A text example's token ids as words (``<id>`` for an id outside the vocabulary).

    >>> words(np.array([2, 0, 1, 7], dtype=np.float32).reshape(4, 1, 1, 1), {"a": 0, "b": 1, "c": 2})
    'c a b <7>'
    """
    names = {i: w for w, i in (vocabulary or {}).items()}
    ids = np.asarray(x).reshape(len(x), -1)[:, 0].round().astype(np.int64)
    text = " ".join(names.get(int(i), f"<{int(i)}>") for i in ids[:most])
    return text + (f" … ({len(ids)} tokens)" if len(ids) > most else "")


def features(x: np.ndarray, most: int = MAX_FEATURES) -> str:
    """A tabular example's first values."""
    flat = np.asarray(x, dtype=np.float64).ravel()
    text = ", ".join(f"{v:.4g}" for v in flat[:most])
    return text + (f", … ({len(flat)} values)" if len(flat) > most else "")


def render(x: np.ndarray, spec) -> tuple[str, bytes | None, str | None]:
    """(kind, PNG or None, text or None) of one example of a dataset of ``spec``."""
    domain = spec.domain
    if domain == "image":
        return "image", image_png(x), None
    if domain == "video":
        return "video", video_png(x), None
    if domain == "text":
        return "text", None, words(x, spec.vocabulary)
    if domain == "speech":
        return "series", series_png(x), None
    return "features", None, features(x)


# ------------------------------------------------------------------ the files


def write_examples(
    dataset, prediction: np.ndarray, out_dir: str | Path, *, prediction_index: int | None = None
) -> dict | None:
    """Write ``examples/`` (index.json and the PNGs) for ``prediction`` of ``dataset``'s
    test split; return the index (None without a solution).

    The index: ``task`` ("multi-class" or "multi-label"), ``domain``, ``prediction``
    (its index), ``rows`` (test rows), ``mistakes`` (rows wrong), ``per_class``,
    ``threshold`` (multi-label) and ``examples``, each ``{row, id, label, true,
    predicted, probability, error, kind, image, text}`` (label names; ``image`` the
    PNG's name in ``examples/``, or None; ``text`` the words or values, or None).
    """
    if dataset.solution is None:
        return None
    solution = np.asarray(dataset.solution, dtype=np.float64)
    prediction = np.asarray(prediction, dtype=np.float64)
    spec = dataset.spec
    multiclass = is_multiclass(solution)
    chosen = worst_mistakes(solution, prediction)
    read_at = getattr(dataset.test, "read_at", None)
    wanted = {m.row for m in chosen}
    if read_at is not None:
        records = read_at(wanted)
    else:  # an in-memory split: walk it, keep the wanted ones
        records = {i: e for i, e in enumerate(dataset.test) if i in wanted}
    # as `ScoreResult.class_name` names them when the dataset has no names
    names = spec.label_names or [f"class {i}" for i in range(solution.shape[1])]
    folder = Path(out_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    shown = []
    for k, m in enumerate(chosen):
        example = records[m.row]
        kind, png, text = render(example.x, spec)
        image = None
        if png is not None:
            image = f"{k:02d}.png"
            (folder / image).write_bytes(png)
        shown.append(
            {
                "row": m.row,
                "id": int(example.id),
                "label": names[m.label],
                "true": [names[c] for c in m.true],
                "predicted": [names[c] for c in m.predicted],
                "probability": round(m.probability, 6),
                "error": round(m.error, 6),
                "kind": kind,
                "image": image,
                "text": text,
            }
        )
    if multiclass:
        wrong = int((solution.argmax(axis=1) != prediction.argmax(axis=1)).sum())
    else:
        wrong = int(((solution > 0.5) != (prediction >= THRESHOLD)).any(axis=1).sum())
    index = {
        "task": "multi-class" if multiclass else "multi-label",
        "domain": spec.domain,
        "prediction": prediction_index,
        "rows": int(len(solution)),
        "mistakes": wrong,
        "per_class": PER_CLASS,
        "threshold": None if multiclass else THRESHOLD,
        "examples": shown,
    }
    tmp = folder / (INDEX + ".tmp")
    tmp.write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    tmp.replace(folder / INDEX)
    return index


def read_images(index: dict, out_dir: str | Path) -> dict[str, bytes]:
    """The PNGs an index names, by name (for the self-contained report)."""
    folder = Path(out_dir) / FOLDER
    return {
        e["image"]: (folder / e["image"]).read_bytes()
        for e in index.get("examples", [])
        if e.get("image") and (folder / e["image"]).is_file()
    }

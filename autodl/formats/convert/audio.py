"""Audio: decode, mix to mono, resample, store one sample per step (DENSE).

As the reference ``spokendigits`` (written by the official tool from 16-bit
WAV files): each record is (T, 1, 1, 1) with the samples as 16-bit PCM values
stored as floats in -32768 … 32767 (not scaled to [-1, 1]). A 16-bit file at
the target rate is stored exactly as its samples.

Decoding: libsndfile (``soundfile``: WAV, FLAC, OGG/Vorbis/Opus, MP3 with
libsndfile ≥ 1.1, AIFF), else FFmpeg through PyAV (M4A/AAC, and anything
libsndfile refuses). Channels are averaged. Resampling to ``--sample-rate`` is
polyphase FIR filtering (``scipy.signal.resample_poly``: Kaiser-windowed sinc,
anti-aliased, zero phase) by the reduced ratio of the two rates.

For ``--domain series`` with audio files (the official tool's way of taking
time series: one WAV per series, as osuleaf) the values are kept as they are
in the file: no resampling, no scaling.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from autodl.formats.convert._items import BadInput, Decoded

EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff")
PCM_SCALE = 32768.0


def _read_soundfile(path: Path, raw: bool) -> tuple[np.ndarray, int]:
    import soundfile

    data, rate = soundfile.read(str(path), dtype="float64" if raw else "float32", always_2d=True)
    return data, int(rate)


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise BadInput("holds no audio stream")
        stream = container.streams.audio[0]
        rate = stream.rate or stream.codec_context.sample_rate
        mono = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        parts = []
        for frame in container.decode(stream):
            for out in mono.resample(frame):
                parts.append(out.to_ndarray().reshape(-1))
        for out in mono.resample(None):
            parts.append(out.to_ndarray().reshape(-1))
    data = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return data.reshape(-1, 1), int(rate)


def read(path: Path, raw: bool = False) -> tuple[np.ndarray, int]:
    """(samples (n, channels), rate) of an audio file; raises `BadInput`."""
    try:
        return _read_soundfile(path, raw)
    except BadInput:
        raise
    except Exception as first:  # noqa: BLE001 - libsndfile refused it; FFmpeg may not
        try:
            return _read_av(path)
        except BadInput:
            raise
        except Exception:  # noqa: BLE001 - report libsndfile's reason, usually the clearer
            raise BadInput(f"not a readable audio file ({first})") from None


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """``x`` (1-D) from ``rate`` to ``target`` Hz by polyphase filtering.

    >>> resample(np.ones(441), 44100, 16000).shape
    (160,)
    """
    if rate == target or len(x) == 0:
        return x
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def decode(path: Path, sample_rate: int, raw: bool = False) -> Decoded:
    """One audio file -> (T, 1, 1, 1) 16-bit PCM values at ``sample_rate`` (raw values
    at the file's own rate when ``raw``)."""
    data, rate = read(path, raw)
    if data.size == 0:
        raise BadInput("holds no audio samples")
    mono = data.mean(axis=1, dtype=np.float64)
    if raw:
        values = mono.astype(np.float32)
    else:
        values = np.clip(np.rint(resample(mono, rate, sample_rate) * PCM_SCALE), -32768, 32767)
        values = values.astype(np.float32)
    if not np.isfinite(values).all():
        raise BadInput("holds samples that are not finite numbers")
    return Decoded(values.reshape(-1, 1, 1, 1), (len(values), 1, 1, 1))

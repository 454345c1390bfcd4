"""Audio: wav/flac/ogg/mp3 decoded, mixed to mono, resampled, stored as 16-bit PCM values."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import FormatError
from autodl.formats.convert.audio import resample
from tests.convert import inputs


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def test_wav_at_the_target_rate_is_stored_sample_for_sample(tmp_path, convert):
    src = tmp_path / "tones"
    expected = inputs.write_audio(src, "wav", rate=16000, stereo=True)
    c = convert(src)
    assert c.result.domain == "speech" and c.ds.spec.shape == (-1, 1, 1, 1)
    assert c.classes == ["high", "low", "mid"]
    for rel, (cls, samples) in expected.items():
        _, x, names = c.get(rel)
        assert names == [cls]
        assert np.array_equal(x.reshape(-1), samples.astype(np.float32)), rel


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_compressed_formats_decode_at_their_pitch(tmp_path, convert, ext):
    import soundfile as sf

    if ext == "mp3" and "MP3" not in sf.available_formats():
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} has no MP3 (1.1 or later has)")
    src = tmp_path / ext
    expected = inputs.write_audio(src, ext, rate=16000, per_class=2)
    c = convert(src)
    for rel, (cls, samples) in expected.items():
        _, x, names = c.get(rel)
        x = x.reshape(-1)
        assert names == [cls]
        assert abs(len(x) - len(samples)) < 3000  # mp3 and ogg pad a little
        assert abs(_peak_hz(x, 16000) - _peak_hz(samples.astype(float), 16000)) < 10
        assert 4000 < np.abs(x).max() <= 32768
        if ext == "flac":  # lossless
            assert np.array_equal(x, samples.astype(np.float32))


def test_resampled_to_the_sample_rate_keeping_pitch_and_duration(tmp_path, convert):
    src = tmp_path / "tones"
    expected = inputs.write_audio(src, "wav", rate=44100, per_class=2)
    c = convert(src, sample_rate=16000)
    for rel, (_, samples) in expected.items():
        x = c.get(rel)[1].reshape(-1)
        assert len(x) == int(np.ceil(len(samples) * 16000 / 44100))
        assert abs(_peak_hz(x, 16000) - _peak_hz(samples.astype(float), 44100)) < 10


def test_resampler_removes_what_the_new_rate_cannot_hold():
    rate = 48000
    t = np.arange(rate) / rate
    low, high = np.sin(2 * np.pi * 1000 * t), np.sin(2 * np.pi * 11000 * t)
    out = resample(low + high, rate, 16000)  # 11 kHz is above the 8 kHz Nyquist limit
    ref = resample(low, rate, 16000)
    assert len(out) == 16000
    assert np.abs(out - ref)[200:-200].max() < 0.01  # no alias of 11 kHz at 5 kHz
    assert abs(np.abs(ref[200:-200]).max() - 1.0) < 0.01


def test_series_domain_keeps_the_raw_values_of_float_wav_files(tmp_path, convert):
    import soundfile as sf

    src = tmp_path / "leaves"
    rng = np.random.default_rng(0)
    want = {}
    for k, cls in enumerate(["oak", "ash"]):
        (src / cls).mkdir(parents=True)
        for i in range(5):
            x = (rng.normal(k, 1.0, 50 + i)).astype(np.float32)
            sf.write(str(src / cls / f"{i}.wav"), x, 8000, subtype="FLOAT")
            want[f"{cls}/{i}.wav"] = x
    c = convert(src, domain="series")
    for rel, x in want.items():
        assert np.array_equal(c.get(rel)[1].reshape(-1), x)


def test_unreadable_audio_is_named(tmp_path, convert):
    src = tmp_path / "tones"
    inputs.write_audio(src, "wav", per_class=2)
    (src / "low" / "noise.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (src / "mid" / "empty.flac").write_bytes(b"")
    with pytest.raises(FormatError) as e:
        convert(src)
    assert "low/noise.wav" in e.value.message and "mid/empty.flac" in e.value.message
    c = convert(src, skip_bad=True)
    assert len(c.result.skipped) == 2 and sum(c.result.counts.values()) == 6

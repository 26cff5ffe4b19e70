"""speechret.audio: round trips, resampling, mix-down and errors that name the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechret.audio import (
    AudioError,
    audio_info,
    load_audio,
    resample,
    resample_torch,
    save_audio,
    validate_wave,
)

SR = 16000


def pcm16_grid_wave(n: int = SR, seed: int = 0) -> np.ndarray:
    """A wave whose samples are exactly representable in 16-bit PCM."""
    rng = np.random.default_rng(seed)
    ints = rng.integers(-20000, 20000, size=n).astype(np.int32)
    ints[:4] = [-32768, 32767, 0, 1]  # extremes survive too
    return (ints / 32768.0).astype(np.float32)


def tone(freq: float, sr: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1.0 / sr)[np.argmax(spec)])


# ---------------------------------------------------------------------------------------------
# round trips and resampling
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".wav", ".flac"])
def test_roundtrip_bit_exact_16bit(tmp_path: Path, ext: str) -> None:
    x = pcm16_grid_wave()
    path = save_audio(tmp_path / f"a{ext}", x, SR)
    info = audio_info(path)
    assert info.subtype == "PCM_16" and info.sample_rate == SR and info.channels == 1
    assert info.frames == len(x) and info.duration == pytest.approx(1.0)
    y = load_audio(path, SR)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_audio(tmp_path / "sub" / "a.wav", pcm16_grid_wave(100), SR)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.wav"]


def test_save_clips_integer_pcm_instead_of_wrapping(tmp_path: Path) -> None:
    x = np.array([1.5, -1.5, 0.25], dtype=np.float32)
    y = load_audio(save_audio(tmp_path / "loud.wav", x, SR), SR, min_duration=0.0)
    assert y[0] == pytest.approx(32767 / 32768) and y[1] == -1.0 and y[2] == 0.25


def test_mp3_save_and_load(tmp_path: Path) -> None:
    x = tone(440.0, SR, 1.0, 0.3)
    path = save_audio(tmp_path / "a.mp3", x, SR)
    assert audio_info(path).format == "MP3"
    y = load_audio(path, SR)
    assert abs(len(y) - len(x)) <= 1152
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] > 0.9
    assert dominant_freq(y, SR) == pytest.approx(440.0, abs=3.0)


@pytest.mark.parametrize("file_sr", [44100, 8000, 22050])
def test_resampling_on_load_changes_length_and_keeps_frequency(tmp_path: Path, file_sr: int) -> None:
    x = tone(440.0, file_sr, 1.0)
    path = save_audio(tmp_path / "t.wav", x, file_sr)
    y = load_audio(path, SR)
    assert len(y) == int(np.ceil(len(x) * SR / file_sr))
    assert dominant_freq(y, SR) == pytest.approx(440.0, abs=2.0)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    # sample_rate=None keeps the file's own rate
    assert len(load_audio(path, None)) == len(x)


def test_resample_numpy_and_torch_agree_on_a_tone() -> None:
    x = tone(1000.0, 48000, 0.5)
    a = resample(x, 48000, SR)
    b = resample_torch(torch.from_numpy(np.stack([x, x])), 48000, SR)
    assert a.shape == (8000,) and tuple(b.shape) == (2, 8000)
    assert dominant_freq(a, SR) == pytest.approx(1000.0, abs=2.0)
    assert dominant_freq(b[1].numpy(), SR) == pytest.approx(1000.0, abs=2.0)
    mid = slice(500, -500)
    assert np.max(np.abs(a[mid] - b[0].numpy()[mid])) < 0.02
    np.testing.assert_array_equal(resample(x, 48000, 48000), x)


def test_stereo_is_mixed_down_by_mean(tmp_path: Path) -> None:
    left = pcm16_grid_wave(4000, 1)
    right = pcm16_grid_wave(4000, 2)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="PCM_16")
    assert audio_info(path).channels == 2
    np.testing.assert_allclose(load_audio(path, SR), (left + right) / 2, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# errors: one type, the file named in the message
# ---------------------------------------------------------------------------------------------


def assert_names(err: pytest.ExceptionInfo[AudioError], path: Path, *words: str) -> None:
    msg = str(err.value)
    assert str(path) in msg, msg
    assert err.value.source == str(path)
    for w in words:
        assert w in msg.lower(), msg
    assert isinstance(err.value, ValueError)


def test_error_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "zero.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "empty", "0 bytes")
    with pytest.raises(AudioError):
        audio_info(p)


def test_error_zero_sample_wav(tmp_path: Path) -> None:
    p = tmp_path / "nosamples.wav"
    sf.write(p, np.zeros(0, dtype=np.float32), SR, subtype="PCM_16")
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "empty", "0 samples")


def test_error_truncated_wav_data(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    save_audio(good, pcm16_grid_wave(), SR)
    raw = good.read_bytes()
    p = tmp_path / "cut.wav"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "truncated")


def test_error_truncated_wav_header(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    save_audio(good, pcm16_grid_wave(), SR)
    p = tmp_path / "cuthead.wav"
    p.write_bytes(good.read_bytes()[:30])
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "corrupt")


def test_error_truncated_flac(tmp_path: Path) -> None:
    good = tmp_path / "good.flac"
    save_audio(good, pcm16_grid_wave(SR * 2), SR)
    raw = good.read_bytes()
    p = tmp_path / "cut.flac"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p)
    assert "truncated" in str(err.value) or "corrupt" in str(err.value)


def test_error_garbage_bytes(tmp_path: Path) -> None:
    p = tmp_path / "garbage.wav"
    p.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "corrupt")


def test_error_nan_in_float_wav(tmp_path: Path) -> None:
    x = np.linspace(-0.5, 0.5, SR, dtype=np.float32)
    x[123] = np.nan
    x[200] = np.inf
    p = tmp_path / "nan.wav"
    sf.write(p, x, SR, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "non-finite", "nan", "sample 123")


def test_error_too_short(tmp_path: Path) -> None:
    p = save_audio(tmp_path / "short.wav", pcm16_grid_wave(800), SR)  # 0.05 s
    with pytest.raises(AudioError) as err:
        load_audio(p, SR, min_duration=0.1)
    assert_names(err, p, "too short")
    assert len(load_audio(p, SR, min_duration=0.05)) == 800
    with pytest.raises(AudioError) as err2:
        load_audio(p, SR, max_duration=0.01)
    assert_names(err2, p, "too long")


@pytest.mark.parametrize("name", ["speech.ogg", "speech.txt", "speech"])
def test_error_unsupported_extension(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_bytes(b"x" * 100)
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "unsupported")
    with pytest.raises(AudioError) as err2:
        save_audio(p, pcm16_grid_wave(100), SR)
    assert_names(err2, p, "unsupported")


def test_error_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "missing.flac"
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "not found")


def test_error_wrong_container_behind_extension(tmp_path: Path) -> None:
    p = tmp_path / "really_ogg.wav"
    sf.write(p, tone(440, SR, 0.2), SR, format="OGG", subtype="VORBIS")
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "unsupported")


def test_wav_with_unknown_data_size_still_loads(tmp_path: Path) -> None:
    """Streaming writers leave 0xFFFFFFFF as data size: not a truncation."""
    p = save_audio(tmp_path / "s.wav", pcm16_grid_wave(1000), SR)
    raw = bytearray(p.read_bytes())
    at = raw.index(b"data") + 4
    raw[at : at + 4] = struct.pack("<I", 0xFFFFFFFF)
    p.write_bytes(bytes(raw))
    assert len(load_audio(p, SR)) == 1000


def test_validate_wave_for_arrays() -> None:
    ok = validate_wave(torch.zeros(1600), "item-7", SR, min_duration=0.1)
    assert ok.dtype == np.float32 and ok.shape == (1600,)
    with pytest.raises(AudioError, match="item-7: empty"):
        validate_wave(np.zeros(0), "item-7", SR)
    with pytest.raises(AudioError, match="item-7: 1 non-finite"):
        validate_wave(np.array([0.0, np.nan, 0.1]), "item-7", SR)
    with pytest.raises(AudioError, match="item-7: too short"):
        validate_wave(np.zeros(100), "item-7", SR, min_duration=0.5)
    with pytest.raises(AudioError, match="item-7: expected a mono"):
        validate_wave(np.zeros((2, 100)), "item-7", SR)
    with pytest.raises(AudioError, match="out.wav: 1 non-finite"):
        save_audio("out.wav", np.array([np.nan, 0.0]), SR)


def test_error_truncated_mp3(tmp_path: Path) -> None:
    good = save_audio(tmp_path / "good.mp3", tone(300.0, SR, 2.0, 0.3), SR)
    raw = good.read_bytes()
    p = tmp_path / "cut.mp3"
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError) as err:
        load_audio(p)
    assert_names(err, p, "truncated")

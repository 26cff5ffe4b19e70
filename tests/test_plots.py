"""Tests of speechret.evaluate.plots: every figure writes a PNG, NaN inputs included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from speechret.evaluate import plots
from speechret.evaluate.plots import (
    plot_bars,
    plot_ber_histogram,
    plot_grouped_bars,
    plot_lines,
    plot_pr_curves,
    plot_waveform_spectrogram,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")


def is_png(p) -> bool:
    p = Path(p)
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == PNG_MAGIC


def test_backend_is_agg():
    import matplotlib
    import matplotlib.pyplot as plt

    assert matplotlib.get_backend().lower() == "agg"
    assert plots.DPI == 120
    assert not plt.get_fignums()  # figures from other tests are closed


def test_ber_histogram(tmp_path):
    rng = np.random.default_rng(0)
    inter = rng.normal(0.4963, 0.0364, 5000)
    intra = np.abs(rng.normal(0.05, 0.03, 300))
    p = plot_ber_histogram(inter, tmp_path / "a" / "b" / "fig7.png", intra_ber=intra, n_bits=384)
    assert isinstance(p, Path) and is_png(p)
    inter[::7] = np.nan
    assert is_png(plot_ber_histogram(inter, tmp_path / "nan.png", mu=NAN, sigma=NAN, n_bits=384))
    assert is_png(plot_ber_histogram([NAN, NAN], tmp_path / "allnan.png", intra_ber=[NAN]))
    assert is_png(plot_ber_histogram([], tmp_path / "empty.png", n_bits=16))
    assert is_png(plot_ber_histogram([0.5, 0.5, 0.5], tmp_path / "const.png"))


def test_pr_curves(tmp_path):
    r = np.linspace(0, 1, 50)
    curves = {"log-mel": (r, 1 - 0.3 * r ** 3), "mfcc": (r, 1 - 0.4 * r ** 2),
              "nan": (np.array([0.1, NAN, 0.9]), np.array([1.0, 0.9, NAN])), "empty": ([], [])}
    assert is_png(plot_pr_curves(curves, tmp_path / "fig8.png"))
    assert is_png(plot_pr_curves({}, tmp_path / "none.png"))


@pytest.mark.parametrize("log", [False, True])
def test_bars(tmp_path, log):
    vals = {"MP3": 0.012, "R.S": 0.034, "G.N": NAN, "A.V": 0.0, "LPF": -0.01 if not log else 1e-4}
    assert is_png(plot_bars(vals, tmp_path / f"bars{log}.png", "mean BER", "BER per CPO", log=log))
    assert is_png(plot_bars({"x": NAN}, tmp_path / f"bars_nan{log}.png", "y", "t", log=log))
    assert is_png(plot_bars({}, tmp_path / f"bars_empty{log}.png", "y", "t", log=log))
    grouped = {"MP3": {"log-mel": 0.01, "mfcc": 0.02}, "G.N": {"log-mel": NAN, "mfcc": 0.2},
               "R.S": {"mfcc": 0.05}}
    assert is_png(plot_grouped_bars(grouped, tmp_path / f"grouped{log}.png", "BER", "per CPO", log=log))
    assert is_png(plot_grouped_bars({"a": {"s": NAN}}, tmp_path / f"grouped_nan{log}.png", "y", "t", log=log))


def test_lines(tmp_path):
    snr = [0, 5, 10, 20, 30]
    s = {"precision": [0.5, 0.7, NAN, 0.95, 0.99], "recall": [0.4, 0.6, 0.8, 0.9, 1.0]}
    assert is_png(plot_lines(snr, s, tmp_path / "snr.png", "SNR (dB)", "metric", "noise robustness"))
    tau = [0.02, 0.04, 0.06, 0.08, 0.10]
    far = {"log-mel": [2e-39, 2.4e-36, 2.1e-33, 1.4e-30, 6.6e-28], "zero": [0.0, 0.0, 1e-30, NAN, 1e-20]}
    assert is_png(plot_lines(tau, far, tmp_path / "far.png", "τ", "FAR", "FAR vs τ", logy=True))
    assert is_png(plot_lines(tau, {"all nan": [NAN] * 5}, tmp_path / "nan.png", "τ", "FAR", "t", logy=True))
    assert is_png(plot_lines(["64", "128", "384"], {"mAP": [0.8, 0.9, 0.95]}, tmp_path / "cat.png",
                             "bits", "mAP", "hash length"))


def test_waveform_spectrogram(tmp_path):
    sr = 16000
    t = np.arange(sr) / sr
    orig = (0.5 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    enc = np.random.default_rng(0).integers(-32768, 32768, sr).astype(np.int16)
    assert is_png(plot_waveform_spectrogram(orig, enc, sr, tmp_path / "fig10.png"))
    orig[100:200] = np.nan
    assert is_png(plot_waveform_spectrogram(orig, enc.view(np.uint16), sr, tmp_path / "nan.png"))
    assert is_png(plot_waveform_spectrogram(np.zeros(0), np.full(10, NAN), sr, tmp_path / "empty.png"))


def test_waveform_spectrogram_with_cipher(tmp_path):
    from speechret.crypto import HyperchaoticCipher, HyperchaoticKey
    from speechret.evaluate.security import ciphertext_as_audio, to_pcm16

    t = np.arange(8000) / 16000
    pcm = to_pcm16(0.4 * np.sin(2 * np.pi * 180 * t))
    enc = ciphertext_as_audio(HyperchaoticCipher(HyperchaoticKey.paper_demo()), pcm)
    assert is_png(plot_waveform_spectrogram(pcm, enc, 16000, tmp_path / "cipher.png"))

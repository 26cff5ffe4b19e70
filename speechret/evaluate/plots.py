"""Figures of the evaluation reports (matplotlib, Agg backend, PNG).

* :func:`plot_ber_histogram` -- paper A Fig. 7: inter-class BER histogram with its fitted normal
  pdf and the theoretical N(0.5, sqrt(0.25 / n_bits)) curve; optional intra-class histogram.
* :func:`plot_pr_curves` -- paper A Fig. 8: precision-recall curves.
* :func:`plot_bars` / :func:`plot_grouped_bars` -- e.g. mean BER per CPO (paper A Table 4).
* :func:`plot_lines` -- metrics against a parameter (noise SNR, paper C Table 3; hash length;
  FAR against τ with a log y axis).
* :func:`plot_waveform_spectrogram` -- paper A Fig. 10: waveform and spectrogram of original and
  encrypted speech.

Every function takes the output path, creates its parent directories, writes a PNG (dpi 120),
closes the figure and returns the :class:`~pathlib.Path`.  NaN / inf values never raise: they are
left out of histograms and fits, drawn as gaps in lines, as missing bars (labelled "n/a").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "DPI",
    "plot_bars",
    "plot_ber_histogram",
    "plot_grouped_bars",
    "plot_lines",
    "plot_pr_curves",
    "plot_waveform_spectrogram",
]

DPI = 120


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=DPI, format="png")
    finally:
        plt.close(fig)
    return path


def _finite(x) -> np.ndarray:
    a = np.asarray(x if x is not None else [], dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def _normal_pdf(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * math.sqrt(2.0 * math.pi))


def _ok(v) -> bool:
    return v is not None and math.isfinite(float(v))


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# ------------------------------------------------------------------------------------ Fig. 7
def plot_ber_histogram(inter_ber, path, intra_ber=None, mu: float | None = None, sigma: float | None = None,
                       n_bits: int | None = None, title: str = "BER distribution (inter-class)",
                       bins: int = 50, intra_label: str = "intra-class BER") -> Path:
    """Paper A Fig. 7: density histogram of the inter-class BER with its fitted normal pdf.

    ``mu`` / ``sigma``: the fitted normal (default: mean and standard deviation of the finite
    ``inter_ber``).  ``n_bits``: also draw the theoretical N(0.5, sqrt(0.25 / n_bits)) of
    independent fair bits (paper A: n = 384 gives σ = 0.0255).  ``intra_ber``: BERs between copies
    of the same content (CPO'd copies and their source; for cross-speaker retrieval, the same
    content by another speaker), drawn as a second histogram in another colour, legend
    ``intra_label``."""
    inter = _finite(inter_ber)
    intra = _finite(intra_ber) if intra_ber is not None else np.zeros(0)
    if not _ok(mu):
        mu = float(inter.mean()) if inter.size else None
    if not _ok(sigma):
        sigma = float(inter.std()) if inter.size > 1 else None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    both = np.concatenate([inter, intra])
    if both.size:
        lo, hi = float(both.min()), float(both.max())
        if hi - lo < 1e-6:
            lo, hi = lo - 0.01, hi + 0.01
        edges = np.linspace(lo, hi, int(bins) + 1)
        if inter.size:
            ax.hist(inter, bins=edges, density=True, color="tab:blue", alpha=0.6,
                    label=f"inter-class BER (n={inter.size})")
        if intra.size:
            ax.hist(intra, bins=edges, density=True, color="tab:orange", alpha=0.6,
                    label=f"{intra_label} (n={intra.size})")
        xs = np.linspace(min(lo, 0.0) if intra.size else lo, hi, 400)
    else:
        xs = np.linspace(0.0, 1.0, 400)
        _no_data(ax, "no finite BER values")
    if _ok(mu) and _ok(sigma) and sigma > 0:
        xf = np.linspace(min(xs[0], mu - 4 * sigma), max(xs[-1], mu + 4 * sigma), 400)
        ax.plot(xf, _normal_pdf(xf, mu, sigma), color="tab:red", lw=2,
                label=f"fitted N(μ={mu:.4f}, σ={sigma:.4f})")
    if n_bits is not None and int(n_bits) > 0:
        s0 = math.sqrt(0.25 / int(n_bits))
        xt = np.linspace(0.5 - 4 * s0, 0.5 + 4 * s0, 400)
        ax.plot(xt, _normal_pdf(xt, 0.5, s0), color="black", ls="--", lw=1.5,
                label=f"theory N(0.5, {s0:.4f}), n={int(n_bits)} bits")
    ax.set_xlabel("BER (normalised Hamming distance)")
    ax.set_ylabel("probability density")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------ Fig. 8
def plot_pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path,
                   title: str = "Precision-Recall curve") -> Path:
    """Paper A Fig. 8: ``curves`` maps a name to ``(recall, precision)`` arrays (same length)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    drawn = 0
    for name, (recall, precision) in curves.items():
        r = np.asarray(recall, dtype=np.float64).reshape(-1)
        p = np.asarray(precision, dtype=np.float64).reshape(-1)
        n = min(r.size, p.size)
        if n == 0:
            continue
        ax.plot(r[:n], p[:n], marker="." if n < 30 else None, label=str(name))
        drawn += 1
    if not drawn:
        _no_data(ax)
    ax.set_xlim(0.0, 1.02)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    if drawn:
        ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------ bars
def _bar_labels(ax, bars, values: Sequence[float], log: bool) -> None:
    for b, v in zip(bars, values):
        if math.isfinite(v) and (v > 0 or not log):
            ax.annotate(f"{v:.3g}", (b.get_x() + b.get_width() / 2, v), ha="center",
                        va="bottom" if v >= 0 else "top", fontsize=7, xytext=(0, 2), textcoords="offset points")
        else:
            ax.annotate("n/a", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom", fontsize=7,
                        color="grey", xycoords=("data", "axes fraction"), xytext=(0, 2), textcoords="offset points")


def _heights(values: Sequence[float], log: bool) -> np.ndarray:
    """Bar heights: non-finite (and, on a log axis, non-positive) values are drawn as no bar."""
    h = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(h) | ((h <= 0) if log else False)
    return np.where(bad, np.nan, h)


def _finish_log(ax, heights: np.ndarray) -> None:
    pos = heights[np.isfinite(heights) & (heights > 0)]
    if pos.size:
        ax.set_yscale("log")
        ax.set_ylim(pos.min() / 3.0, pos.max() * 3.0)


def plot_bars(values: Mapping[str, float], path, ylabel: str, title: str, log: bool = False) -> Path:
    """One bar per key (e.g. mean BER per CPO, paper A Table 4); value labels on the bars: the
    one-series case of :func:`plot_grouped_bars`."""
    return plot_grouped_bars({k: {ylabel: v} for k, v in values.items()}, path, ylabel, title, log=log)


def plot_grouped_bars(values: Mapping[str, Mapping[str, float]], path, ylabel: str, title: str,
                      log: bool = False) -> Path:
    """Grouped bars: ``values[group][series]``; groups on the x axis, one colour per series
    (series missing from a group are drawn as missing bars)."""
    groups = [str(g) for g in values]
    series: list[str] = []
    for inner in values.values():
        for s in inner:
            if str(s) not in series:
                series.append(str(s))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(groups) * max(1, len(series)) + 2), 4.5))
    if groups and series:
        width = 0.8 / len(series)
        x = np.arange(len(groups))
        all_h = []
        for j, s in enumerate(series):
            vals = [_as_float({str(k): v for k, v in inner.items()}.get(s, float("nan")))
                    for inner in values.values()]
            h = _heights(vals, log)
            all_h.append(h)
            bars = ax.bar(x - 0.4 + (j + 0.5) * width, np.nan_to_num(h, nan=0.0) if not log else h, width,
                          label=s)
            _bar_labels(ax, bars, vals, log)
        ax.set_xticks(x)
        ax.set_xticklabels(groups, rotation=30 if len(groups) > 5 else 0,
                           ha="right" if len(groups) > 5 else "center")
        if log:
            _finish_log(ax, np.concatenate(all_h))
        if len(series) > 1:
            ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------ lines
def plot_lines(x: Sequence, series: Mapping[str, Sequence[float]], path, xlabel: str, ylabel: str, title: str,
               logy: bool = False) -> Path:
    """Line plot of several series against ``x`` (numbers or category labels).

    Non-finite values are gaps; with ``logy`` non-positive values are gaps too (e.g. FAR = 0)."""
    xs = list(x)
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in xs)
    xv = np.asarray(xs, dtype=np.float64) if numeric else np.arange(len(xs))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for name, ys in series.items():
        y = np.asarray([_as_float(v) for v in ys], dtype=np.float64)
        n = min(y.size, xv.size)
        y = y[:n]
        if logy:
            y = np.where(y > 0, y, np.nan)
        if n == 0 or not np.isfinite(y).any():
            continue
        ax.plot(xv[:n], y, marker="o", ms=4, label=str(name))
        drawn += 1
    if not numeric:
        ax.set_xticks(xv)
        ax.set_xticklabels([str(v) for v in xs])
    if logy and drawn:
        ax.set_yscale("log")
    if drawn:
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if logy else "major")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------------ Fig. 10
def _wave_float(x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == np.int16:
        return a.astype(np.float64) / 32768.0
    if a.dtype == np.uint16:
        return a.view(np.int16).astype(np.float64) / 32768.0
    return a.astype(np.float64).reshape(-1)


def _spectrogram_panel(ax, fig, x: np.ndarray, sample_rate: int, title: str) -> None:
    from scipy.signal import spectrogram

    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    ax.set_title(title)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    if x.size < 16:
        _no_data(ax, "signal too short")
        return
    nperseg = int(min(512, x.size))
    f, t, sxx = spectrogram(x, fs=sample_rate, window="hann", nperseg=nperseg, noverlap=nperseg // 2,
                            scaling="density", mode="psd")
    db = 10.0 * np.log10(sxx + 1e-12)
    vmax = float(db.max())
    mesh = ax.pcolormesh(t, f, db, shading="auto", cmap="magma", vmin=vmax - 100.0, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label="dB")


def plot_waveform_spectrogram(original, encrypted, sample_rate: int, path,
                              title: str = "Original vs encrypted speech") -> Path:
    """Paper A Fig. 10: (a) original waveform, (b) original spectrogram, (c) encrypted waveform,
    (d) encrypted spectrogram (scipy spectrogram, Hann 512, 50 % overlap, PSD in dB).

    Signals: float in [-1, 1] or int16 (÷32768) / uint16 (read as two's complement int16); the
    encrypted one e.g. from :func:`speechret.evaluate.security.ciphertext_as_audio`."""
    sr = int(sample_rate)
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5))
    for row, (sig, label) in enumerate([(original, "original"), (encrypted, "encrypted")]):
        x = _wave_float(sig)
        a = axes[row, 0]
        if x.size:
            a.plot(np.arange(x.size) / sr, x, lw=0.4, color="tab:blue" if row == 0 else "tab:red")
            a.set_xlim(0, max(x.size / sr, 1.0 / sr))
        else:
            _no_data(a, "empty signal")
        a.set_ylim(-1.05, 1.05)
        a.set_title(f"({'ac'[row]}) {label} speech waveform")
        a.set_xlabel("time (s)")
        a.set_ylabel("amplitude")
        _spectrogram_panel(axes[row, 1], fig, x, sr, f"({'bd'[row]}) {label} speech spectrogram")
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)

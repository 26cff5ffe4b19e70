"""Acoustic front ends of the three papers, as batched, device-agnostic ``nn.Module`` s.

Every extractor has the same interface::

    feats, feat_lengths = extractor(wave, lengths)   # wave: float Tensor[B, T], lengths: Tensor[B] | None
    extractor.output_shape(n_samples)                 # per-item shape (no batch dim)
    extractor.num_frames(n_samples)                   # time steps of the output for one item

``lengths`` gives the number of valid samples of each row of a zero-padded batch (``None``: all
``T``).  Samples beyond an item's length are *ignored* (they are zeroed before any transform), so
the batched output of an item equals the output computed for that item alone (no cross-talk from
padding; checked by ``tests/test_features.py``).

The STFTs run in float32 with autocast disabled, whatever the caller's autocast / dtype, and the
results are float32.  All constant tensors (windows, filterbanks, DCT matrices, colour look-up
tables, resize matrices) are non-persistent buffers: they follow ``.to(device)`` but never enter a
checkpoint, so changing a front end never breaks ``load_state_dict`` of a model that embeds it.

=================  =========================================  ==========================================
class              paper                                       output with defaults (16 kHz input)
=================  =========================================  ==========================================
``LogMel``         A §3.1 eq. (1)-(2), §4.4 step 1             ``(B, 401, 20)``   4 s fixed, 25/10 ms
``MFCC``           A §3.1 eq. (1)-(3), §4.4 step 1             ``(B, 401, 20)``
``LogMelImage``    B §III-A eq. (1)-(7), §IV-E step 1          ``(B, 3, 224, 224)``
``SVS``            C §4.1 steps 1-5, §5.1                      ``(B, m_max, 3, 77, 155)``, m per item
``MFCCSequence``   C §5.1 baseline (BiLSTM over MFCC)          ``(B, T_max, 39)``, frames per item
=================  =========================================  ==========================================

torchaudio is used only through :mod:`speechret.torchaudio_api` (mel filterbanks, DCT matrix,
deltas, resampling); replacing it is a change to that module alone.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechret import torchaudio_api as AF

__all__ = [
    "FeatureExtractor",
    "LogMel",
    "MFCC",
    "LogMelImage",
    "SVS",
    "MFCCSequence",
    "PRESETS",
    "build_features",
    "lengths_to_mask",
    "fix_length",
    "resize_weights",
]


# ----------------------------------------------------------------------------------------------
# small shared utilities
# ----------------------------------------------------------------------------------------------


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Boolean mask ``[B, max_len]``, True where ``t < lengths[b]``."""
    lengths = torch.as_tensor(lengths)
    if max_len is None:
        max_len = int(lengths.max().item()) if lengths.numel() else 0
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def _make_window(name: str, length: int, periodic: bool = True) -> Tensor:
    """Window of ``length`` samples. ``periodic=True`` is scipy's ``get_window(..., fftbins=True)``
    (what librosa uses); ``periodic=False`` is the symmetric window (``np.hanning``/``np.hamming``)."""
    name = name.lower()
    if name in ("hann", "hanning"):
        return torch.hann_window(length, periodic=periodic, dtype=torch.float64).float()
    if name == "hamming":
        # A eq. / B eq. (3): W(n) = 0.54 - 0.46 cos(2 pi n / (N - 1)) (alpha = 0.46)
        return torch.hamming_window(length, periodic=periodic, dtype=torch.float64).float()
    if name == "blackman":
        return torch.blackman_window(length, periodic=periodic, dtype=torch.float64).float()
    if name in ("rect", "rectangular", "boxcar", "ones"):
        return torch.ones(length)
    raise ValueError(f"unknown window {name!r} (hann, hamming, blackman, rect)")


def resize_weights(
    out_size: int, in_sizes: Tensor, in_max: int, *, antialias: bool = True
) -> Tensor:
    """Linear-interpolation matrices ``[B, out_size, in_max]`` resizing, per item, the first
    ``in_sizes[b]`` samples of an axis to ``out_size`` samples (entries beyond ``in_sizes[b]`` get
    weight 0).

    Exactly ``F.interpolate(mode="bilinear", align_corners=False)`` along one axis when upsampling;
    when downsampling with ``antialias=True`` the triangle filter is widened by the scale factor
    (PIL / ``F.interpolate(..., antialias=True)``), which is how an image library renders a large
    spectrogram into fewer pixels.  Bilinear resizing is separable, so a 2-D resize is two matmuls.
    """
    in_sizes = in_sizes.to(torch.float32).clamp(min=1.0)
    device = in_sizes.device
    scale = in_sizes / out_size  # [B]
    center = (torch.arange(out_size, device=device, dtype=torch.float32) + 0.5)[None, :] * scale[:, None]
    support = scale.clamp(min=1.0) if antialias else torch.ones_like(scale)
    pos = torch.arange(in_max, device=device, dtype=torch.float32) + 0.5
    d = (pos[None, None, :] - center[:, :, None]) / support[:, None, None]
    w = (1.0 - d.abs()).clamp(min=0.0)
    w = w * (pos[None, None, :] < in_sizes[:, None, None]).to(w.dtype)
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


def fix_length(
    wave: Tensor, lengths: Tensor, n_target: int, *, pad_mode: str = "zero", crop: str = "start"
) -> Tensor:
    """Batched pad/crop of each item's valid samples to exactly ``n_target`` samples.

    * longer items are cropped: ``crop="start"`` keeps the first ``n_target`` samples
      (``librosa.util.fix_length``), ``crop="center"`` keeps the middle ones;
    * shorter items are padded *at the end*: ``pad_mode="zero"`` with zeros (``fix_length``),
      ``pad_mode="repeat"`` by tiling the item's own samples (``np.resize`` / ``np.tile``).
    """
    if pad_mode not in ("zero", "repeat"):
        raise ValueError(f"pad_mode must be 'zero' or 'repeat', not {pad_mode!r}")
    if crop not in ("start", "center"):
        raise ValueError(f"crop must be 'start' or 'center', not {crop!r}")
    B, T = wave.shape
    if T == 0:
        return wave.new_zeros(B, n_target)
    L = lengths.to(torch.long)
    n = torch.arange(n_target, device=wave.device)[None, :]
    start = ((L - n_target).clamp(min=0) // 2) if crop == "center" else torch.zeros_like(L)
    if pad_mode == "repeat":
        idx = start[:, None] + torch.remainder(n, L.clamp(min=1)[:, None])
        valid = (L > 0)[:, None].expand(B, n_target)
    else:
        idx = start[:, None] + n
        valid = idx < L[:, None]
    out = torch.gather(wave, 1, idx.clamp(max=T - 1))
    return out * valid.to(out.dtype)


def _replicate_tail(x: Tensor, lengths: Tensor) -> Tensor:
    """``x[..., t] = x[..., lengths-1]`` for ``t >= lengths`` (x: ``[B, ..., T]``), so that edge
    handling of a filter along time in a padded batch equals ``replicate`` padding per item."""
    T = x.shape[-1]
    idx = torch.minimum(torch.arange(T, device=x.device)[None, :], (lengths.clamp(min=1) - 1)[:, None])
    idx = idx.view(idx.shape[0], *([1] * (x.dim() - 2)), T).expand_as(x)
    return torch.gather(x, -1, idx)


def _deltas(x: Tensor, lengths: Tensor, order: int, width: int) -> list[Tensor]:
    """``[x, Δx, Δ²x, ...]`` along the last (time) axis with the HTK regression formula
    (``torchaudio.functional.compute_deltas``, replicate edges), per item over its valid frames."""
    out = [x]
    cur = x
    for _ in range(order):
        cur = AF.compute_deltas(_replicate_tail(cur, lengths), win_length=width, mode="replicate")
        out.append(cur)
    return out


def _masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max over all but the batch axis of ``x [B, ..., T]`` where ``mask [B, T]`` is True."""
    m = mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[-1])
    return x.masked_fill(~m, float("-inf")).flatten(1).amax(1)


# ----------------------------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------------------------


class FeatureExtractor(nn.Module, abc.ABC):
    """Common plumbing: input checking, float32 + autocast off, ``config`` for reproducibility."""

    #: number of time steps / channels, set by subclasses
    feature_dim: int = 0

    def __init__(self, **config: Any) -> None:
        super().__init__()
        #: constructor arguments (plus ``_target_``): enough to rebuild the identical front end,
        #: e.g. to store in a library's metadata.
        self.config: dict[str, Any] = {"_target_": f"{__name__}.{type(self).__name__}", **config}

    # -- interface -----------------------------------------------------------------------------
    @abc.abstractmethod
    def num_frames(self, n_samples: int) -> int:
        """Number of feature frames (time steps) for a waveform of ``n_samples``."""

    @abc.abstractmethod
    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Per-item output shape (without batch) for a waveform of ``n_samples``."""

    @abc.abstractmethod
    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Features of a zero-padded float32 batch and their per-item lengths."""

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if wave.dim() == 1:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects a waveform batch [B, T], got {tuple(wave.shape)}")
        B, T = wave.shape
        device = wave.device
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=device)
        else:
            lengths = torch.as_tensor(lengths, device=device).to(torch.long).clamp(0, T)
            if lengths.shape != (B,):
                raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
        with torch.autocast(device_type=device.type, enabled=False):
            wave = wave.float()
            wave = wave * lengths_to_mask(lengths, T).to(wave.dtype)  # padding never leaks in
            return self._forward(wave, lengths)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "_target_")


# ----------------------------------------------------------------------------------------------
# shared STFT -> mel -> dB front end (A, B, C-baseline)
# ----------------------------------------------------------------------------------------------


class _MelFrontEnd(nn.Module):
    """Framed power STFT -> mel filterbank -> dB, per item, batched.

    Same semantics as ``librosa.power_to_db(librosa.feature.melspectrogram(y, sr, n_fft=...,
    hop_length=..., win_length=..., window=..., center=True, pad_mode="constant", power=2.0,
    n_mels=...), ref=ref, amin=amin, top_db=top_db)`` (librosa >= 0.10 defaults):

    * pre-emphasis ``y[n] = x[n] - c x[n-1]`` (``y[0] = x[0]``, the python_speech_features
      convention; ``librosa.effects.preemphasis`` differs only in ``y[0]``) when ``pre_emphasis``
      is set (A §3.1 step 1, B §III-A step 1); librosa's melspectrogram itself does not pre-emphasise;
    * frames of ``win_length`` samples every ``hop_length``; with ``center=True`` the signal is
      zero-padded by ``n_fft // 2`` on both sides, so an item of ``n`` samples has
      ``1 + n // hop_length`` frames; the window (periodic, scipy ``fftbins=True``) is zero-padded
      symmetrically to ``n_fft`` as librosa does (B eq. (2)-(3));
    * power spectrum ``|X_n(k)|^2`` (B eq. (4)), mel filterbank ``H_m(k)`` (A eq. (1), B eq. (5)-(6));
      ``mel_scale="slaney"``/``mel_norm="slaney"`` reproduce ``librosa.filters.mel`` (htk=False),
      ``mel_scale="htk"`` is the formula printed in A eq. (1) / B eq. (1);
    * ``10 log10(max(S, amin)) - 10 log10(ref)`` (A eq. (2), B eq. (7) up to the log base), with
      ``ref`` a float or ``"max"`` (per-item maximum over valid frames), then values below the
      per-item maximum minus ``top_db`` are clipped (``None``: no clipping).
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        n_fft: int,
        win_length: int,
        hop_length: int,
        n_mels: int,
        window: str = "hamming",
        center: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        pre_emphasis: float | None = None,
        ref: float | str = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
    ) -> None:
        super().__init__()
        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} > n_fft {n_fft}")
        if not (isinstance(ref, (int, float)) or ref == "max"):
            raise ValueError(f"ref must be a positive float or 'max', not {ref!r}")
        self.sample_rate, self.n_fft, self.win_length, self.hop_length = sample_rate, n_fft, win_length, hop_length
        self.n_mels, self.center, self.pre_emphasis = n_mels, center, pre_emphasis
        self.ref, self.amin, self.top_db = ref, float(amin), top_db
        self.register_buffer("window", _make_window(window, win_length, periodic=True), persistent=False)
        fb = AF.melscale_fbanks(
            n_fft // 2 + 1,
            f_min=f_min,
            f_max=float(f_max if f_max is not None else sample_rate / 2),
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=mel_norm,
            mel_scale=mel_scale,
        )
        self.register_buffer("fb", fb.float(), persistent=False)  # [n_freqs, n_mels]

    def num_frames(self, n_samples: int) -> int:
        if self.center:
            return 1 + n_samples // self.hop_length
        return 1 + max(n_samples - self.n_fft, 0) // self.hop_length

    def frame_lengths(self, lengths: Tensor) -> Tensor:
        if self.center:
            return 1 + lengths // self.hop_length
        return 1 + (lengths - self.n_fft).clamp(min=0) // self.hop_length

    def forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``wave`` float32 ``[B, T]`` already zero beyond ``lengths`` -> (dB ``[B, n_mels, F]``,
        frame lengths ``[B]``); frames beyond an item's length are left as computed (callers mask)."""
        B, T = wave.shape
        if self.pre_emphasis:
            wave = torch.cat([wave[:, :1], wave[:, 1:] - self.pre_emphasis * wave[:, :-1]], dim=1)
            wave = wave * lengths_to_mask(lengths, T).to(wave.dtype)
        if not self.center and T < self.n_fft:
            wave = F.pad(wave, (0, self.n_fft - T))
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode="constant",
            return_complex=True,
        )  # [B, n_freqs, F]
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power.transpose(1, 2), self.fb).transpose(1, 2)  # [B, n_mels, F]
        db = 10.0 * torch.log10(mel.clamp(min=self.amin))
        flen = self.frame_lengths(lengths).clamp(max=db.shape[-1])
        fmask = lengths_to_mask(flen, db.shape[-1])
        if self.ref == "max" or self.top_db is not None:
            peak = _masked_max(db, fmask)  # [B]
        if self.ref == "max":
            db = db - peak[:, None, None]
            peak = torch.zeros_like(peak)
        else:
            offset = 10.0 * math.log10(max(self.amin, float(self.ref)))
            if offset:
                db = db - offset
                if self.top_db is not None:
                    peak = peak - offset
        if self.top_db is not None:
            db = torch.maximum(db, (peak - float(self.top_db))[:, None, None])
        return db, flen


def _ms_to_samples(ms: float, sample_rate: int) -> int:
    return int(round(ms * sample_rate / 1000.0))


# ----------------------------------------------------------------------------------------------
# paper A: Log-Mel and MFCC, 4 s fixed
# ----------------------------------------------------------------------------------------------


class LogMel(FeatureExtractor):
    """Paper A Log-Mel spectrogram (§3.1 steps 1-4, eq. (1)-(2); §4.4 step 1): 16 kHz, 25 ms
    Hamming frames every 10 ms, 20 mel bands, input fixed to 4 s.  Output ``[B, n_frames, n_mels]``
    (time-major, ready for an LSTM), ``(B, 401, 20)`` with the defaults.

    Choices where the paper is silent (all configurable):

    * "Librosa extracts the features": we reproduce ``librosa.power_to_db(librosa.feature.
      melspectrogram(..., n_fft=512, hop_length=160, win_length=400, window="hamming",
      n_mels=20))`` — ``n_fft`` is the next power of two >= the window (``n_fft=None``), frames are
      centred (zero padding, ``1 + n // hop`` frames), power spectrum, Slaney mel filters
      (librosa's default; ``mel_scale="htk"`` gives the formula of eq. (1)), dB with ``ref=1.0``
      (absolute, librosa's default: the gain of the recording stays in the feature; ``ref="max"``
      normalises per item), ``amin=1e-10``, ``top_db=80`` per item.
    * No pre-emphasis by default (librosa does none although §3.1 step 1 lists it); set
      ``pre_emphasis=0.97`` to apply it.
    * "Fixed to 4 s": every item's valid samples are padded/cropped to
      ``fixed_seconds * sample_rate`` samples *before* the transform (``fix_length``): zero padding
      at the end (or ``pad_mode="repeat"``), cropping keeps the start (or ``crop="center"``).  The
      returned lengths are then all ``n_frames`` (the padding is part of the paper's input).
      ``fixed_seconds=None`` keeps the natural length: output ``[B, F_max, n_mels]``, frames beyond
      an item's length filled with ``pad_value``.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_mels: int = 20,
        n_fft: int | None = None,
        window: str = "hamming",
        fixed_seconds: float | None = 4.0,
        pad_mode: str = "zero",
        crop: str = "start",
        center: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        pre_emphasis: float | None = None,
        ref: float | str = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        pad_value: float = 0.0,
    ) -> None:
        cfg = dict(
            sample_rate=sample_rate, win_ms=win_ms, hop_ms=hop_ms, n_mels=n_mels, n_fft=n_fft, window=window,
            fixed_seconds=fixed_seconds, pad_mode=pad_mode, crop=crop, center=center, f_min=f_min, f_max=f_max,
            mel_scale=mel_scale, mel_norm=mel_norm, pre_emphasis=pre_emphasis, ref=ref, amin=amin, top_db=top_db,
            pad_value=pad_value,
        )
        super().__init__(**cfg)
        if pad_mode not in ("zero", "repeat") or crop not in ("start", "center"):
            raise ValueError(f"pad_mode must be zero|repeat and crop start|center, got {pad_mode!r}, {crop!r}")
        win = _ms_to_samples(win_ms, sample_rate)
        hop = _ms_to_samples(hop_ms, sample_rate)
        self.sample_rate = sample_rate
        self.fixed_samples = None if fixed_seconds is None else int(round(fixed_seconds * sample_rate))
        self.pad_mode, self.crop, self.pad_value = pad_mode, crop, float(pad_value)
        self.frontend = _MelFrontEnd(
            sample_rate=sample_rate, n_fft=n_fft or _next_pow2(win), win_length=win, hop_length=hop,
            n_mels=n_mels, window=window, center=center, f_min=f_min, f_max=f_max, mel_scale=mel_scale,
            mel_norm=mel_norm, pre_emphasis=pre_emphasis, ref=ref, amin=amin, top_db=top_db,
        )
        self.feature_dim = n_mels

    def num_frames(self, n_samples: int) -> int:
        return self.frontend.num_frames(self.fixed_samples if self.fixed_samples is not None else n_samples)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (self.num_frames(n_samples), self.feature_dim)

    def _fixed(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.fixed_samples is None:
            return wave, lengths
        wave = fix_length(wave, lengths, self.fixed_samples, pad_mode=self.pad_mode, crop=self.crop)
        return wave, torch.full_like(lengths, self.fixed_samples)

    def _mel_db(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        wave, lengths = self._fixed(wave, lengths)
        return self.frontend(wave, lengths)  # [B, n_mels, F]

    def _finish(self, feats: Tensor, flen: Tensor) -> tuple[Tensor, Tensor]:
        """``feats [B, D, F]`` -> time-major ``[B, F, D]`` with padded frames set to pad_value."""
        feats = feats.transpose(1, 2)
        if self.fixed_samples is None:
            mask = lengths_to_mask(flen, feats.shape[1])[:, :, None]
            feats = feats.masked_fill(~mask, self.pad_value)
        return feats.contiguous(), flen

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        db, flen = self._mel_db(wave, lengths)
        return self._finish(db, flen)


class MFCC(LogMel):
    """Paper A MFCC (§3.1 steps 1-5, eq. (1)-(3)): the Log-Mel of :class:`LogMel` (dB, as
    ``librosa.feature.mfcc`` computes it) followed by an orthonormal DCT-II over the mel axis,
    keeping ``n_mfcc=20`` coefficients.  Output ``[B, n_frames, n_mfcc]`` = ``(B, 401, 20)``.

    ``n_mels=40`` (choice): librosa's default of 128 mel bands leaves empty filters with a 512-point
    FFT at 16 kHz (librosa warns about it); 40 bands is the usual speech setting and stays a
    superset of the 20 coefficients kept.  ``n_mels=128`` reproduces librosa's defaults exactly.
    """

    def __init__(self, *args: Any, n_mfcc: int = 20, n_mels: int = 40, dct_norm: str | None = "ortho", **kw: Any):
        super().__init__(*args, n_mels=n_mels, **kw)
        self.config.update(n_mfcc=n_mfcc, dct_norm=dct_norm)
        if n_mfcc > n_mels:
            raise ValueError(f"n_mfcc {n_mfcc} > n_mels {n_mels}")
        self.register_buffer("dct", AF.create_dct(n_mfcc, n_mels, norm=dct_norm).float(), persistent=False)
        self.feature_dim = n_mfcc

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        db, flen = self._mel_db(wave, lengths)
        mfcc = torch.matmul(db.transpose(1, 2), self.dct)  # [B, F, n_mfcc]
        return self._finish(mfcc.transpose(1, 2), flen)


# ----------------------------------------------------------------------------------------------
# paper B: 224 x 224 x 3 Log-Mel image
# ----------------------------------------------------------------------------------------------


class LogMelImage(FeatureExtractor):
    """Paper B Log-Mel "image" (§III-A steps 1-5, eq. (1)-(7); §IV-E step 1): pre-emphasis 0.97,
    Hamming frames, ``n_fft=1024``, ``hop=512``, 128 mel bands, log -> ``[B, 3, 224, 224]``.

    Choices where the paper is silent (all configurable):

    * log = dB (``10 log10``, ``ref=1.0``, ``top_db=80`` per item): eq. (7) only says "log"; the
      base is irrelevant after normalisation, ``top_db`` keeps digital silence from dominating it.
    * window length = ``n_fft`` (librosa's default ``win_length``), periodic Hamming, centred frames.
    * channels: ``"delta"`` (default) = static log-mel, its delta and delta-delta (HTK regression
      over ``delta_width=9`` frames, librosa's width, replicate edges), the common 3-channel log-mel;
      ``"repeat"`` = the log-mel copied thrice, a grey image fed to an RGB CNN.
    * resize: each item's *valid* log-mel frames (``[128, n_frames]``, ``n_frames = 1 + n // 512``)
      are resized bilinearly (``align_corners=False``; antialiased when shrinking) to
      ``image_size`` (rows = mel bands, row 0 = lowest band; columns = time), so a clip of any
      duration fills the image.  ``fixed_seconds`` pads/crops to a fixed duration first (as
      :class:`LogMel`), so that the time scale is the same for every item.
    * normalisation per item and channel: ``"minmax"`` (default) to ``[0, 1]`` like an image,
      ``"standardize"`` to zero mean / unit variance, or ``"none"``.

    The returned lengths are the image width (all columns are valid).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop: int = 512,
        win_length: int | None = None,
        n_mels: int = 128,
        window: str = "hamming",
        pre_emphasis: float | None = 0.97,
        image_size: int | tuple[int, int] | list[int] = 224,
        channels: str = "delta",
        delta_width: int = 9,
        normalize: str = "minmax",
        fixed_seconds: float | None = None,
        pad_mode: str = "zero",
        crop: str = "start",
        center: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        ref: float | str = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        antialias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        if isinstance(image_size, int):
            size = (image_size, image_size)
        else:
            size = (int(image_size[0]), int(image_size[1]))
        super().__init__(
            sample_rate=sample_rate, n_fft=n_fft, hop=hop, win_length=win_length, n_mels=n_mels, window=window,
            pre_emphasis=pre_emphasis, image_size=list(size), channels=channels, delta_width=delta_width,
            normalize=normalize, fixed_seconds=fixed_seconds, pad_mode=pad_mode, crop=crop, center=center,
            f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm, ref=ref, amin=amin, top_db=top_db,
            antialias=antialias, eps=eps,
        )
        if channels not in ("delta", "repeat"):
            raise ValueError(f"channels must be 'delta' or 'repeat', not {channels!r}")
        if normalize not in ("minmax", "standardize", "none"):
            raise ValueError(f"normalize must be minmax|standardize|none, not {normalize!r}")
        if pad_mode not in ("zero", "repeat") or crop not in ("start", "center"):
            raise ValueError(f"pad_mode must be zero|repeat and crop start|center, got {pad_mode!r}, {crop!r}")
        self.size = size
        self.channels, self.delta_width, self.normalize = channels, delta_width, normalize
        self.fixed_samples = None if fixed_seconds is None else int(round(fixed_seconds * sample_rate))
        self.pad_mode, self.crop, self.antialias, self.eps = pad_mode, crop, antialias, eps
        self.frontend = _MelFrontEnd(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length or n_fft, hop_length=hop, n_mels=n_mels,
            window=window, center=center, f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm,
            pre_emphasis=pre_emphasis, ref=ref, amin=amin, top_db=top_db,
        )
        fw = resize_weights(size[0], torch.tensor([n_mels]), n_mels, antialias=antialias)[0]
        self.register_buffer("freq_resize", fw, persistent=False)  # [H, n_mels]
        self.feature_dim = 3

    def num_frames(self, n_samples: int) -> int:
        return self.size[1]

    def mel_frames(self, n_samples: int) -> int:
        """Number of log-mel frames resized into the image for a clip of ``n_samples``."""
        return self.frontend.num_frames(self.fixed_samples if self.fixed_samples is not None else n_samples)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (3, *self.size)

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.fixed_samples is not None:
            wave = fix_length(wave, lengths, self.fixed_samples, pad_mode=self.pad_mode, crop=self.crop)
            lengths = torch.full_like(lengths, self.fixed_samples)
        db, flen = self.frontend(wave, lengths)  # [B, M, F]
        if self.channels == "delta":
            x = torch.stack(_deltas(db, flen, 2, self.delta_width), dim=1)  # [B, 3, M, F]
        else:
            x = db[:, None].expand(-1, 3, -1, -1)
        B, C, M, Fr = x.shape
        tw = resize_weights(self.size[1], flen, Fr, antialias=self.antialias)  # [B, W, F]
        img = torch.matmul(self.freq_resize, x)  # [B, 3, H, F]
        img = torch.matmul(img, tw.transpose(1, 2)[:, None])  # [B, 3, H, W]
        if self.normalize == "minmax":
            lo = img.amin(dim=(2, 3), keepdim=True)
            hi = img.amax(dim=(2, 3), keepdim=True)
            img = (img - lo) / (hi - lo).clamp(min=self.eps)
        elif self.normalize == "standardize":
            mu = img.mean(dim=(2, 3), keepdim=True)
            sd = img.std(dim=(2, 3), keepdim=True, unbiased=False)
            img = (img - mu) / sd.clamp(min=self.eps)
        return img.contiguous(), torch.full_like(lengths, self.size[1])


# ----------------------------------------------------------------------------------------------
# paper C: time-sequence speech visualization (SVS)
# ----------------------------------------------------------------------------------------------


class SVS(FeatureExtractor):
    """Paper C time-sequence speech visualization feature (§4.1 Definition 1, steps 1-5; §5.1).

    1. Frame the speech into ``m`` frames of ``alpha`` samples every ``beta`` samples; the last
       frame is completed with zeros: ``m = 1 + ceil(max(n - alpha, 0) / beta)`` for ``n`` samples
       (a clip shorter than ``alpha`` gives one zero-padded frame).  ``max_frames`` caps ``m``.
    2. Multiply each frame by a Hanning window of ``alpha`` samples (``window_periodic=False``:
       ``np.hanning``, the symmetric window the paper's name suggests).
    3. Divide each frame by its maximum ``|x|`` (frames whose maximum is below ``eps`` are silent;
       they are left as zeros and rendered as the bottom of the colour scale).  This makes the
       feature invariant to gain.
    4. STFT inside the frame: window ``inner_window = alpha'`` samples (Hann, symmetric as
       matplotlib's ``specgram``), hop ``alpha' - gamma`` (``gamma = inner_overlap``), no centring
       (plain segmentation as ``specgram``/``scipy.signal.spectrogram``): ``1 + (alpha - alpha') //
       (alpha' - gamma)`` columns (61 with the defaults) of ``n_fft // 2 + 1`` bins (129).  The
       magnitude is put in dB (``20 log10``), referenced to the frame image's maximum
       (``ref="max"``, like a plot's automatic colour limits; ``ref="fixed"``: 0 dB = the largest
       magnitude a normalised frame can reach, ``sum(window)``) and clipped ``db_range`` dB below
       it (``None``: min-max of the image), then mapped to ``[0, 1]``.
       The ``w x h = 155 x 77`` image of §5.1 (``77 x 38`` for AISHELL-3) has width = time axis and
       height = frequency axis.  No integer ``alpha'``/``gamma`` gives exactly 155 x 77 bins, so
       the spectrogram is resized with (antialiased) bilinear interpolation to ``height x width`` —
       what saving a plotted spectrogram at that resolution does.  Low frequencies are at the
       bottom (last row), as in a plotted image; :meth:`row_of_frequency` gives the row of a tone.
       ``mode="rgb"``: colour-mapped through ``colormap`` (matplotlib's, sampled into a 256 x 3
       look-up table at construction, applied by a gather; matplotlib's 256-level quantisation);
       ``mode="magnitude"``: the ``[0, 1]`` value as one channel.
    5. The images in time order: output ``[B, m_max, C, height, width]``, zeros beyond each item's
       ``m``; ``feat_lengths = m``.

    Memory: ``C * height * width * 4`` bytes per frame — 143,220 B (140 KiB) for 3 x 77 x 155,
    35,112 B for 3 x 38 x 77; a clip of ``n`` samples has ``m = 1 + ceil((n - 8000) / 1000)``
    frames (16 frames/s at 16 kHz: 5 s -> 73 frames -> 10.5 MB in RGB).  Frames are processed
    ``chunk_frames`` at a time (only valid frames are computed).
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        alpha: int = 8000,
        beta: int = 1000,
        window: str = "hann",
        window_periodic: bool = False,
        inner_window: int = 256,
        inner_overlap: int = 128,
        inner_window_fn: str = "hann",
        inner_window_periodic: bool = False,
        inner_n_fft: int | None = None,
        inner_center: bool = False,
        width: int = 155,
        height: int = 77,
        mode: str = "rgb",
        colormap: str = "viridis",
        db_range: float | None = 80.0,
        ref: str = "max",
        max_frames: int | None = None,
        chunk_frames: int = 256,
        antialias: bool = True,
        eps: float = 1e-8,
        amin: float = 1e-10,
    ) -> None:
        super().__init__(
            sample_rate=sample_rate, alpha=alpha, beta=beta, window=window, window_periodic=window_periodic,
            inner_window=inner_window, inner_overlap=inner_overlap, inner_window_fn=inner_window_fn,
            inner_window_periodic=inner_window_periodic, inner_n_fft=inner_n_fft, inner_center=inner_center,
            width=width, height=height, mode=mode, colormap=colormap, db_range=db_range, ref=ref,
            max_frames=max_frames, chunk_frames=chunk_frames, antialias=antialias, eps=eps, amin=amin,
        )
        if mode not in ("rgb", "magnitude"):
            raise ValueError(f"mode must be 'rgb' or 'magnitude', not {mode!r}")
        if ref not in ("max", "fixed"):
            raise ValueError(f"ref must be 'max' or 'fixed', not {ref!r}")
        if not 0 <= inner_overlap < inner_window <= alpha:
            raise ValueError("need 0 <= inner_overlap < inner_window <= alpha")
        self.sample_rate, self.alpha, self.beta = sample_rate, alpha, beta
        self.inner_window, self.inner_hop = inner_window, inner_window - inner_overlap
        self.n_fft = inner_n_fft or inner_window
        if self.n_fft < inner_window:
            raise ValueError("inner_n_fft must be >= inner_window")
        self.inner_center = inner_center
        self.width, self.height, self.mode = width, height, mode
        self.db_range, self.ref, self.max_frames = db_range, ref, max_frames
        self.chunk_frames, self.eps, self.amin = max(1, int(chunk_frames)), eps, amin
        self.channels = 3 if mode == "rgb" else 1
        self.feature_dim = self.channels
        self.register_buffer("window", _make_window(window, alpha, periodic=window_periodic), persistent=False)
        iw = _make_window(inner_window_fn, inner_window, periodic=inner_window_periodic)
        self.register_buffer("inner_win", iw, persistent=False)
        self.n_freq = self.n_fft // 2 + 1
        if inner_center:
            self.n_cols = 1 + alpha // self.inner_hop
        else:
            self.n_cols = 1 + (alpha - inner_window) // self.inner_hop
        # rows: frequency, flipped so that DC is the last row
        fw = resize_weights(height, torch.tensor([self.n_freq]), self.n_freq, antialias=antialias)[0].flip(0)
        tw = resize_weights(width, torch.tensor([self.n_cols]), self.n_cols, antialias=antialias)[0]
        self.register_buffer("freq_resize", fw, persistent=False)  # [height, n_freq]
        self.register_buffer("time_resize_t", tw.t().contiguous(), persistent=False)  # [n_cols, width]
        if mode == "rgb":
            import matplotlib  # construction time only

            cmap = matplotlib.colormaps[colormap]
            lut = torch.tensor(cmap(torch.linspace(0, 1, 256).numpy())[:, :3], dtype=torch.float32)
        else:
            lut = torch.empty(0)
        self.register_buffer("lut", lut, persistent=False)  # [256, 3]

    # -- shapes -----------------------------------------------------------------------------------
    def num_frames(self, n_samples: int) -> int:
        m = 1 + math.ceil(max(n_samples - self.alpha, 0) / self.beta)
        return min(m, self.max_frames) if self.max_frames else m

    def frame_counts(self, lengths: Tensor) -> Tensor:
        """``m`` per item (step 1) from sample lengths."""
        m = 1 + torch.div((lengths - self.alpha).clamp(min=0) + self.beta - 1, self.beta, rounding_mode="floor")
        return m.clamp(max=self.max_frames) if self.max_frames else m

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (self.num_frames(n_samples), self.channels, self.height, self.width)

    def bytes_per_frame(self) -> int:
        return self.channels * self.height * self.width * 4

    def row_of_frequency(self, hz: float) -> float:
        """Image row (0 = top) at which a tone of ``hz`` lands (fractional)."""
        k = hz * self.n_fft / self.sample_rate  # FFT bin
        u = (k + 0.5) * self.height / self.n_freq - 0.5  # row counted from the bottom
        return self.height - 1 - u

    # -- transform --------------------------------------------------------------------------------
    def frame_values(self, frames: Tensor) -> Tensor:
        """Steps 2-4 for a flat batch of raw frames ``[N, alpha]`` -> resized ``[0, 1]`` spectrogram
        images ``[N, height, width]`` (before the colormap)."""
        x = frames * self.window  # step 2
        peak = x.abs().amax(dim=1, keepdim=True)  # step 3
        silent = peak <= self.eps
        x = x / peak.clamp(min=self.eps)
        spec = torch.stft(  # step 4
            x, n_fft=self.n_fft, hop_length=self.inner_hop, win_length=self.inner_window, window=self.inner_win,
            center=self.inner_center, pad_mode="constant", return_complex=True,
        )  # [N, n_freq, n_cols]
        # 20 log10 |X| computed as 10 log10 |X|^2 (no square root)
        db = 10.0 * torch.log10((spec.real.square() + spec.imag.square()).clamp(min=self.amin**2))
        if self.ref == "max":
            top = db.flatten(1).amax(1)[:, None, None]
        else:
            top = torch.full_like(db[:, :1, :1], 20.0 * math.log10(float(self.inner_win.sum())))
        if self.db_range is None:
            bot = db.flatten(1).amin(1)[:, None, None]
            v = (db - bot) / (top - bot).clamp(min=1e-6)
        else:
            v = (db - top + float(self.db_range)) / float(self.db_range)
        v = v.clamp(0.0, 1.0).masked_fill(silent[:, :, None], 0.0)
        img = torch.matmul(torch.matmul(self.freq_resize, v), self.time_resize_t)  # [N, H, W]
        return img.clamp_(0.0, 1.0)

    def _lut_index(self, img: Tensor) -> Tensor:
        # matplotlib's quantisation of [0, 1] into the 256 entries of the look-up table
        return (img * 256).to(torch.long).clamp_(0, 255).view(-1)

    def frame_images(self, frames: Tensor) -> Tensor:
        """Steps 2-4 for a flat batch of raw frames ``[N, alpha]`` -> ``[N, C, height, width]``."""
        img = self.frame_values(frames)
        if self.mode == "magnitude":
            return img[:, None]
        idx = self._lut_index(img)
        rgb = torch.stack([self.lut[:, c].index_select(0, idx) for c in range(3)], dim=0)
        return rgb.view(3, *img.shape).transpose(0, 1)

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        B, T = wave.shape
        m = self.frame_counts(lengths)
        m_max = int(m.max().item()) if B else 0
        need = self.alpha + (max(m_max, 1) - 1) * self.beta
        if T < need:
            wave = F.pad(wave, (0, need - T))  # step 1: last frame zero-padded (wave is 0 past lengths)
        frames = wave.unfold(1, self.alpha, self.beta)[:, :m_max]  # view [B, m_max, alpha]
        valid = lengths_to_mask(m, m_max)
        # the output is the bulk of the memory traffic: allocate it once, zero only the padding and
        # write each colour plane in place (no [N, H, W, 3] gather, no stack, no full zero fill)
        out = wave.new_empty(B, m_max, self.channels, self.height, self.width)
        out[~valid] = 0.0
        bi, fi = valid.nonzero(as_tuple=True)
        for s in range(0, bi.numel(), self.chunk_frames):  # step 5: frames in time order
            b, f = bi[s : s + self.chunk_frames], fi[s : s + self.chunk_frames]
            img = self.frame_values(frames[b, f])
            if self.mode == "magnitude":
                out[:, :, 0][b, f] = img
                continue
            idx = self._lut_index(img)
            for c in range(3):
                out[:, :, c][b, f] = self.lut[:, c].index_select(0, idx).view_as(img)
        return out, m


# ----------------------------------------------------------------------------------------------
# paper C baseline: MFCC sequence
# ----------------------------------------------------------------------------------------------


class MFCCSequence(FeatureExtractor):
    """MFCC sequence of any length for paper C's baseline (BiLSTM over MFCC, §5.1, ref. [30]).

    Choices (the paper gives none; all configurable): 25 ms Hamming frames every 10 ms, 512-point
    FFT, 40 Slaney mel bands, pre-emphasis 0.97, dB (``top_db=80`` per utterance), ``n_mfcc=13``
    cepstra by orthonormal DCT-II (the classic ASR front end), plus deltas and delta-deltas
    (``deltas=2``, HTK regression over ``delta_width=5`` frames as Kaldi/HTK) -> 39 dims, then
    per-utterance CMVN over the valid frames (``cmvn=True``; ``cmvn_var=False`` for mean only).
    Output ``[B, F_max, n_mfcc * (1 + deltas)]`` with ``1 + n // hop`` frames per item and zeros
    beyond; ``feat_lengths`` in frames.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_mfcc: int = 13,
        n_mels: int = 40,
        win_ms: float = 25.0,
        hop_ms: float = 10.0,
        n_fft: int | None = None,
        window: str = "hamming",
        pre_emphasis: float | None = 0.97,
        deltas: int | bool = 2,
        delta_width: int = 5,
        cmvn: bool = True,
        cmvn_var: bool = True,
        center: bool = True,
        f_min: float = 0.0,
        f_max: float | None = None,
        mel_scale: str = "slaney",
        mel_norm: str | None = "slaney",
        ref: float | str = 1.0,
        amin: float = 1e-10,
        top_db: float | None = 80.0,
        eps: float = 1e-5,
    ) -> None:
        deltas = 2 if deltas is True else int(deltas)
        super().__init__(
            sample_rate=sample_rate, n_mfcc=n_mfcc, n_mels=n_mels, win_ms=win_ms, hop_ms=hop_ms, n_fft=n_fft,
            window=window, pre_emphasis=pre_emphasis, deltas=deltas, delta_width=delta_width, cmvn=cmvn,
            cmvn_var=cmvn_var, center=center, f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm,
            ref=ref, amin=amin, top_db=top_db, eps=eps,
        )
        win = _ms_to_samples(win_ms, sample_rate)
        self.frontend = _MelFrontEnd(
            sample_rate=sample_rate, n_fft=n_fft or _next_pow2(win), win_length=win,
            hop_length=_ms_to_samples(hop_ms, sample_rate), n_mels=n_mels, window=window, center=center,
            f_min=f_min, f_max=f_max, mel_scale=mel_scale, mel_norm=mel_norm, pre_emphasis=pre_emphasis,
            ref=ref, amin=amin, top_db=top_db,
        )
        self.register_buffer("dct", AF.create_dct(n_mfcc, n_mels, norm="ortho").float(), persistent=False)
        self.deltas, self.delta_width, self.cmvn, self.cmvn_var, self.eps = deltas, delta_width, cmvn, cmvn_var, eps
        self.feature_dim = n_mfcc * (1 + deltas)

    def num_frames(self, n_samples: int) -> int:
        return self.frontend.num_frames(n_samples)

    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        return (self.num_frames(n_samples), self.feature_dim)

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        db, flen = self.frontend(wave, lengths)  # [B, n_mels, F]
        flen = flen.clamp(min=1)
        F_max = int(flen.max().item())
        db = db[..., :F_max]
        ceps = torch.matmul(self.dct.t(), db)  # [B, n_mfcc, F]
        feats = torch.cat(_deltas(ceps, flen, self.deltas, self.delta_width), dim=1)  # [B, D, F]
        mask = lengths_to_mask(flen, F_max)[:, None, :].to(feats.dtype)
        if self.cmvn:
            n = flen[:, None, None].to(feats.dtype)
            mu = (feats * mask).sum(-1, keepdim=True) / n
            feats = feats - mu
            if self.cmvn_var:
                sd = ((feats.square() * mask).sum(-1, keepdim=True) / n).sqrt()
                feats = feats / sd.clamp(min=self.eps)
        feats = feats * mask
        return feats.transpose(1, 2).contiguous(), flen


# ----------------------------------------------------------------------------------------------
# construction
# ----------------------------------------------------------------------------------------------

#: named presets, identical to ``conf/features/<name>.yaml`` (checked by the tests)
PRESETS: dict[str, dict[str, Any]] = {
    "logmel": {"_target_": f"{__name__}.LogMel"},
    "mfcc": {"_target_": f"{__name__}.MFCC"},
    "logmel_image": {"_target_": f"{__name__}.LogMelImage"},
    "svs": {"_target_": f"{__name__}.SVS"},
    "svs_aishell": {"_target_": f"{__name__}.SVS", "width": 77, "height": 38},
    "mfcc_seq": {"_target_": f"{__name__}.MFCCSequence"},
}

_CLASSES = {c.__name__: c for c in (LogMel, MFCC, LogMelImage, SVS, MFCCSequence)}


def build_features(name_or_cfg: str | Mapping[str, Any] | FeatureExtractor, **overrides: Any) -> FeatureExtractor:
    """Build an extractor from a preset name (``"logmel"``, ``"mfcc"``, ``"logmel_image"``,
    ``"svs"``, ``"svs_aishell"``, ``"mfcc_seq"``), a class name (``"SVS"``), a mapping with a
    ``_target_`` (a Hydra node or :attr:`FeatureExtractor.config`) or a ``name`` key, plus keyword
    overrides.  An extractor instance is returned unchanged (when no overrides are given)."""
    if isinstance(name_or_cfg, FeatureExtractor):
        if overrides:
            return build_features(name_or_cfg.config, **overrides)
        return name_or_cfg
    if isinstance(name_or_cfg, str):
        key = name_or_cfg.strip()
        if key.lower() in PRESETS:
            cfg: dict[str, Any] = dict(PRESETS[key.lower()])
        elif key.split(".")[-1] in _CLASSES:
            cfg = {"_target_": f"{__name__}.{key.split('.')[-1]}"}
        else:
            raise ValueError(f"unknown feature type {name_or_cfg!r}; presets: {sorted(PRESETS)}")
    else:
        try:  # OmegaConf DictConfig -> plain dict, without importing omegaconf when not needed
            from omegaconf import DictConfig, OmegaConf

            if isinstance(name_or_cfg, DictConfig):
                name_or_cfg = OmegaConf.to_container(name_or_cfg, resolve=True)  # type: ignore[assignment]
        except ImportError:  # pragma: no cover
            pass
        cfg = dict(name_or_cfg)  # type: ignore[arg-type]
        if "_target_" not in cfg:
            if "name" not in cfg:
                raise ValueError("feature config needs '_target_' or 'name'")
            base = dict(PRESETS[str(cfg.pop("name")).lower()])
            base.update(cfg)
            cfg = base
    cfg.update(overrides)
    target = str(cfg.pop("_target_")).split(".")[-1]
    if target not in _CLASSES:
        raise ValueError(f"unknown feature class {target!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[target](**cfg)

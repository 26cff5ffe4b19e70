"""Log-Mel and MFCC front ends: paper A's 4 s Log-Mel / MFCC and paper C's MFCC-sequence baseline.

* :class:`_MelFrontEnd`: the shared framed STFT -> mel filterbank -> dB step (A §3.1 steps 1-4,
  eq. (1)-(2); B §III-A eq. (1)-(7), used by :mod:`speechret.features.image` too);
* :class:`LogMel`, :class:`MFCC`: paper A §3.1 eq. (1)-(3), §4.4 step 1;
* :class:`MFCCSequence`: paper C §5.1 baseline (BiLSTM over MFCC + deltas, per-utterance CMVN).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from speechret import torchaudio_api as AF
from speechret.features.base import (
    FeatureExtractor,
    _deltas,
    _make_window,
    _masked_max,
    _ms_to_samples,
    _next_pow2,
    fix_length,
    lengths_to_mask,
)

__all__ = ["LogMel", "MFCC", "MFCCSequence"]


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

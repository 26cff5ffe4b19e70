"""A pitch track beside the log-mel: YIN fundamental frequency and periodicity per frame, batched.

Not from the three papers: speechret's own features for tonal words (issue 12).  Mandarin's
near-homophones of DSPSpeech-20 (北京 bei3 jing1 / 背景 bei4 jing3, 上海 shang4 hai3 / 商行 shang1 hang2,
语音 yu3 yin1 / 语言 yu3 yan2) differ in their tones, i.e. in the shape of the F0 contour, which a 64-band
log-mel holds only through the spacing of its low harmonics.

:func:`yin_pitch` is YIN (de Cheveigné & Kawahara, "YIN, a fundamental frequency estimator for speech
and music", JASA 111(4), 2002), steps 2-5:

* step 2, the difference function ``d(τ) = Σ_{j<W} (x_j − x_{j+τ})²`` over a window of ``W`` samples,
  computed as ``e_0 + e_τ − 2 r(τ)`` with the cross-correlation ``r`` by FFT (eq. 7);
* step 3, the cumulative mean normalised difference ``d'(τ) = d(τ) τ / Σ_{k=1..τ} d(k)``, ``d'(0) = 1``
  (eq. 8);
* step 4, the absolute threshold: the first ``τ`` in ``[sr / f_max, sr / f_min]`` with ``d'(τ) <
  threshold``, then the smallest ``d'`` of the run below the threshold that starts there (the dip the
  first crossing enters); the global minimum of the range when no ``τ`` crosses it;
* step 5, parabolic interpolation of ``d'`` around the chosen ``τ``.

Step 6 (the "best local estimate" re-search) is not done; in its place ``log2 F0`` is median-smoothed over
``median_frames`` frames (as torchaudio's ``detect_pitch_frequency`` smooths its NCCF track), which removes
isolated octave jumps.  The track is computed on the waveform resampled to ``pitch_sample_rate`` (4 kHz by
default, as Kaldi's pitch tracker: F0 up to 500 Hz needs no more, and the lags and FFTs are a quarter as
long; Ghahremani et al., ICASSP 2014), with ``hop`` and ``W`` scaled to match.  The periodicity of a
frame is ``1 − d'(τ)`` at the chosen lag, clamped to [0, 1] (YIN's aperiodicity, §II.E, turned round); a
frame with no energy has periodicity 0.  Frames are centred as the log-mel's (``center=True``: frame ``t`` around sample
``t · hop``, zero padding at both ends), so the track has the log-mel's ``1 + n // hop`` frames.

:class:`LogMelPitch` is :class:`~speechret.features.mel.LogMel` with two more columns per frame:
``log2 F0`` (octaves above 1 Hz) and the periodicity.  Their per-utterance normalisation (the speaker's
register taken out) belongs to the model that reads them
(:class:`~speechret.models.components.log_mel_hash.LogMelHashNet`, ``pitch_points``).  The two columns
are not spectral bins: ``side_dims = 2`` tells :class:`~speechret.spec_augment.SpecAugment` to leave
them out of its frequency masks, warp and time masks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from speechret.features.base import _ms_to_samples, _next_pow2
from speechret.features.mel import LogMel
from speechret.features.resample_axis import resample_padded

__all__ = ["LogMelPitch", "yin_pitch"]


def yin_pitch(wave: Tensor, hop: int, win: int, tau_min: int, tau_max: int, threshold: float = 0.1,
              eps: float = 1e-10) -> tuple[Tensor, Tensor]:
    """YIN (module docstring) on a zero-padded batch ``wave`` (B, T): ``1 + T // hop`` frames, frame
    ``t`` integrating ``win`` samples from ``t · hop − (win + tau_max) // 2``.  Returns ``(f0_lag,
    periodicity)``, both (B, frames): the fractional lag in samples (``sample_rate / f0_lag`` is F0)
    and ``1 − d'`` at that lag in [0, 1]."""
    if not 1 <= tau_min < tau_max:
        raise ValueError(f"yin_pitch: need 1 <= tau_min < tau_max, got {tau_min}, {tau_max}")
    span = win + tau_max
    b, t = wave.shape
    n_frames = 1 + t // hop
    x = F.pad(wave, (span // 2, span))
    frames = x.unfold(1, span, hop)[:, :n_frames]                      # (B, F, win + tau_max)
    n_fft = _next_pow2(span + win)
    spec = torch.fft.rfft(frames, n_fft)
    head = torch.fft.rfft(frames[..., :win], n_fft)
    r = torch.fft.irfft(head.conj() * spec, n_fft)[..., : tau_max + 1]   # r(τ) = Σ_{j<W} x_j x_{j+τ}
    sq = F.pad(frames.square().cumsum(-1), (1, 0))                     # sq[k] = Σ_{j<k} x_j²
    taus = torch.arange(tau_max + 1, device=wave.device)
    e_tau = sq[..., taus + win] - sq[..., taus]                         # Σ_{j=τ}^{τ+W-1} x_j²
    d = (e_tau[..., :1] + e_tau - 2 * r).clamp_min(0.0)                 # eq. (7)
    cum = d[..., 1:].cumsum(-1)
    cmnd = torch.ones_like(d)
    cmnd[..., 1:] = torch.where(cum > eps, d[..., 1:] * taus[1:] / cum.clamp_min(eps), torch.ones_like(cum))
    rng = cmnd[..., tau_min: tau_max + 1]                               # lags of the F0 range
    below = rng < threshold
    first = below.to(torch.int8).argmax(-1, keepdim=True)               # step 4: the first crossing
    k = torch.arange(rng.shape[-1], device=wave.device)
    # the run below the threshold that starts at the first crossing: lags >= first with no gap since
    run = (below | (k < first)).to(torch.int8).cumprod(-1).bool() & (k >= first)
    any_below = below.any(-1, keepdim=True)
    pick = torch.where(any_below, rng.masked_fill(~run, float("inf")), rng).argmin(-1, keepdim=True)
    # step 5: parabolic interpolation over d' at the neighbours (clamped at the range's ends)
    idx = pick + tau_min
    left = cmnd.gather(-1, (idx - 1).clamp_min(0))
    mid = cmnd.gather(-1, idx)
    right = cmnd.gather(-1, (idx + 1).clamp_max(tau_max))
    curv = left - 2 * mid + right
    shift = torch.where(curv > eps, 0.5 * (left - right) / curv.clamp_min(eps), torch.zeros_like(curv))
    lag = idx.to(wave.dtype) + shift.clamp(-0.5, 0.5)
    periodic = (1.0 - mid.squeeze(-1)).clamp(0.0, 1.0) * (e_tau[..., 0] > eps)   # e_0: the window's energy
    return lag.squeeze(-1), periodic


class LogMelPitch(LogMel):
    """:class:`~speechret.features.mel.LogMel` and a YIN pitch track (module docstring): output
    ``[B, n_frames, n_mels + 2]``, the last two columns ``log2 F0`` and the periodicity of each frame.

    Args (beyond :class:`LogMel`'s):
        pitch_win_ms: YIN's integration window ``W`` (32 ms: two periods of a 60 Hz voice).
        f0_min / f0_max: the F0 range searched, in Hz (lags ``sample_rate / f0_max`` to
            ``sample_rate / f0_min``).
        yin_threshold: YIN's absolute threshold on ``d'`` (step 4; 0.1 in the paper).
        pitch_sample_rate: the rate the track is computed at (the log-mel's hop in seconds is kept;
            it must divide into whole samples there).
        median_frames: odd width of the median smoothing of ``log2 F0`` (1: none).

    The track needs the natural length (``fixed_seconds=None``); frames beyond an item's length
    hold ``pad_value`` in every column, as the log-mel's do.
    """

    side_dims: int = 2  # log2 F0 and the periodicity (FeatureExtractor.side_dims)

    def __init__(self, *args: Any, pitch_win_ms: float = 32.0, f0_min: float = 60.0, f0_max: float = 500.0,
                 yin_threshold: float = 0.1, pitch_sample_rate: int = 4000, median_frames: int = 5,
                 **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.config.update(pitch_win_ms=pitch_win_ms, f0_min=f0_min, f0_max=f0_max, yin_threshold=yin_threshold,
                           pitch_sample_rate=pitch_sample_rate, median_frames=median_frames)
        if self.fixed_samples is not None:
            raise ValueError("LogMelPitch: fixed_seconds must be null (the track follows each item's own length)")
        self.pitch_rate = int(pitch_sample_rate)
        hop = self.frontend.hop_length * self.pitch_rate / self.sample_rate
        if not 0 < self.pitch_rate <= self.sample_rate or hop != int(hop):
            raise ValueError(f"LogMelPitch: pitch_sample_rate {pitch_sample_rate} must lie in (0, {self.sample_rate}] "
                             f"and hold the log-mel's hop ({self.frontend.hop_length} samples) in whole samples")
        if not 0 < f0_min < f0_max < self.pitch_rate / 4:
            raise ValueError(f"LogMelPitch: need 0 < f0_min < f0_max < pitch_sample_rate / 4, got {f0_min}, {f0_max}")
        if int(median_frames) < 1 or int(median_frames) % 2 == 0:
            raise ValueError(f"LogMelPitch: median_frames must be odd and >= 1, got {median_frames}")
        self.pitch_hop, self.median_frames = int(hop), int(median_frames)
        if not 0 < yin_threshold < 1:
            raise ValueError(f"LogMelPitch: yin_threshold must lie in (0, 1), got {yin_threshold}")
        if not self.frontend.center:
            raise ValueError("LogMelPitch: center must be true (the track's frames are centred as the log-mel's)")
        self.pitch_win = _ms_to_samples(pitch_win_ms, self.pitch_rate)
        self.tau_min = int(self.pitch_rate // f0_max)
        self.tau_max = int(-(-self.pitch_rate // f0_min))
        self.yin_threshold = float(yin_threshold)
        self.feature_dim = self.frontend.n_mels + self.side_dims

    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        db, flen = self._mel_db(wave, lengths)                       # [B, n_mels, F]
        low, _ = resample_padded(wave, lengths, self.sample_rate, self.pitch_rate)  # each row as it is alone
        lag, periodic = yin_pitch(low, self.pitch_hop, self.pitch_win, self.tau_min, self.tau_max, self.yin_threshold)
        frames = db.shape[-1]  # the resampled track may hold one frame more
        log_f0 = torch.log2(self.pitch_rate / lag[:, :frames])
        if self.median_frames > 1:  # each item's last valid frame repeated past it, as a lone item's edge
            k = self.median_frames
            last = (flen.clamp(1, frames) - 1)[:, None]
            log_f0 = log_f0.gather(1, torch.minimum(torch.arange(frames, device=log_f0.device)[None], last))
            log_f0 = F.pad(log_f0[:, None], (k // 2, k // 2), mode="replicate")[:, 0].unfold(1, k, 1).median(-1).values
        feats = torch.cat([db, log_f0[:, None], periodic[:, None, :frames]], 1)
        return self._finish(feats, flen)

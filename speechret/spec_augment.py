"""SpecAugment on features: time and frequency masks and a VTLP warp, batched on the device.

:class:`SpecAugment` — time and frequency masks (Park et al., "SpecAugment", Interspeech 2019,
§2) through torchaudio's ``TimeMasking`` / ``FrequencyMasking`` with a mask per item; a mask is
at most ``time_mask_param`` frames / ``freq_mask_param`` bins wide and never reaches the padding.
The waveform operations are in :mod:`speechret.augment`, which re-exports this class (configs
and checkpoints name it ``speechret.augment.SpecAugment``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from speechret.errors import ConfigError
from speechret.features.resample_axis import sample_last_axis
from speechret.torchaudio_api import FrequencyMasking, TimeMasking

__all__ = ["SpecAugment", "check_prob"]


def check_prob(p: float, name: str) -> float:
    """``p`` as a float, or a ``ValueError`` naming ``name.p`` when it lies outside [0, 1]."""
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}.p must lie in [0, 1], got {p}")
    return float(p)


class SpecAugment(nn.Module):
    """Time and frequency masks on features (Park et al. 2019 §2), one draw per item.

    Args:
        freq_mask_param / time_mask_param: maximum mask width F / T (torchaudio draws the width
            uniformly in ``[0, param)``).
        n_freq_masks / n_time_masks: masks of each kind per item.
        p: probability that an item is masked at all.
        time_dim / freq_dim: axes of the feature tensor (batch is axis 0); Log-Mel is
            ``(B, T, F)`` → ``time_dim=1, freq_dim=2``.  ``None`` (the default) takes them from
            the feature extractor the masks follow (:meth:`bind`: ``FeatureExtractor.time_dim`` /
            ``freq_dim``), so one augmentation config serves sequences, images (paper B:
            ``[B, 3, mel, time]``) and image sequences (paper C SVS: whole frames and rows).
        mask_value: value written into the masked cells: a number, or ``"mean"`` — each item's
            mean over its valid cells.  Park et al. (2019 §2) mask normalised features with 0,
            i.e. with their mean; on un-normalised log-mel (absolute dB, mean near -45 dB, peak
            near +15 dB) a 0 paints a stripe as loud as the loudest speech, which the
            per-utterance normalisation downstream then spreads over the whole item.
        time_mask_placement: where a time mask may fall.  ``"batch"`` (default): torchaudio's
            ``TimeMasking`` on the padded batch, which draws the start over the batch's longest
            item, so a mask on a shorter item can land (partly or wholly) in its padding and is then
            dropped: how much of an item is masked depends on what else is in its batch.
            ``"item"``: each mask is drawn within the item's own valid frames (width
            ``U[0, min(time_mask_param, n))``, start ``U[0, n - width]`` for ``n`` valid frames, the
            same rounding as torchaudio), so every item gets its ``n_time_masks`` whatever its batch
            -- Park et al.'s masks on one utterance ("SpecAugment", Interspeech 2019, §2: ``t0``
            from ``[0, τ - t)`` for the utterance's ``τ`` steps).  On speechret_hash's training words
            ``item`` masks 18 % of a word's frames on average against ``batch``'s 11 %, and was measured
            and not kept (2026-12-07, ``reports/cross_speaker.md``).
        freq_warp: ``w`` ≥ 0: before masking, each item's frequency axis is stretched by a factor
            ``α ~ U[1 − w, 1 + w]`` (output bin ``f`` reads input bin ``f / α``, linear
            interpolation, the top bin repeated past the edge) — vocal tract length perturbation
            (Jaitly & Hinton, "Vocal Tract Length Perturbation (VTLP) improves speech
            recognition", ICML WDLASL 2013), applied to the (mel) bins directly rather than to
            Hz before the filterbank: an approximation that keeps it a cheap batched feature op.
            0 (default) disables it.

    ``forward(feats, lengths=None)``: masks stay inside each item's ``lengths`` valid frames.
    The identity in ``eval()`` mode.  Bound to an extractor with ``side_dims`` (e.g.
    :class:`speechret.features.LogMelPitch`'s pitch track), the last ``side_dims`` entries of the
    frequency axis are not spectral bins: the warp and the masks leave them as they are.
    """

    def __init__(self, freq_mask_param: int = 8, time_mask_param: int = 20, n_freq_masks: int = 2,
                 n_time_masks: int = 2, p: float = 1.0, time_dim: int | None = None,
                 freq_dim: int | None = None, mask_value: float | str = 0.0, freq_warp: float = 0.0,
                 time_mask_placement: str = "batch") -> None:
        super().__init__()
        if time_mask_placement not in ("batch", "item"):
            raise ConfigError(f"SpecAugment.time_mask_placement must be 'batch' or 'item', got {time_mask_placement!r}")
        self.time_mask_placement = time_mask_placement
        if not 0.0 <= float(freq_warp) < 1.0:
            raise ConfigError(f"SpecAugment.freq_warp must lie in [0, 1), got {freq_warp}")
        self.freq_warp = float(freq_warp)
        self.p = check_prob(p, "SpecAugment")
        self.freq = FrequencyMasking(int(freq_mask_param), iid_masks=True)
        self.time = TimeMasking(int(time_mask_param), iid_masks=True)
        self.n_freq, self.n_time = int(n_freq_masks), int(n_time_masks)
        self.time_dim = None if time_dim is None else int(time_dim)
        self.freq_dim = None if freq_dim is None else int(freq_dim)
        self.freq_ascending = True
        self.side_dims = 0
        if isinstance(mask_value, str) and mask_value != "mean":
            raise ConfigError(f"SpecAugment.mask_value must be a number or 'mean', got {mask_value!r}")
        self.mask_value = mask_value if isinstance(mask_value, str) else float(mask_value)

    def bind(self, features: nn.Module) -> SpecAugment:
        """Take the axes left ``None`` (and the frequency direction) from ``features``, the
        extractor whose output this augments; returns ``self``."""
        if self.time_dim is None:
            self.time_dim = int(getattr(features, "time_dim", 1))
        if self.freq_dim is None:
            self.freq_dim = int(getattr(features, "freq_dim", 2))
        self.freq_ascending = bool(getattr(features, "freq_ascending", True))
        self.side_dims = int(getattr(features, "side_dims", 0))
        return self

    def _axes(self) -> tuple[int, int]:
        """``(time_dim, freq_dim)``; unbound axes are those of a time-major ``[B, T, F]`` batch."""
        return (1 if self.time_dim is None else self.time_dim, 2 if self.freq_dim is None else self.freq_dim)

    def warp(self, feats: Tensor, alpha: Tensor) -> Tensor:
        """Stretch the frequency axis of each item by ``alpha`` (B,): output bin ``f`` takes the
        linear interpolation of input bins at ``f / alpha`` (bin 0 the lowest frequency; axes
        whose rows descend are flipped around the warp)."""
        freq_dim = self._axes()[1]
        x = feats.movedim(freq_dim, -1)
        if not self.freq_ascending:
            x = x.flip(-1)
        n = x.shape[-1]
        src = (torch.arange(n, device=x.device, dtype=torch.float32)[None, :] / alpha.to(x.device)[:, None])
        out = sample_last_axis(x, src.clamp(0, n - 1), n - 1)
        if not self.freq_ascending:
            out = out.flip(-1)
        return out.movedim(-1, freq_dim)

    def forward(self, feats: Tensor, lengths: Tensor | None = None) -> Tensor:
        if not self.training:
            return feats
        if self.side_dims:  # trailing columns that are not spectral bins (a pitch track) pass untouched
            freq_dim = self._axes()[1]
            n = feats.shape[freq_dim] - self.side_dims
            spec = self._augment(feats.narrow(freq_dim, 0, n), lengths)
            return torch.cat([spec, feats.narrow(freq_dim, n, self.side_dims)], freq_dim)
        return self._augment(feats, lengths)

    def _augment(self, feats: Tensor, lengths: Tensor | None) -> Tensor:
        if self.freq_warp > 0:
            alpha = 1.0 + (torch.rand(feats.shape[0]) * 2 - 1) * self.freq_warp
            feats = self.warp(feats, alpha)
        if self.n_freq == 0 and self.n_time == 0:
            return feats
        # torchaudio masks the last two axes of (B, C, F, T): move (freq, time) there
        time_dim, freq_dim = self._axes()
        x = feats.movedim((freq_dim, time_dim), (-2, -1))
        moved = x.shape
        x4 = x.reshape(moved[0], -1, moved[-2], moved[-1])
        marker = torch.zeros_like(x4[:, :1])
        for _ in range(self.n_freq):
            marker = self.freq(marker, mask_value=1.0)
        if self.time_mask_placement == "item" and lengths is not None:
            marker = self._item_time_masks(marker, torch.as_tensor(lengths, device=marker.device))
        else:
            for _ in range(self.n_time):
                marker = self.time(marker, mask_value=1.0)
        hit = marker > 0.5
        valid = torch.ones_like(hit)
        if lengths is not None:
            frames = torch.arange(moved[-1], device=feats.device)
            valid = (frames < torch.as_tensor(lengths, device=feats.device)[:, None, None, None]).expand_as(hit)
        hit = hit & valid & (torch.rand((moved[0], 1, 1, 1)) < self.p).to(feats.device)
        if self.mask_value == "mean":
            w = valid.to(x4.dtype)
            fill = (x4 * w).sum((1, 2, 3), keepdim=True) / (w.sum((1, 2, 3), keepdim=True) * x4.shape[1]).clamp_min(1)
            x4 = torch.where(hit, fill.expand_as(x4), x4)
        else:
            x4 = torch.where(hit, torch.full_like(x4, self.mask_value), x4)
        return x4.reshape(moved).movedim((-2, -1), (freq_dim, time_dim))

    def _item_time_masks(self, marker: Tensor, lengths: Tensor) -> Tensor:
        """``marker`` (B, 1, F, T) with ``n_time_masks`` time masks per item set to 1, each drawn within
        the item's ``lengths`` valid frames (``time_mask_placement="item"``)."""
        b, frames = marker.shape[0], torch.arange(marker.shape[-1], device=marker.device)
        n = lengths.to(torch.float32).clamp_min(0)[:, None]                              # (B, 1)
        width = torch.rand(b, self.n_time, device=marker.device) * n.clamp(max=float(self.time.mask_param))
        start = torch.rand(b, self.n_time, device=marker.device) * (n - width)
        lo = start.long()[..., None]                                                     # (B, M, 1)
        hi = lo + width.long()[..., None]                           # torchaudio's rounding: < param wide
        masked = ((frames >= lo) & (frames < hi)).any(1)                                  # (B, T)
        return marker.masked_fill(masked[:, None, None, :], 1.0)

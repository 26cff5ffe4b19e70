"""Resampling a batch along its last axis when each row has its own length.

* :func:`sample_last_axis`: linear interpolation at per-item fractional positions, one mechanism for
  two feature-axis resamplings: the VTLP warp of the frequency bins
  (:meth:`speechret.spec_augment.SpecAugment.warp`) and the linear time normalisation of a word's
  frames (:func:`speechret.models.components.log_mel_hash.linear_time_normalize`).  A gather of the
  two neighbours of each position rather than ``F.interpolate`` / ``F.grid_sample``: the positions
  differ from item to item and must never reach past an item's own last valid index.
* :func:`resample_padded`: a zero-padded batch of waveforms resampled to another rate, each row as
  :func:`speechret.audio.resample_torch` resamples it alone; shared by speed perturbation
  (:func:`speechret.augment.speed_change`, and so the test-time speed views) and the pitch track's
  4 kHz copy of the wave (:class:`speechret.features.LogMelPitch`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechret.audio import resample_torch
from speechret.features.base import lengths_to_mask

__all__ = ["resample_padded", "sample_last_axis"]


def sample_last_axis(x: Tensor, pos: Tensor, last: Tensor | int) -> Tensor:
    """``x`` (B, ..., T) read at ``pos`` (B, N) by linear interpolation along its last axis:
    ``x[..., floor(p)] (1 - w) + x[..., min(floor(p) + 1, last)] w`` with ``w = p - floor(p)``;
    returns (B, ..., N).  ``pos`` must already lie in ``[0, last]``; ``last`` is each item's last
    index that may be read, (B, 1) or one int."""
    lo = pos.floor().long()
    hi = torch.minimum(lo + 1, torch.as_tensor(last, device=lo.device))
    w = (pos - lo.to(pos.dtype)).to(x.dtype)
    n = pos.shape[-1]
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (n,)
    size = (*x.shape[:-1], n)
    lo, hi, w = lo.view(shape).expand(size), hi.view(shape).expand(size), w.view(shape).expand(size)
    return torch.gather(x, -1, lo) * (1 - w) + torch.gather(x, -1, hi) * w


def resample_padded(wave: Tensor, lengths: Tensor, orig_sr: int, new_sr: int) -> tuple[Tensor, Tensor]:
    """A zero-padded batch ``wave`` (B, T) with ``lengths`` valid samples per row, resampled from
    ``orig_sr`` to ``new_sr``, each row zero past its own new length ``ceil(L · new_sr / orig_sr)``:
    what the row gives resampled alone (the filter's tail past the row's end, and any padding, are
    not kept).  Returns the batch and the new lengths."""
    lengths = torch.as_tensor(lengths, device=wave.device)
    out = resample_torch(wave * lengths_to_mask(lengths, wave.shape[-1]).to(wave.dtype), orig_sr, new_sr)
    new_len = -(-lengths * int(new_sr) // int(orig_sr))
    return out * lengths_to_mask(new_len, out.shape[-1]).to(out.dtype), new_len

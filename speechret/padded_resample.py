"""Resampling of a zero-padded batch whose rows have their own lengths.

One step shared by speed perturbation (:func:`speechret.augment.speed_change`, and so the test-time
speed views) and the pitch track's 4 kHz copy of the wave (:class:`speechret.features.LogMelPitch`):
each row resampled as :func:`speechret.audio.resample_torch` resamples it alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechret.audio import resample_torch

__all__ = ["resample_padded"]


def resample_padded(wave: Tensor, lengths: Tensor, orig_sr: int, new_sr: int) -> tuple[Tensor, Tensor]:
    """A zero-padded batch ``wave`` (B, T) with ``lengths`` valid samples per row, resampled from
    ``orig_sr`` to ``new_sr``, each row zero past its own new length ``ceil(L · new_sr / orig_sr)``:
    what the row gives resampled alone (the filter's tail past the row's end, and any padding, are
    not kept).  Returns the batch and the new lengths."""
    lengths = torch.as_tensor(lengths, device=wave.device)
    frames = torch.arange(wave.shape[-1], device=wave.device)
    out = resample_torch(wave * (frames[None, :] < lengths[:, None]).to(wave.dtype), orig_sr, new_sr)
    new_len = -(-lengths * int(new_sr) // int(orig_sr))
    frames = torch.arange(out.shape[-1], device=wave.device)
    return out * (frames[None, :] < new_len[:, None]).to(out.dtype), new_len

"""Linear interpolation of a batch along its last axis at per-item fractional positions.

One mechanism for two feature-axis resamplings: the VTLP warp of the frequency bins
(:meth:`speechret.spec_augment.SpecAugment.warp`) and the linear time normalisation of a word's
frames (:func:`speechret.models.components.log_mel_hash.linear_time_normalize`).  A gather of the
two neighbours of each position rather than ``F.interpolate`` / ``F.grid_sample``: the positions
differ from item to item and must never reach past an item's own last valid index.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["sample_last_axis"]


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

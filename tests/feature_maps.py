"""Feature-map batches shared by the tests of the stage-output modules (MixStyle, InstanceNorm)."""

from __future__ import annotations

import torch


def styled_maps(seed: int = 0, per_row: bool = False):
    """A padded batch of (5, 3, 8, 40) feature maps, each item with its own random scale and offset
    per channel (and per frequency row with ``per_row``): its own "style" (MixStyle and
    InstanceNorm tests).  Returns ``(x, lengths, valid)``: ``x`` zero beyond each item's
    ``lengths`` frames, ``valid`` the (5, 1, 1, 40) frame mask."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([40, 25, 33, 12, 40])
    rows = 8 if per_row else 1
    x = torch.randn(5, 3, 8, 40, generator=g) * torch.rand(5, 3, rows, 1, generator=g).mul(3).add(0.5) \
        + torch.randn(5, 3, rows, 1, generator=g) * 2
    valid = (torch.arange(40)[None, :] < lengths[:, None])[:, None, None, :]
    return x * valid, lengths, valid

"""Instance normalisation of variable-length (B, C, F, T) maps: IBN-Net's IN and its relaxed forms.

Where :class:`~speechret.models.components.mixstyle.MixStyle` *diversifies* the instance
statistics of early feature maps in training, instance normalisation *removes* them, in training
and at indexing and search time alike: a voice's or a recording chain's "style" (Huang & Belongie,
ICCV 2017) cannot reach the code from the layers it normalises.  Built on:

* IBN-Net (Pan, Luo, Shi & Tang, "Two at Once: Enhancing Learning and Generalization Capacities
  via IBN-Net", ECCV 2018, the "IBN-b" variant): instance normalisation of the output of the
  stem and of the last block of the first two residual stages (after the addition), which
  generalises across appearance domains without target data; here after the last block of the
  stages named by ``ResNetHashNet(style_after=...)``, before the next block's batch norm and
  ReLU.  ``per="channel"``, ``residual=0``: the statistics of each channel over frequency and time.
* Residual normalisation (Kim, Yang, Kim & Chang, "Domain Generalization on Efficient Acoustic
  Scene Classification using Residual Normalization", Interspeech 2021; the first-placed system
  of DCASE 2021 task 1A): ``ResNorm(x) = λ x + IFN(x)``, where the instance *frequency-wise*
  normalisation IFN takes the statistics of each frequency row over the channels and time, so
  each band's level and spread per recording (a device's or a voice's spectral colour) is removed
  while ``λ x`` keeps some of what full normalisation would lose.  ``per="frequency"``, ``residual=λ``.

So ``y = IN(x) + residual · x`` with ``IN`` taken ``per`` channel or frequency row.  IBN-b's IN
has a learned per-channel scale and shift; this one has none (ResNorm has none either): in
:class:`~speechret.models.components.resnet_hash.ResNetHashNet` its output goes into the next
block's batch norm (pre-activation order), whose normalisation cancels any per-channel scale and
shift before it and whose own affine parameters take their place.

Choices where the papers are silent (our sequences are padded): the statistics are taken over each
item's valid frames only (:func:`~speechret.models.components.common.instance_statistics`), and
the output is zero beyond them, as the input was.  Unlike MixStyle, this is the same in training
and ``eval()`` mode (it is part of the network), and it has no effect on a map whose instance
statistics are already 0 and 1 other than the ``residual`` term.
"""
from __future__ import annotations

from torch import Tensor, nn

from speechret.models.components.common import instance_statistics

__all__ = ["InstanceNorm"]

_AXES = {"channel": (2, 3), "frequency": (1, 3)}


class InstanceNorm(nn.Module):
    """``y = IN(x) + residual · x`` over each item's valid frames (see the module docstring).

    Args:
        per: ``"channel"`` (IBN-b: each channel over F and T) or ``"frequency"`` (ResNorm's IFN:
            each frequency row over C and T).
        residual: λ ≥ 0, the share of the input added back (0: plain IN, IBN-b).
        eps: added to the variance before the square root.
    """

    def __init__(self, per: str = "channel", residual: float = 0.0, eps: float = 1e-5) -> None:
        super().__init__()
        if per not in _AXES:
            raise ValueError(f"InstanceNorm: per must be one of {sorted(_AXES)}, got {per!r}")
        if float(residual) < 0.0:
            raise ValueError(f"InstanceNorm: residual must be >= 0, got {residual}")
        self.per, self.residual, self.eps = per, float(residual), float(eps)

    def extra_repr(self) -> str:
        return f"per={self.per!r}, residual={self.residual}"

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mu, sig, valid = instance_statistics(x, lengths, _AXES[self.per], self.eps)
        y = (x - mu) / sig
        if self.residual:
            y = y + self.residual * x
        return y * valid

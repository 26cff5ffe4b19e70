"""MixStyle: feature-statistics mixing for domain generalisation, on variable-length (B, C, F, T) maps.

Zhou, Yang, Qiao & Xiang, "Domain Generalization with MixStyle", ICLR 2021, §3 (eq. 3-5): in
training, with probability ``p`` per batch, each item's instance statistics of a CNN feature map
(the mean ``μ(x)`` and standard deviation ``σ(x)`` of each channel over its spatial cells) are
replaced by a convex mixture with those of another item of the batch,

    γ_mix = λ σ(x) + (1 − λ) σ(x̃),   β_mix = λ μ(x) + (1 − λ) μ(x̃),   λ ~ Beta(α, α),
    MixStyle(x) = γ_mix · (x − μ(x)) / σ(x) + β_mix,

where ``x̃`` is the batch shuffled (the paper's random shuffle; the batch holds many speakers, so
most partners are another voice).  The statistics are detached (the paper's implementation stops
their gradient).  In DSPSpeech-20 a "domain" is a voice and its recording: instance statistics of
the early feature maps carry much of both (Huang & Belongie, "Arbitrary Style Transfer in
Real-time with Adaptive Instance Normalization", ICCV 2017), and mixing them synthesises new ones
while the content - where in time and frequency a pattern lies - stays.  The paper applies it
after the first residual stages (``res1``, ``res2``) with ``p = 0.5`` and ``α = 0.1``: the
defaults here.

``dims`` chooses whose statistics are mixed:

* ``channel`` (the paper's): per channel, over frequency and time;
* ``freq``: per channel *and* frequency row, over time - frequency-wise statistics, which keep a
  voice's spectral shape apart per band.  Our choice, after Freq-MixStyle (Schmid, Masoudian,
  Koutini & Widmer, "CP-JKU Submission to DCASE22", 2022) and the instance frequency-wise
  normalisation of Kim et al. ("Domain Generalization with Relaxed Instance Frequency-wise
  Normalization for Multi-device Acoustic Scene Classification", Interspeech 2022), which take
  each frequency's statistics over the channels and time together (Freq-MixStyle on the input
  spectrogram); here each channel keeps its own.

Choices where the papers are silent (the sequences are padded): the statistics are taken over each
item's valid frames only, the output is zero beyond them (as the input was), and an item with a
single valid frame keeps its own statistics (``σ`` would be undefined).  Identity in ``eval()``
mode and for batches of one item, so indexing and search codes are unaffected.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from speechret.models.components.common import instance_statistics
from speechret.spec_augment import check_prob

__all__ = ["MixStyle"]


class MixStyle(nn.Module):
    """Mix the instance statistics of ``(B, C, F, T)`` maps between items (see the module docstring).

    Args:
        p: probability that a training batch is mixed.
        alpha: the Beta(α, α) parameter of the mixing weight λ (0.1 in the paper: most λ near 0 or 1).
        dims: ``"channel"`` (statistics over F and T) or ``"freq"`` (over T, per frequency row).
        eps: added to the variance before the square root.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, dims: str = "channel", eps: float = 1e-6) -> None:
        super().__init__()
        if float(alpha) <= 0.0:
            raise ValueError(f"MixStyle: alpha must be > 0, got {alpha}")
        if dims not in ("channel", "freq"):
            raise ValueError(f"MixStyle: dims must be 'channel' or 'freq', got {dims!r}")
        self.p, self.alpha, self.dims, self.eps = check_prob(p, "MixStyle"), float(alpha), dims, float(eps)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, dims={self.dims!r}"

    def statistics(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mean, standard deviation and frame mask of ``x`` (B, C, F, T) over each item's
        ``lengths`` valid frames (and its frequency rows with ``dims="channel"``); the
        statistics broadcast against ``x``."""
        return instance_statistics(x, lengths, (2, 3) if self.dims == "channel" else (3,), self.eps)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        b = x.shape[0]
        if not self.training or b < 2 or self.p == 0.0 or torch.rand(()).item() >= self.p:
            return x
        mu, sig, valid = self.statistics(x, lengths)
        mu, sig = mu.detach(), sig.detach()
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b, 1, 1, 1)).to(x.device, x.dtype)
        lam = torch.where((lengths > 1)[:, None, None, None], lam, torch.ones_like(lam))  # one frame: no σ
        perm = torch.randperm(b, device=x.device)
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return ((x - mu) / sig * sig_mix + mu_mix) * valid

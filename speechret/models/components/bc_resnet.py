"""BC-ResNet over variable-length log-mel, with speechret's hash head: a second compact backbone.

Not from the three papers. Built on Kim, Chang, Lee & Sung, "Broadcasted Residual Learning for
Efficient Keyword Spotting", Interspeech 2021 (BC-ResNet), with the sub-spectral normalisation of
Chang et al., "Subspectral Normalization for Neural Audio Data Processing", ICASSP 2021:

* **BC-ResBlock** (§2.2, eq. (3)): ``y = ReLU(x + f2(x) + BC(f1(avgpool_F(f2(x)))))``.  ``f2`` is a
  3×1 frequency-depthwise convolution followed by sub-spectral norm; its output is averaged over
  frequency, ``f1`` (a 1×3 time-depthwise convolution, dilated ``2**stage`` in time as the authors'
  code does, batch norm, swish, a pointwise convolution, channel-wise dropout) runs on that one row,
  and the result is broadcast back over every frequency row.  A **transition block** (the first of
  a stage that changes the width) starts with a pointwise convolution, batch norm and ReLU to the
  new width, takes the stage's frequency stride in ``f2``, and has no identity shortcut.
* **Network** (Table 1): a 5×5 stem with frequency stride 2, four stages of (2, 2, 4, 4) blocks of
  widths ``(1, 1.5, 2, 2.5) · base`` after a stem of ``2 · base`` (BC-ResNet-τ: ``base = 8 τ``),
  frequency stride 2 in the first block of stages 1 and 2, then a 5×5 depthwise convolution without
  frequency padding and a pointwise convolution to ``4 · base`` with batch norm and ReLU.  Time is
  never strided in the paper, so the last map keeps every input frame (``time_stride=2`` halves the
  frames at the stem, a speechret deviation for CPU budgets).
* **Sub-spectral norm**: the frequency rows are split into ``sub_bands`` groups normalised apart
  (a ``C · S``-channel batch norm).  The paper uses 5 groups on 40 mel bands (8 bands a group);
  ``sub_bands=4`` on 64 bands keeps 8 bands a group, and the rows at every stage (32, 16, 8) divide
  by it.  The number is configurable; a value that does not divide every stage's rows is refused.

speechret's adaptations, each configurable: the input is the CMVN'd log-mel image and the output the
pooled hash head of :class:`~speechret.models.components.log_mel_hash.LogMelHashNet` (mean and max
over each item's valid frames, frequency rows kept with ``pool_freq=False``) instead of the global
average pooling and class convolution of the paper; every convolution sees zeros beyond an item's
valid frames, and with ``masked_norm=True`` every batch norm (sub-spectral ones included) takes its
training statistics over the valid frames only, so a lone un-padded item at search time meets the
statistics it was trained with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from speechret.models.components.common import ModelOutput, mask_time
from speechret.models.components.log_mel_hash import HeadOptions, LogMelHashNet
from speechret.models.components.resnet_hash import frame_norm

__all__ = ["BCResBlock", "BCResNetHashNet", "SubSpectralNorm"]


#: stage widths in units of ``base``: the paper's four (Table 1), then the same step of 0.5 for a fifth and sixth
_WIDTHS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5)


class SubSpectralNorm(nn.Module):
    """Batch norm of ``(B, C, F, T)`` maps with separate statistics and affine parameters for each of
    ``sub_bands`` equal groups of frequency rows (Chang et al., ICASSP 2021, eq. (2)): the map is
    viewed as ``(B, C · S, F / S, T)`` and normalised per channel of that view."""

    def __init__(self, channels: int, sub_bands: int, masked: bool = False) -> None:
        super().__init__()
        if int(sub_bands) < 1:
            raise ValueError(f"SubSpectralNorm: sub_bands must be >= 1, got {sub_bands}")
        self.sub_bands = int(sub_bands)
        self.norm = frame_norm(channels * self.sub_bands, masked)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        b, c, f, t = x.shape
        if f % self.sub_bands:
            raise ValueError(f"SubSpectralNorm: {f} frequency rows do not split into {self.sub_bands} sub_bands")
        return self.norm(x.reshape(b, c * self.sub_bands, f // self.sub_bands, t), lengths).reshape(b, c, f, t)


class BCResBlock(nn.Module):
    """One BC-ResBlock (see the module docstring); a transition block when ``c_in != c_out``."""

    def __init__(self, c_in: int, c_out: int, freq_stride: int = 1, dilation: int = 1, sub_bands: int = 4,
                 dropout: float = 0.1, masked_norm: bool = False) -> None:
        super().__init__()
        self.transition = c_in != c_out
        if self.transition:
            self.project = nn.Conv2d(c_in, c_out, 1, bias=False)
            self.project_norm = frame_norm(c_out, masked_norm)
        self.freq_conv = nn.Conv2d(c_out, c_out, (3, 1), stride=(freq_stride, 1), padding=(1, 0), groups=c_out,
                                   bias=False)
        self.freq_norm = SubSpectralNorm(c_out, sub_bands, masked_norm)
        self.time_conv = nn.Conv2d(c_out, c_out, (1, 3), padding=(0, dilation), dilation=(1, dilation),
                                   groups=c_out, bias=False)
        self.time_norm = frame_norm(c_out, masked_norm)
        self.act = nn.SiLU()
        self.point = nn.Conv2d(c_out, c_out, 1, bias=False)
        self.drop = nn.Dropout2d(dropout)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """``x`` (B, C, F, T), zero beyond ``lengths`` → the same layout (F divided by the stride)."""
        if self.transition:
            x = mask_time(nn.functional.relu(self.project_norm(self.project(x), lengths)), lengths, 3)
        f2 = mask_time(self.freq_norm(self.freq_conv(x), lengths), lengths, 3)
        f1 = self.time_norm(self.time_conv(f2.mean(2, keepdim=True)), lengths)
        f1 = self.drop(self.point(mask_time(self.act(f1), lengths, 3)))
        y = f2 + f1 if self.transition else x + f2 + f1
        return mask_time(nn.functional.relu(y), lengths, 3)


class BCResNetHashNet(LogMelHashNet):
    """BC-ResNet hash network (see the module docstring).

    Args:
        n_mels, n_classes, hash_bits: as :class:`~speechret.models.components.resnet_hash.ResNetHashNet`.
        base: ``8 τ`` of BC-ResNet-τ (Table 1: stem ``2 base``, stages ``base, 1.5 base, 2 base,
            2.5 base``, last pointwise ``4 base``); 64 = BC-ResNet-8, the paper's largest.
        blocks: BC-ResBlocks per stage, (2, 2, 4, 4) in the paper (up to 6 stages; a fifth and sixth
            are ``3 base`` and ``3.5 base`` wide).
        freq_strides: frequency stride of each stage's first block, (1, 2, 2, 1) in the paper.
        sub_bands: frequency groups of the sub-spectral norms (5 in the paper, on 40 bands).
        block_dropout: channel-wise dropout at the end of each block's ``f1`` (0.1 in the paper).
        time_stride: time stride of the stem: 1 (the paper: every frame through every block) or 2,
            half the frames and about half the cost (speechret's deviation for 2 CPU cores, as
            ResNetHashNet's ``stem_stride=(1, 2)``).
        masked_norm: batch-norm statistics over valid frames only (see the module docstring).
        style, style_after: a module ``m(h, lengths)`` on the output of the named stages (0-based),
            as :class:`~speechret.models.components.resnet_hash.ResNetHashNet`'s (MixStyle, IBN-b);
            ``None`` (default): none.
        **head: the head options of the shared :class:`LogMelHashNet` head
            (:class:`~speechret.models.components.log_mel_hash.HeadOptions`; ``dropout`` is the head's,
            ``block_dropout`` the blocks'); ``pool_freq`` is ``False`` unless given.
    """

    def __init__(self, n_mels: int = 64, n_classes: int = 20, hash_bits: int = 128, base: int = 64,
                 blocks: Sequence[int] = (2, 2, 4, 4), freq_strides: Sequence[int] = (1, 2, 2, 1),
                 sub_bands: int = 4, block_dropout: float = 0.1, time_stride: int = 1, masked_norm: bool = False,
                 style: nn.Module | None = None, style_after: Sequence[int] = (0,), **head: Any) -> None:
        super().__init__()
        options = HeadOptions.of(type(self).__name__, {"pool_freq": False, **head})
        if len(blocks) != len(freq_strides) or not 1 <= len(blocks) <= len(_WIDTHS) or min(blocks) < 1:
            raise ValueError(f"BCResNetHashNet: blocks {list(blocks)} and freq_strides {list(freq_strides)} need "
                             f"one entry per stage (1 to {len(_WIDTHS)} stages) and at least one block each")
        if int(time_stride) not in (1, 2):
            raise ValueError(f"BCResNetHashNet: time_stride must be 1 or 2, got {time_stride}")
        if any(s not in (1, 2) for s in freq_strides):
            raise ValueError(f"BCResNetHashNet: freq_strides must be 1s and 2s, got {list(freq_strides)}")
        widths = [int(base * w) for w in _WIDTHS[:len(blocks)]]
        rows = -(-int(n_mels) // 2)  # after the stem
        for s in freq_strides:
            rows = -(-rows // s)
            if rows % int(sub_bands):
                raise ValueError(f"BCResNetHashNet: a stage has {rows} frequency rows ({n_mels} bands), which "
                                 f"sub_bands={sub_bands} does not divide")
        if rows < 5:
            raise ValueError(f"BCResNetHashNet: {n_mels} bands leave {rows} rows for the 5x5 head convolution")
        self.time_stride = int(time_stride)
        self.stem = nn.Conv2d(1, 2 * base, 5, stride=(2, self.time_stride), padding=2, bias=False)
        self.stem_norm = frame_norm(2 * base, masked_norm)
        layers: list[nn.Module] = []
        c_prev = 2 * base
        for i, (n, s, c) in enumerate(zip(blocks, freq_strides, widths)):
            for j in range(n):
                layers.append(BCResBlock(c_prev, c, freq_stride=s if j == 0 else 1, dilation=2 ** i,
                                         sub_bands=sub_bands, dropout=block_dropout, masked_norm=masked_norm))
                c_prev = c
        self.stages = nn.ModuleList(layers)
        self._init_style(style, style_after, blocks)
        self.head_conv = nn.Conv2d(c_prev, c_prev, 5, padding=(0, 2), groups=c_prev, bias=False)
        self.head_point = nn.Conv2d(c_prev, 4 * base, 1, bias=False)
        self.head_norm = frame_norm(4 * base, masked_norm)
        self._init_head(n_mels, n_classes, hash_bits, 4 * base, rows - 4, options)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        h, frames = self.image(x, lengths)  # checks the input's columns
        pitch = self.pitch(x, lengths)
        lengths = -(-frames // self.time_stride)  # valid frames after the stem (5 wide, padding 2)
        h = mask_time(nn.functional.relu(self.stem_norm(self.stem(h), lengths)), lengths, 3)
        for k, block in enumerate(self.stages):
            h = self.styled(k, block(h, lengths), lengths)
        h = self.head_norm(self.head_point(self.head_conv(h)), lengths)
        return self.head(mask_time(nn.functional.relu(h), lengths, 3), lengths, pitch)

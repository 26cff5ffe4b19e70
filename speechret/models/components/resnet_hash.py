"""speechret's compact backbone: a residual CNN over variable-length log-mel, with a tanh hash layer.

Not from the three papers. Built on:

* residual blocks (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §3.2,
  the two-layer 3×3 "basic block"; pre-activation order of He et al., "Identity Mappings in Deep
  Residual Networks", ECCV 2016), in the small-footprint keyword-spotting form of Tang & Lin,
  "Deep Residual Learning for Small-Footprint Keyword Spotting", ICASSP 2018 (res8/res15: a
  few 3×3 residual stages on the log-mel image, global average pooling);
* per-utterance mean/variance normalisation of each mel band over the valid frames (CMVN), which
  removes the channel's and, in part, the speaker's spectral tilt;
* every convolution's input is zero beyond the item's valid frames (as a lone item's zero
  padding would be), and pooling over time (mean and max, concatenated) covers the valid frames
  only, so in ``eval()`` mode an item's code does not depend on the batch it is in; with
  ``masked_norm=True`` the batch-norm statistics of training are also taken over the valid frames
  only (:class:`~speechret.models.components.common.MaskedBatchNorm`), so the statistics a
  single un-padded item meets at indexing and search time are those it was trained with (plain
  ``nn.BatchNorm2d`` counts the zero padding of a batch of unequal lengths);
* a tanh hash layer ``u = tanh(W e)`` of ``hash_bits`` units (the relaxation of sign(·) used by
  DPSH and CSQ), whose sign is the code, and a linear classifier on ``u`` for cross-entropy.

The input, the pooling and the hash layers are those of
:class:`~speechret.models.components.log_mel_hash.LogMelHashNet`, shared with the BC-ResNet backbone
(:mod:`speechret.models.components.bc_resnet`).

Input ``(B, T, F)`` (time-major, as :class:`speechret.features.LogMel` with
``fixed_seconds=null``) and ``lengths`` (B,) in frames. Output :class:`ModelOutput`:
``logits`` (B, n_classes), ``hash_features`` = ``u`` (B, hash_bits). With the defaults
(``channels=(16, 32, 64, 128)``, one block per stage, 64 bands, 128 bits) it has about 0.4 M
parameters; 0.6 M with ``pool_freq=False``, 0.9 M with the ``speechret_hash`` model config's
``stem_stride=(1, 2)`` as well (the pooling then keeps twice the frequency rows).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from speechret.models.components.common import MaskedBatchNorm, ModelOutput, mask_time
from speechret.models.components.log_mel_hash import HeadOptions, LogMelHashNet

__all__ = ["ResNetHashNet", "ResidualBlock"]


class FrameBatchNorm(MaskedBatchNorm):
    """:class:`MaskedBatchNorm` for ``(B, C, F, T)`` maps (frames on the last axis): statistics over
    the valid frames only.  Same parameters and buffers as ``nn.BatchNorm2d``."""

    frame_dim = -1


class PaddedBatchNorm(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` with the ``(x, lengths)`` call of :class:`FrameBatchNorm`: its training
    statistics count the padded cells too (``masked_norm=False``)."""

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:  # type: ignore[override]
        return super().forward(x)


def frame_norm(channels: int, masked: bool) -> nn.Module:
    """Batch norm of ``(B, C, F, T)`` maps called as ``norm(x, lengths)``: valid frames only when ``masked``."""
    return FrameBatchNorm(channels) if masked else PaddedBatchNorm(channels)


class ResidualBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3×3-BN-ReLU-conv3×3 plus a (projected) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, masked_norm: bool = False) -> None:
        super().__init__()
        self.bn1 = frame_norm(c_in, masked_norm)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = frame_norm(c_out, masked_norm)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=True)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False))

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` (B, C, F, T) with ``lengths`` valid frames → output and its valid frames."""
        h = mask_time(self.act(self.bn1(x, lengths)), lengths, 3)
        skip = x if isinstance(self.shortcut, nn.Identity) else self.shortcut(h)
        h = self.conv1(h)
        out_len = _strided(lengths, self.conv1.stride[1])
        h = self.conv2(mask_time(self.act(self.bn2(h, out_len)), out_len, 3))
        return mask_time(h + skip, out_len, 3), out_len


def _strided(lengths: Tensor, stride: int) -> Tensor:
    """Valid frames after a 3×3 convolution with padding 1 and this stride: ``ceil(n / stride)``."""
    return -(-lengths // stride)


class ResNetHashNet(LogMelHashNet):
    """Residual CNN hash network (see the module docstring).

    Args:
        n_mels: feature bins F of the input.
        n_classes: content classes of the classifier head.
        hash_bits: width K of the hash layer.
        channels: output channels of the stages; every stage after the first halves time and
            frequency (stride 2), the stem divides them by ``stem_stride`` more.
        blocks: residual blocks per stage.
        masked_norm: batch-norm statistics over valid frames only (see the module docstring);
            ``False`` keeps ``nn.BatchNorm2d`` (the padded cells count).
        stem_stride: stride of the stem convolution: 2 (res15's downsampling of time and
            frequency before the stages, the default) or 1, which keeps the input resolution
            through the first stage at about four times the convolution FLOPs (and, with
            ``pool_freq=False``, twice the frequency rows at the pooling); or a pair
            ``(frequency, time)`` of 1s and 2s (the order of the ``(B, C, F, T)`` maps), e.g.
            ``(2, 1)``: every frame is kept and the bands are halved, at half the first stage's
            cost of stride 1.
        style: a module called as ``m(h, lengths)`` on the output of the stages of ``style_after``
            (0-based; MixStyle's ``res1``, ``res2`` and IBN-b's first stages are ``(0, 1)``):
            :class:`~speechret.models.components.mixstyle.MixStyle` (mixes the instance statistics
            between items in training, the identity in eval) or
            :class:`~speechret.models.components.instance_norm.InstanceNorm` (removes them, in
            training and eval alike); ``None`` (default): none.
        **head: the head options (:class:`~speechret.models.components.log_mel_hash.HeadOptions`:
            ``embed_dim``, ``dropout``, ``cmvn``, ``pool_freq``, ``time_segments``, ``frame_classes``,
            ``straight_through``, ``time_frames``, ``pitch_points``, ``pitch_embed``, ``rnn_hidden``).
            ``pool_freq`` is ``True`` here unless given (res8/res15's global pooling); with ``False`` the
            pooling keeps ``F' = ceil(n_mels / 16)`` frequency rows with the default 4 stages (twice as
            many with a frequency stem stride of 1).
    """

    def __init__(self, n_mels: int = 64, n_classes: int = 20, hash_bits: int = 128,
                 channels: Sequence[int] = (16, 32, 64, 128), blocks: int = 1, masked_norm: bool = False,
                 stem_stride: int | Sequence[int] = 2, style: nn.Module | None = None,
                 style_after: Sequence[int] = (0, 1), **head: Any) -> None:
        super().__init__()
        options = HeadOptions.of(type(self).__name__, {"pool_freq": True, **head})
        if not channels or blocks < 1:
            raise ValueError(f"ResNetHashNet needs at least one stage and block, got {channels}, {blocks}")
        pair = tuple(stem_stride) if isinstance(stem_stride, Sequence) else (stem_stride, stem_stride)
        if len(pair) != 2 or any(s not in (1, 2) for s in pair):
            raise ValueError("ResNetHashNet: stem_stride must be 1, 2 or a (frequency, time) pair of "
                             f"1s and 2s, got {stem_stride}")
        self.freq_stride, self.time_stride = int(pair[0]), int(pair[1])
        self.stem = nn.Conv2d(1, channels[0], 3, stride=(self.freq_stride, self.time_stride), padding=1,
                              bias=False)
        layers: list[nn.Module] = []
        c_prev = channels[0]
        for i, c in enumerate(channels):
            for j in range(blocks):
                layers.append(ResidualBlock(c_prev, c, stride=2 if (i > 0 and j == 0) else 1,
                                            masked_norm=masked_norm))
                c_prev = c
        self.stages = nn.ModuleList(layers)
        self._init_style(style, style_after, [blocks] * len(channels))
        self.post = nn.ModuleList([frame_norm(c_prev, masked_norm), nn.ReLU(inplace=True)])  # keys post.0.*
        f_out = int(n_mels)
        for _ in range(len(channels) - 1 + (self.freq_stride == 2)):  # the stem (stride 2) and stages 2..
            f_out = -(-f_out // 2)                                     # each halve the frequency rows
        self._init_head(n_mels, n_classes, hash_bits, c_prev, f_out, options)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> ModelOutput:
        h, frames = self.image(x, lengths)  # checks the input's columns
        pitch = self.pitch(x, lengths)
        h = self.stem(h)  # (B, C, F', T'): the input is already masked
        n = _strided(frames, self.time_stride)
        for k, block in enumerate(self.stages):
            h, n = block(h, n)
            h = self.styled(k, h, n)
        n = n.clamp(1, h.shape[-1])
        return self.head(self.post[1](self.post[0](h, n)), n, pitch)

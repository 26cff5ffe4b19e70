"""Building blocks shared by the architectures of papers A, B and C.

* :class:`ModelOutput` - the one output convention of every model in :mod:`speechret.models`
  (documented in :mod:`speechret.models.components`).
* :class:`ReLU20` - the clipped ReLU of paper C eq. (6).
* :func:`length_mask`, :func:`reverse_padded`, :func:`mask_time` - helpers that make the
  sequence models of paper C exact under padding (an item's outputs never depend on how much
  padding, or which other items, share its batch).
* :class:`MaskedBatchNorm` - batch normalisation whose training statistics are taken over the
  valid (un-padded) frames only.
* :func:`instance_statistics` - each item's mean and standard deviation of a ``(B, C, F, T)`` map
  over its valid frames (the instance statistics of MixStyle and instance normalisation).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ModelOutput(NamedTuple):
    """What every ``forward(x, lengths=None)`` in :mod:`speechret.models.components` returns.

    Fields
    ------
    logits:
        Classification models (papers A and B): ``(B, n_classes)`` un-normalised class scores
        (softmax / cross-entropy are applied by the loss or at inference, never inside the model).
        Sequence (CTC) models (paper C): ``(B, T, n_outputs)`` per-frame un-normalised scores;
        ``n_outputs = 28`` by default = the 27 pronunciation classes (index 26 = "other") followed
        by the CTC blank at the LAST index 27. Frames ``t >= lengths[b]`` are zero.
    hash_features:
        The real-valued vectors the hash of each paper is built from.
        Classification models: the hash-layer activations before binarisation, ``(B, K)``
        (paper A: the ReLU output of Dense 384; paper B: tanh(omega), eq. (10)).
        Sequence models: the per-frame scores of the 27 pronunciation classes with the blank
        column excluded, ``(B, T, 27)`` (paper C §4.4 step 1, o_t = {y_1..y_27}).
    lengths:
        Sequence models: ``LongTensor[B]`` valid frames per item of ``logits`` / ``hash_features``
        (the input lengths; paper C's front end preserves the frame axis). ``None`` for
        classification models.
    frame_logits, frame_lengths:
        An auxiliary per-frame head of a classification model, in training only (``None``
        otherwise): ``(B, T', n_frame_classes + 1)`` un-normalised scores whose last column is
        the CTC blank, and ``LongTensor[B]`` valid frames per item
        (:class:`~speechret.models.components.resnet_hash.ResNetHashNet`'s ``frame_classes``,
        trained by :class:`~speechret.models.losses.FrameCTCLoss`).
    """

    logits: Tensor
    hash_features: Tensor
    lengths: Tensor | None = None
    frame_logits: Tensor | None = None
    frame_lengths: Tensor | None = None


class ReLU20(nn.Module):
    """Clipped ReLU, paper C eq. (6): ``ReLU20(x) = min(max(x, 0), 20)`` in ``[0, 20]``."""

    def __init__(self, clip: float = 20.0) -> None:
        super().__init__()
        if clip <= 0:
            raise ValueError(f"ReLU20 clip must be positive, got {clip}")
        self.clip = float(clip)

    def forward(self, x: Tensor) -> Tensor:
        # hardtanh(x, 0, clip) == clamp(x, 0, clip); its backward is one fused kernel (clamp's is
        # several element-wise ops); the two differ only in the subgradient AT 0 and clip exactly
        return F.hardtanh(x, 0.0, self.clip)

    def extra_repr(self) -> str:
        return f"clip={self.clip}"


def make_activation(name: str, clip: float = 20.0) -> nn.Module:
    """``"relu20" | "relu" | "tanh" | "elu" | "identity"`` -> module."""
    name = name.lower()
    if name == "relu20":
        return ReLU20(clip)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    if name == "elu":
        return nn.ELU()
    if name in ("identity", "none", "linear"):
        return nn.Identity()
    raise ValueError(f"unknown activation {name!r} (relu20, relu, tanh, elu, identity)")


def check_lengths(lengths: Tensor | None, batch: int, max_len: int, device: torch.device) -> Tensor:
    """Validate ``lengths`` (or build all-full lengths) as a LongTensor on ``device``."""
    if lengths is None:
        return torch.full((batch,), max_len, dtype=torch.long, device=device)
    lengths = torch.as_tensor(lengths, device=device).long()
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if batch and (int(lengths.min()) < 1 or int(lengths.max()) > max_len):
        raise ValueError(
            f"lengths must lie in [1, {max_len}] (the padded length), got "
            f"min={int(lengths.min())}, max={int(lengths.max())}"
        )
    return lengths


def length_mask(lengths: Tensor, max_len: int) -> Tensor:
    """``BoolTensor[B, max_len]``: True at valid frames ``t < lengths[b]``."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def instance_statistics(x: Tensor, lengths: Tensor, axes: tuple[int, ...] = (2, 3),
                        eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """Mean, standard deviation and frame mask of ``x`` (B, C, F, T) per item over ``axes`` (a
    subset of 1, 2, 3 that holds the time axis 3), counting each item's ``lengths`` valid frames
    only.  The statistics keep their axes (they broadcast against ``x``); the mask is
    ``(B, 1, 1, T)`` bool.  ``eps`` is added to the variance before the square root."""
    if 3 not in axes or not set(axes) <= {1, 2, 3}:
        raise ValueError(f"instance_statistics: axes must be a subset of (1, 2, 3) with the time axis 3, got {axes}")
    valid = length_mask(lengths, x.shape[-1])[:, None, None, :]
    m = valid.to(x.dtype)
    cells = math.prod(x.shape[a] for a in axes if a != 3)
    n = (m.sum(3, keepdim=True) * cells).clamp_min(1.0)
    mu = (x * m).sum(axes, keepdim=True) / n
    var = ((x - mu).pow(2) * m).sum(axes, keepdim=True) / n
    return mu, torch.sqrt(var + eps), valid


def mask_time(x: Tensor, lengths: Tensor, time_dim: int = 1) -> Tensor:
    """Zero every frame ``t >= lengths[b]`` of ``x`` (batch on dim 0, time on ``time_dim``)."""
    mask = length_mask(lengths, x.shape[time_dim])
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[time_dim] = x.shape[time_dim]
    return x * mask.view(shape).to(x.dtype)


def reversed_index(lengths: Tensor, t_max: int) -> Tensor:
    """``(B, T)`` frame indices of :func:`reverse_padded`: each item's valid frames reversed,
    padding in place (an involution)."""
    t = torch.arange(t_max, device=lengths.device)[None, :]
    rev = lengths[:, None] - 1 - t
    return torch.where(rev >= 0, rev, t)


def reverse_padded(x: Tensor, lengths: Tensor, time_dim: int = 1) -> Tensor:
    """Reverse the valid part of each sequence, leaving the padding in place.

    ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]`` and ``x[b, t]`` otherwise.
    Applying it twice is the identity. A causal recurrence run over the result starts at each
    item's LAST VALID frame, which is what a backward RNN over a padded batch must do.
    """
    t_max = x.shape[time_dim]
    idx = reversed_index(lengths, t_max)  # (B, T)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[time_dim] = t_max
    idx = idx.view(shape).expand_as(x)
    return torch.gather(x, time_dim, idx)


def _row_layout(x: Tensor, frame_dim: int) -> tuple[tuple[int, ...], int, tuple[int, ...]]:
    """``(spatial axes, elements per row, shape that broadcasts a (B, C, T) tensor over x)`` for
    ``x (B, C, ...)`` with its frames on ``frame_dim`` (>= 2) and every other axis spatial."""
    spatial = tuple(d for d in range(2, x.dim()) if d != frame_dim)
    view = tuple(x.shape[d] if d < 2 or d == frame_dim else 1 for d in range(x.dim()))
    return spatial, math.prod(x.shape[d] for d in spatial), view


def _row_sumsq(d: Tensor, spatial: tuple[int, ...]) -> Tensor:
    """Sum of squares over the ``spatial`` axes. ``vector_norm`` reads a contiguous innermost block
    in one vectorised pass without a squared copy (5x faster than ``square().sum()`` at the 3D
    CNN's sizes) but is ~20x slower than it over any other axis layout (torch 2.x, CPU)."""
    inner = spatial == tuple(range(d.dim() - len(spatial), d.dim()))
    if inner and d.is_contiguous():
        return torch.linalg.vector_norm(d, dim=spatial).square()
    return d.square().sum(dim=spatial)


class _MaskedBatchNormTrain(torch.autograd.Function):
    """Training-mode masked batch normalisation with a hand-written backward (issue 13: the
    element-wise passes over full-size activations were half of a paper-configuration 3D CNN
    step, ``bench/train_profile.py``).

    ``x (B, C, ...)`` float32 with its T frames on axis ``frame_dim`` and the other axes spatial,
    ``mask (B, T)`` float 0/1, ``n`` its valid elements per channel -> ``y, mean, var`` (the last
    two per channel, biased variance, no gradient). Maths: the batch normalisation of Ioffe &
    Szegedy (ICML 2015, Alg. 1 and its gradient) over the valid elements only::

        y    = m * (w * (x - mu) / sqrt(var + eps) + b)
        dx   = m * w / sqrt(var + eps) * (dy - sum(m dy) / n - xhat * sum(m dy xhat) / n)
        dw   = sum(m dy xhat),  db = sum(m dy)

    Each row (item, channel, frame) is centred on its own mean over the spatial axes, ``d = x -
    mean_row``; the rows are pooled over the valid frames with the parallel-variance formula
    (Chan, Golub & LeVeque 1979), and the backward works from ``d`` and the rows' offsets from the
    channel mean, so no sum of squares is ever differenced (float32 stays as exact as the literal
    formula however large the mean; ``tests/test_paper_c_speed.py``). Full-size passes: forward
    one sum, one subtraction, one sum of squares (:func:`_row_sumsq`) and one scale-and-shift;
    backward two reductions and one three-term multiply-add. Autograd through the literal
    formula made about twice as many and kept a second full-size tensor for the backward. Once
    differentiable.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, mask: Tensor, n: Tensor, eps: float,
                frame_dim: int):
        spatial, per, view = _row_layout(x, frame_dim)
        m = mask[:, None, :]  # (B, 1, T)
        if spatial:  # per (item, channel, frame); a Welford var_mean is 15x slower on the CPU
            mean_s = x.sum(dim=spatial) / per
            d = x - mean_s.view(view)
            var_s = _row_sumsq(d, spatial) / per
        else:
            mean_s, d, var_s = x, torch.zeros_like(x), torch.zeros_like(x)
        mean = (mean_s * m).sum(dim=(0, 2)) * per / n
        off = mean_s - mean[None, :, None]  # (B, C, T): each row's mean minus the channel's
        var = ((var_s + off.square()) * m).sum(dim=(0, 2)) * per / n
        invstd = torch.rsqrt(var + eps)
        scale = weight * invstd
        y = d * (scale[None, :, None] * m).view(view)
        y.add_(((bias[None, :, None] + off * scale[None, :, None]) * m).view(view))
        ctx.save_for_backward(d, off, weight, mask, invstd, n)
        ctx.spatial, ctx.view = spatial, view
        ctx.mark_non_differentiable(mean, var)
        return y, mean, var

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor, _dmean: Tensor, _dvar: Tensor):
        d, off, weight, mask, invstd, n = ctx.saved_tensors
        spatial, view = ctx.spatial, ctx.view
        m = mask[:, None, :]
        if spatial:  # (B, C, T) sums of dy and dy * d over the spatial axes
            dy_s = dy.sum(dim=spatial)
            dyd_s = (dy * d).sum(dim=spatial)
        else:
            dy_s, dyd_s = dy, torch.zeros_like(dy)
        s_dy = (dy_s * m).sum(dim=(0, 2))                                        # sum(m dy)
        s_dyxhat = ((dyd_s + off * dy_s) * m).sum(dim=(0, 2)) * invstd          # sum(m dy xhat)
        dx = None
        if ctx.needs_input_grad[0]:
            # dx = a dy + c (d + off) + e on the valid frames, 0 on the padded ones
            k = weight * invstd
            a = k[None, :, None] * m
            c = (-k * invstd * s_dyxhat / n)[None, :, None] * m
            e = (-k * s_dy / n)[None, :, None] * m
            dx = dy * a.view(view)
            dx.addcmul_(d, c.view(view))
            dx.add_((c * off + e).view(view))
        return dx, s_dyxhat, s_dy, None, None, None, None


class MaskedBatchNorm(nn.Module):
    """Batch normalisation over channel dim 1 whose statistics ignore padded frames.

    Input ``(B, C, T, *spatial)`` with the frame axis at dim ``frame_dim`` (2; a subclass may move
    it, e.g. resnet_hash's FrameBatchNorm to the last axis of ``(B, C, F, T)``) and ``lengths[B]``.
    In training the mean / variance of each channel are taken over the valid frames only (so an
    item's padding never shifts the statistics) and the running estimates are updated like
    :class:`torch.nn.BatchNorm3d` (unbiased variance, ``momentum``); in evaluation the running
    estimates are used. Padded frames of the output are zero. Training runs
    :class:`_MaskedBatchNormTrain` (the same function and gradients as the literal formula, in
    fewer passes over the activations; ``tests/test_paper_c_speed.py``); evaluation is one
    ``x * scale + shift`` whose per-(item, channel, frame) ``scale`` and ``shift`` carry the mask.
    """

    frame_dim: int = 2

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out_dtype = x.dtype
        x = x.float()  # statistics in float32, also under autocast
        frame_dim = self.frame_dim % x.dim()
        _, per, view = _row_layout(x, frame_dim)
        mask = length_mask(lengths, x.shape[frame_dim]).to(x.dtype)  # (B, T)
        if self.training:
            n = mask.sum() * per  # valid elements per channel
            with torch.autocast(x.device.type, enabled=False):
                y, mean, var = _MaskedBatchNormTrain.apply(x, self.weight.float(), self.bias.float(),
                                                           mask, n, self.eps, frame_dim)
            with torch.no_grad():
                unbiased = var * n / torch.clamp(n - 1, min=1.0)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(unbiased, self.momentum)
                self.num_batches_tracked += 1
            return y.to(out_dtype)
        # ((x - mean) / sqrt(var + eps) * weight + bias) * mask as ONE multiply-add whose
        # per-(item, channel, frame) scale and shift carry the mask
        scale = self.weight * torch.rsqrt(self.running_var + self.eps)
        shift = self.bias - self.running_mean * scale
        m = mask[:, None, :]
        y = torch.addcmul((shift[None, :, None] * m).view(view), x, (scale[None, :, None] * m).view(view))
        return y.to(out_dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution / pooling along one axis (floor mode)."""
    return (size + 2 * padding - kernel) // stride + 1

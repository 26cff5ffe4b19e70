"""Shared plumbing of every front end: the :class:`FeatureExtractor` interface and batched helpers.

Used by all three papers: padding masks, fixed-length pad/crop (A §4.4 step 1 "fixed to 4 s"),
analysis windows (Hamming of A §3.1 / B eq. (3), Hanning of C §4.1 step 2), per-item bilinear
resize matrices (B §III-A image, C §4.1 step 4 image), HTK delta regression and masked maxima.
"""

from __future__ import annotations

import abc
import math
from typing import Any

import torch
from torch import Tensor, nn

from speechret import torchaudio_api as AF

__all__ = ["FeatureExtractor", "lengths_to_mask", "fix_length", "resize_weights"]

#: the public package: every extractor's ``config["_target_"]`` names its class there (re-exported
#: by ``speechret/features/__init__.py``), so saved configs do not depend on the module layout.
PUBLIC_MODULE = "speechret.features"


# ----------------------------------------------------------------------------------------------
# small shared utilities
# ----------------------------------------------------------------------------------------------


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Boolean mask ``[B, max_len]``, True where ``t < lengths[b]``."""
    lengths = torch.as_tensor(lengths)
    if max_len is None:
        max_len = int(lengths.max().item()) if lengths.numel() else 0
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def _next_pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(1, n))))


def _make_window(name: str, length: int, periodic: bool = True) -> Tensor:
    """Window of ``length`` samples. ``periodic=True`` is scipy's ``get_window(..., fftbins=True)``
    (what librosa uses); ``periodic=False`` is the symmetric window (``np.hanning``/``np.hamming``)."""
    name = name.lower()
    if name in ("hann", "hanning"):
        return torch.hann_window(length, periodic=periodic, dtype=torch.float64).float()
    if name == "hamming":
        # A eq. / B eq. (3): W(n) = 0.54 - 0.46 cos(2 pi n / (N - 1)) (alpha = 0.46)
        return torch.hamming_window(length, periodic=periodic, dtype=torch.float64).float()
    if name == "blackman":
        return torch.blackman_window(length, periodic=periodic, dtype=torch.float64).float()
    if name in ("rect", "rectangular", "boxcar", "ones"):
        return torch.ones(length)
    raise ValueError(f"unknown window {name!r} (hann, hamming, blackman, rect)")


def resize_weights(
    out_size: int, in_sizes: Tensor, in_max: int, *, antialias: bool = True
) -> Tensor:
    """Linear-interpolation matrices ``[B, out_size, in_max]`` resizing, per item, the first
    ``in_sizes[b]`` samples of an axis to ``out_size`` samples (entries beyond ``in_sizes[b]`` get
    weight 0).

    Exactly ``F.interpolate(mode="bilinear", align_corners=False)`` along one axis when upsampling;
    when downsampling with ``antialias=True`` the triangle filter is widened by the scale factor
    (PIL / ``F.interpolate(..., antialias=True)``), which is how an image library renders a large
    spectrogram into fewer pixels.  Bilinear resizing is separable, so a 2-D resize is two matmuls.
    """
    in_sizes = in_sizes.to(torch.float32).clamp(min=1.0)
    device = in_sizes.device
    scale = in_sizes / out_size  # [B]
    center = (torch.arange(out_size, device=device, dtype=torch.float32) + 0.5)[None, :] * scale[:, None]
    support = scale.clamp(min=1.0) if antialias else torch.ones_like(scale)
    pos = torch.arange(in_max, device=device, dtype=torch.float32) + 0.5
    d = (pos[None, None, :] - center[:, :, None]) / support[:, None, None]
    w = (1.0 - d.abs()).clamp(min=0.0)
    w = w * (pos[None, None, :] < in_sizes[:, None, None]).to(w.dtype)
    return w / w.sum(-1, keepdim=True).clamp(min=1e-12)


def fix_length(
    wave: Tensor, lengths: Tensor, n_target: int, *, pad_mode: str = "zero", crop: str = "start"
) -> Tensor:
    """Batched pad/crop of each item's valid samples to exactly ``n_target`` samples.

    * longer items are cropped: ``crop="start"`` keeps the first ``n_target`` samples
      (``librosa.util.fix_length``), ``crop="center"`` keeps the middle ones;
    * shorter items are padded *at the end*: ``pad_mode="zero"`` with zeros (``fix_length``),
      ``pad_mode="repeat"`` by tiling the item's own samples (``np.resize`` / ``np.tile``).
    """
    if pad_mode not in ("zero", "repeat"):
        raise ValueError(f"pad_mode must be 'zero' or 'repeat', not {pad_mode!r}")
    if crop not in ("start", "center"):
        raise ValueError(f"crop must be 'start' or 'center', not {crop!r}")
    B, T = wave.shape
    if T == 0:
        return wave.new_zeros(B, n_target)
    L = lengths.to(torch.long)
    n = torch.arange(n_target, device=wave.device)[None, :]
    start = ((L - n_target).clamp(min=0) // 2) if crop == "center" else torch.zeros_like(L)
    if pad_mode == "repeat":
        idx = start[:, None] + torch.remainder(n, L.clamp(min=1)[:, None])
        valid = (L > 0)[:, None].expand(B, n_target)
    else:
        idx = start[:, None] + n
        valid = idx < L[:, None]
    out = torch.gather(wave, 1, idx.clamp(max=T - 1))
    return out * valid.to(out.dtype)


def _replicate_tail(x: Tensor, lengths: Tensor) -> Tensor:
    """``x[..., t] = x[..., lengths-1]`` for ``t >= lengths`` (x: ``[B, ..., T]``), so that edge
    handling of a filter along time in a padded batch equals ``replicate`` padding per item."""
    T = x.shape[-1]
    idx = torch.minimum(torch.arange(T, device=x.device)[None, :], (lengths.clamp(min=1) - 1)[:, None])
    idx = idx.view(idx.shape[0], *([1] * (x.dim() - 2)), T).expand_as(x)
    return torch.gather(x, -1, idx)


def _deltas(x: Tensor, lengths: Tensor, order: int, width: int) -> list[Tensor]:
    """``[x, Δx, Δ²x, ...]`` along the last (time) axis with the HTK regression formula
    (``torchaudio.functional.compute_deltas``, replicate edges), per item over its valid frames."""
    out = [x]
    cur = x
    for _ in range(order):
        cur = AF.compute_deltas(_replicate_tail(cur, lengths), win_length=width, mode="replicate")
        out.append(cur)
    return out


def _masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max over all but the batch axis of ``x [B, ..., T]`` where ``mask [B, T]`` is True."""
    m = mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[-1])
    return x.masked_fill(~m, float("-inf")).flatten(1).amax(1)


def _ms_to_samples(ms: float, sample_rate: int) -> int:
    return int(round(ms * sample_rate / 1000.0))


# ----------------------------------------------------------------------------------------------
# base class
# ----------------------------------------------------------------------------------------------


class FeatureExtractor(nn.Module, abc.ABC):
    """Common plumbing: input checking, float32 + autocast off, ``config`` for reproducibility."""

    #: number of time steps / channels, set by subclasses
    feature_dim: int = 0
    #: axes of the output batch that hold time and frequency (batch is axis 0): what
    #: :class:`speechret.spec_augment.SpecAugment` masks when its config leaves them out.  Time-major
    #: sequences ``[B, T, F]`` use the defaults; images and image sequences override them.
    time_dim: int = 1
    freq_dim: int = 2
    #: whether index 0 of ``freq_dim`` is the lowest frequency (False: image rows, DC at the bottom)
    freq_ascending: bool = True
    #: trailing entries of ``freq_dim`` that are not spectral bins (a pitch track: LogMelPitch's 2), which
    #: SpecAugment's warp and masks leave alone
    side_dims: int = 0

    def __init__(self, **config: Any) -> None:
        super().__init__()
        #: constructor arguments (plus ``_target_``): enough to rebuild the identical front end,
        #: e.g. to store in a library's metadata.
        self.config: dict[str, Any] = {"_target_": _target_of(type(self)), **config}

    # -- interface -----------------------------------------------------------------------------
    @abc.abstractmethod
    def num_frames(self, n_samples: int) -> int:
        """Number of feature frames (time steps) for a waveform of ``n_samples``."""

    @abc.abstractmethod
    def output_shape(self, n_samples: int) -> tuple[int, ...]:
        """Per-item output shape (without batch) for a waveform of ``n_samples``."""

    @abc.abstractmethod
    def _forward(self, wave: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Features of a zero-padded float32 batch and their per-item lengths."""

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if wave.dim() == 1:
            wave = wave[None]
        if wave.dim() != 2:
            raise ValueError(f"{type(self).__name__} expects a waveform batch [B, T], got {tuple(wave.shape)}")
        B, T = wave.shape
        device = wave.device
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=device)
        else:
            lengths = torch.as_tensor(lengths, device=device).to(torch.long).clamp(0, T)
            if lengths.shape != (B,):
                raise ValueError(f"lengths must have shape ({B},), got {tuple(lengths.shape)}")
        with torch.autocast(device_type=device.type, enabled=False):
            wave = wave.float()
            wave = wave * lengths_to_mask(lengths, T).to(wave.dtype)  # padding never leaks in
            return self._forward(wave, lengths)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items() if k != "_target_")



def _target_of(cls: type) -> str:
    """Hydra ``_target_`` of an extractor class: ``speechret.features.<Class>`` for the package's
    own classes (whatever submodule defines them), the defining module otherwise."""
    if cls.__module__ == PUBLIC_MODULE or cls.__module__.startswith(PUBLIC_MODULE + "."):
        return f"{PUBLIC_MODULE}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"

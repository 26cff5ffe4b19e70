"""The CPO base class and the batch helpers every operation shares.

:class:`CPO` fixes the call interface (``(B, T)`` / ``(T,)`` float input, ``lengths``, a seeded
:class:`torch.Generator`, padded zone kept zero); the helpers validate batches and lengths, draw
random numbers on the generator's device and measure power / SNR over the valid samples.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["CPO", "measure_snr_db"]


def _as_batch(wave: Any) -> tuple[Tensor, bool]:
    x = wave if isinstance(wave, Tensor) else torch.as_tensor(np.asarray(wave))
    if x.ndim == 1:
        return x.unsqueeze(0), True
    if x.ndim != 2:
        raise ValueError(f"CPOs take a (B, T) or (T,) waveform, got shape {tuple(x.shape)}")
    return x, False


def _check_lengths(lengths: Any, x: Tensor) -> Tensor | None:
    if lengths is None:
        return None
    lens = torch.as_tensor(lengths, device=x.device).long().reshape(-1)
    if lens.numel() != x.shape[0]:
        raise ValueError(f"lengths has {lens.numel()} entries for a batch of {x.shape[0]}")
    if bool((lens < 0).any()) or bool((lens > x.shape[-1]).any()):
        raise ValueError(f"lengths must lie in [0, {x.shape[-1]}], got {lens.tolist()}")
    return lens


def _valid_mask(lengths: Tensor | None, n: int, device: torch.device) -> Tensor | None:
    if lengths is None:
        return None
    return (torch.arange(n, device=device)[None, :] < lengths[:, None]).float()


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Standard normal samples drawn on the generator's device, moved to ``device``."""
    return torch.randn(shape, generator=generator, device=_gen_device(generator)).to(device)


def _rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=_gen_device(generator)).to(device)


def _fit_length(y: Tensor, n: int) -> Tensor:
    """Crop or zero-pad the last axis to exactly ``n`` samples."""
    if y.shape[-1] > n:
        return y[..., :n]
    if y.shape[-1] < n:
        return torch.nn.functional.pad(y, (0, n - y.shape[-1]))
    return y


def _mean_power(x: Tensor, mask: Tensor | None) -> Tensor:
    """Mean square per row over the valid samples (float64 accumulation)."""
    x64 = x.double()
    if mask is None:
        return (x64 * x64).mean(-1)
    m = mask.double()
    return (x64 * x64 * m).sum(-1) / m.sum(-1).clamp_min(1.0)


def measure_snr_db(clean: Tensor, noisy: Tensor, lengths: Tensor | None = None) -> Tensor:
    """SNR (dB) of ``noisy`` against ``clean`` per row: ``10 log10(P_clean / P_(noisy-clean))``."""
    c, _ = _as_batch(clean)
    y, _ = _as_batch(noisy)
    mask = _valid_mask(_check_lengths(lengths, c), c.shape[-1], c.device)
    return 10.0 * torch.log10(_mean_power(c, mask) / _mean_power(y - c, mask))


def _fmt(v: float) -> str:
    return f"{float(v):g}"


class CPO(abc.ABC):
    """Base class of content-preserving operations.

    Subclasses implement :meth:`_apply` on a float32 ``(B, T)`` batch; :meth:`__call__` handles
    ``(T,)`` input, dtype, ``lengths`` validation and zeroing of the padded zone.
    ``deterministic`` is ``True`` for operations that draw no random numbers.
    """

    name: str = "cpo"
    deterministic: bool = True

    def __call__(
        self,
        wave: Tensor,
        generator: torch.Generator | None = None,
        *,
        lengths: Tensor | None = None,
    ) -> Tensor:
        x, was_1d = _as_batch(wave)
        in_dtype = x.dtype if x.is_floating_point() else torch.float32
        lens = _check_lengths(lengths, x)
        if x.shape[0] == 0 or x.shape[-1] == 0:
            y = x.to(in_dtype).clone()
        else:
            mask = _valid_mask(lens, x.shape[-1], x.device)
            xf = x.float()
            if mask is not None:
                xf = xf * mask
            y = self._apply(xf, generator, lens, mask)
            if y.shape != xf.shape:
                raise RuntimeError(f"{self.name}: produced shape {tuple(y.shape)} "
                                   f"for input {tuple(xf.shape)}")
            if mask is not None:
                y = y * mask
            y = y.to(in_dtype)
        return y[0] if was_1d else y

    @abc.abstractmethod
    def _apply(self, x: Tensor, generator: torch.Generator | None, lengths: Tensor | None,
               mask: Tensor | None) -> Tensor:
        """The operation on a float (B, T) batch (padded zone already zero)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

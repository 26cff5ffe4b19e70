"""The deterministic signal CPOs: identity, gain, re-quantization and the resampling round trip.

The noise CPOs live in :mod:`speechret.cpo.noise`, the MP3 round trip in :mod:`speechret.cpo.mp3`.
"""

from __future__ import annotations

import math

import torch

from speechret.cpo.base import CPO, _fit_length, _fmt, _valid_mask
from speechret.errors import ConfigError
from speechret.torchaudio_api import resample

__all__ = ["Identity", "Gain", "Requantize", "ResampleRoundTrip"]


class Identity(CPO):
    """No operation (the "original" entry of a robustness table)."""

    name = "identity"

    def _apply(self, x, generator, lengths, mask):
        return x.clone()


class Gain(CPO):
    """Amplitude change by ``db`` decibels: ``y = x * 10**(db/20)``.

    Paper A §5.2 Table 4 and paper B §V-C Table 3 use +3 dB and -3 dB ("amplitude increase or
    decrease of 3 dB"): the amplitude factor is ``10**(±3/20) ≈ 1.413 / 0.708`` and the power
    ratio ``10**(±0.3) ≈ 1.995 / 0.501``.

    The result is **not clipped** by default (float pipeline; clipping a +3 dB loud utterance
    would add a distortion the papers do not describe). ``clip=True`` clamps to [-1, 1], as an
    integer file would.
    """

    def __init__(self, db: float, clip: bool = False) -> None:
        self.db = float(db)
        if not math.isfinite(self.db):
            raise ConfigError(f"Gain: db must be finite, got {db!r}")
        self.clip = bool(clip)
        self.factor = 10.0 ** (self.db / 20.0)
        self.name = f"gain_{self.db:+g}dB"

    def _apply(self, x, generator, lengths, mask):
        y = x * self.factor
        return y.clamp(-1.0, 1.0) if self.clip else y


class Requantize(CPO):
    """Re-quantization 16 -> ``bits`` -> 16 bit (paper A §5.2 Table 4, "R.Q", 16->8->16 bit).

    The float wave is taken to 16-bit integers (``round(x * 32768)``, clamped), the low
    ``16 - bits`` bits are dropped and the result is scaled back: at most ``2**bits`` distinct
    levels on the uniform grid of step ``2**(bits - 16) * 2`` over [-1, 1).

    ``rounding="truncate"`` (default) drops the bits like an integer conversion of int16 samples
    (``x_int16 >> 8 << 8``: floor, a mean offset of half a coarse step);
    ``rounding="nearest"`` rounds to the nearest coarse level (no offset).
    """

    def __init__(self, bits: int = 8, rounding: str = "truncate") -> None:
        if not 1 <= int(bits) <= 16:
            raise ConfigError(f"Requantize: bits must lie in [1, 16], got {bits}")
        if rounding not in ("truncate", "nearest"):
            raise ConfigError(f"Requantize: rounding must be 'truncate' or 'nearest', "
                              f"got {rounding!r}")
        self.bits = int(bits)
        self.rounding = rounding
        self.name = f"requant_{self.bits}bit"

    def _apply(self, x, generator, lengths, mask):
        step = float(2 ** (16 - self.bits))
        xi = torch.clamp(torch.round(x * 32768.0), -32768.0, 32767.0)
        if self.rounding == "truncate":
            q = torch.floor(xi / step)
        else:
            q = torch.clamp(torch.round(xi / step), -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1)
        return q * step / 32768.0


class ResampleRoundTrip(CPO):
    """Resampling round trip ``orig_sr -> mid_sr -> orig_sr`` (paper B §V-C Table 3, "R.Q":
    resampling 16 -> 8 -> 16 kHz).

    Batched windowed-sinc resampling (``torchaudio.functional.resample``); the band above
    ``mid_sr / 2`` is removed. The output is cropped / zero-padded to the input length (the round
    trip gives ``ceil(ceil(T * mid/orig) * orig/mid)`` samples, at most a sample or two more).
    """

    def __init__(self, orig_sr: int = 16000, mid_sr: int = 8000) -> None:
        self.orig_sr = int(orig_sr)
        self.mid_sr = int(mid_sr)
        if self.orig_sr <= 0 or self.mid_sr <= 0:
            raise ConfigError(f"ResampleRoundTrip: sample rates must be positive, got "
                              f"orig_sr={orig_sr}, mid_sr={mid_sr}")
        self.name = f"resample_{_fmt(self.mid_sr / 1000.0)}k"

    def _apply(self, x, generator, lengths, mask):
        down = resample(x, self.orig_sr, self.mid_sr)
        if lengths is not None:
            # an item of length L has ceil(L * mid / orig) samples at the middle rate: cut the
            # filter tail that spills into the padding, so batched == per-item processing
            g = math.gcd(self.orig_sr, self.mid_sr)
            mid_len = -(-lengths * (self.mid_sr // g) // (self.orig_sr // g))
            down = down * _valid_mask(mid_len, down.shape[-1], down.device)
        up = resample(down, self.mid_sr, self.orig_sr)
        return _fit_length(up, x.shape[-1])

"""Additive-noise CPOs at an exact SNR and the synthesis of their noises.

Gaussian / white noise (papers A and C), car noise (leaky-brown, low-passed Gaussian noise) and
cafe noise (babble of other utterances, speech-shaped noise as the fallback): paper C §5.3
Table 3 uses recordings, which this project does not ship, so the car and cafe noises are
synthesised as documented on :class:`CarNoise` and :class:`CafeNoise`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from speechret.cpo.base import (
    CPO,
    _fit_length,
    _fmt,
    _mean_power,
    _rand,
    _randn,
    _valid_mask,
)
from speechret.errors import ConfigError

__all__ = ["GaussianNoise", "WhiteNoise", "CarNoise", "CafeNoise"]


def _mix_at_snr(x: Tensor, noise: Tensor, snr_db: float, mask: Tensor | None) -> Tensor:
    """``x + g * noise`` with ``g`` per row such that the SNR over the valid samples is exact.

    The signal power is each utterance's own mean square over its valid samples; rows that are
    silent (power 0, SNR undefined) or whose noise is all zero are returned unchanged.
    """
    if mask is not None:
        noise = noise * mask
    ps = _mean_power(x, mask)
    pn = _mean_power(noise, mask)
    ok = (ps > 0) & (pn > 0)
    gain = torch.where(ok, torch.sqrt(ps / (pn.clamp_min(1e-300) * 10.0 ** (snr_db / 10.0))),
                       torch.zeros_like(ps))
    return x + (gain.to(x.dtype))[:, None] * noise


def _fft_shaped_noise(
    shape: tuple[int, int],
    magnitude: Any,
    sample_rate: int,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """Gaussian noise with the magnitude response ``magnitude(freqs_hz)`` (FFT-domain shaping).

    White Gaussian noise is transformed with ``rfft``, multiplied by the real, zero-phase gain and
    transformed back: the exact linear filtering of a circular (periodic) noise record, batched.
    """
    b, n = shape
    white = _randn((b, n), generator, device)
    spec = torch.fft.rfft(white, dim=-1)
    freqs = torch.fft.rfftfreq(n, d=1.0 / sample_rate, device=device)
    spec = spec * magnitude(freqs).to(spec.dtype)
    return torch.fft.irfft(spec, n=n, dim=-1).float()


def _speech_shaped_magnitude(freqs: Tensor) -> Tensor:
    """Approximate long-term average speech spectrum: 2nd-order high-pass at 100 Hz, flat to
    500 Hz, then -6 dB/octave ("pink-ish" speech-shaped noise)."""
    f = freqs.double()
    highpass = (f / 100.0) ** 2 / torch.sqrt(1.0 + (f / 100.0) ** 4)
    tilt = 1.0 / torch.sqrt(1.0 + (f / 500.0) ** 2)
    return highpass * tilt


class GaussianNoise(CPO):
    """Additive white Gaussian noise at ``snr_db`` dB SNR.

    Paper A §5.2 Table 4 ("30 dB narrowband Gaussian noise", G.N; the paper gives no band, so the
    noise here is white over the whole band, the usual reading of the GoldWave/MATLAB ``awgn``
    attack in the speech perceptual-hashing literature) and paper C §5.3 Table 3 ("white" noise,
    0-25 dB). The SNR is measured against each utterance's own power (mean square over its valid
    samples) and the noise is rescaled so that the measured SNR equals the target exactly.
    """

    deterministic = False
    _prefix = "gaussian"

    def __init__(self, snr_db: float) -> None:
        self.snr_db = float(snr_db)
        if not math.isfinite(self.snr_db):
            raise ConfigError(f"{type(self).__name__}: snr_db must be finite, got {snr_db!r}")
        self.name = f"{self._prefix}_{_fmt(self.snr_db)}dB"

    def _noise(self, x: Tensor, generator, lengths, mask) -> Tensor:
        return _randn(tuple(x.shape), generator, x.device)

    def _apply(self, x, generator, lengths, mask):
        return _mix_at_snr(x, self._noise(x, generator, lengths, mask), self.snr_db, mask)


class WhiteNoise(GaussianNoise):
    """White Gaussian noise under paper C's name (§5.3 Table 3, "white"); same as GaussianNoise."""

    _prefix = "white"


class CarNoise(GaussianNoise):
    """Car (engine / road) noise at ``snr_db`` dB SNR (paper C §5.3 Table 3, "car").

    The papers use recorded car noise; no recording ships with this project, so car noise is
    synthesised with the spectrum that characterises it, a low-frequency rumble:

    * **brown noise**: integrated (cumulative sum of) white noise, amplitude ``∝ 1/f``. A pure
      integrator diverges at DC, so it is *leaky*: the ``1/f`` slope flattens below
      ``floor_hz`` (20 Hz), and the DC bin is zeroed (de-meaned);
    * followed by a 2nd-order Butterworth-magnitude **low-pass** at ``cutoff_hz`` (250 Hz).

    Both filters are applied as one zero-phase gain in the FFT domain (batched, exact circular
    filtering), then the noise is rescaled to the exact target SNR. More than 95 % of the noise
    power lies below 500 Hz.
    """

    _prefix = "car"

    def __init__(self, snr_db: float, sample_rate: int = 16000, cutoff_hz: float = 250.0,
                 floor_hz: float = 20.0) -> None:
        super().__init__(snr_db)
        self.sample_rate = int(sample_rate)
        self.cutoff_hz = float(cutoff_hz)
        self.floor_hz = float(floor_hz)

    def magnitude(self, freqs: Tensor) -> Tensor:
        """Magnitude response of the shaping filter at ``freqs`` (Hz)."""
        f = freqs.double()
        brown = 1.0 / torch.sqrt(f * f + self.floor_hz**2)
        lowpass = 1.0 / torch.sqrt(1.0 + (f / self.cutoff_hz) ** 4)
        h = brown * lowpass
        h[f == 0] = 0.0
        return h

    def _noise(self, x, generator, lengths, mask):
        return _fft_shaped_noise(tuple(x.shape), self.magnitude, self.sample_rate, generator,
                                 x.device)


class CafeNoise(GaussianNoise):
    """Cafe (babble) noise at ``snr_db`` dB SNR (paper C §5.3 Table 3, "cafe").

    Cafe noise is dominated by babble: several simultaneous talkers. For each utterance,
    ``n_talkers`` other utterances are picked at random, each normalised to unit power over its
    valid samples, circularly shifted by a random offset and looped (tiled) to the target length,
    and summed; the sum is rescaled to the exact target SNR.

    Sources, in order of preference:

    1. ``pool``: waveforms given at construction (e.g. other corpus items; a list of 1-D arrays /
       tensors of any lengths, or a 2-D tensor). Pool entries are drawn with replacement; the pool
       cannot know which entry is the utterance itself, so keep queries out of it.
    2. otherwise the **other items of the batch** (never the item itself; with replacement, so a
       batch of 2 still gives ``n_talkers`` differently shifted copies of the other item).
       :class:`~speechret.cpo.CPOAugment` passes the whole batch as ``context`` so that a
       sub-batch of one selected item still babbles with the rest of the batch.
    3. fallback when there is no other non-silent source (batch of 1 without pool): Gaussian
       **speech-shaped noise** (long-term speech spectrum: high-pass 100 Hz, flat to 500 Hz,
       -6 dB/octave above), documented as a stationary stand-in for babble.
    """

    _prefix = "cafe"

    def __init__(self, snr_db: float, pool: Any = None, n_talkers: int = 5,
                 sample_rate: int = 16000) -> None:
        super().__init__(snr_db)
        if n_talkers < 1:
            raise ConfigError(f"CafeNoise: n_talkers must be >= 1, got {n_talkers}")
        self.n_talkers = int(n_talkers)
        self.sample_rate = int(sample_rate)
        self._context: tuple[Tensor, Tensor | None, Tensor] | None = None
        self._pool: Tensor | None = None
        self._pool_lens: Tensor | None = None
        if pool is not None:
            self.set_pool(pool)

    def set_pool(self, pool: Any) -> None:
        """(Re)define the babble pool: a sequence of 1-D waves or a 2-D tensor (rows)."""
        items = list(pool)  # rows of a 2-D tensor / array, or the elements of a sequence
        waves = []
        for w in items:
            t = torch.as_tensor(np.asarray(w.detach().cpu() if isinstance(w, Tensor) else w),
                                dtype=torch.float32).reshape(-1)
            if t.numel() == 0 or not bool(torch.isfinite(t).all()):
                continue
            power = float((t.double() ** 2).mean())
            if power <= 0.0:
                continue
            waves.append(t / math.sqrt(power))
        if not waves:
            raise ValueError("CafeNoise pool holds no non-silent, finite waveform")
        lens = torch.tensor([w.numel() for w in waves], dtype=torch.long)
        mat = torch.zeros(len(waves), int(lens.max()))
        for i, w in enumerate(waves):
            mat[i, : w.numel()] = w
        self._pool, self._pool_lens = mat, lens

    @property
    def pool_size(self) -> int:
        return 0 if self._pool is None else int(self._pool.shape[0])

    def __call__(self, wave, generator=None, *, lengths=None, context=None):
        """As :meth:`CPO.__call__`; ``context=(batch, lengths_or_None, index)`` names a larger
        batch whose other rows serve as babble sources, ``index[b]`` being row ``b``'s position in
        it (ignored when a pool is set)."""
        self._context = context
        try:
            return super().__call__(wave, generator, lengths=lengths)
        finally:
            self._context = None

    @staticmethod
    def _loop_gather(src: Tensor, src_lens: Tensor, shift: Tensor, n: int) -> Tensor:
        """``src[i, (shift[i] + t) mod src_lens[i]]`` for ``t < n``: shifted, looped copies."""
        t = torch.arange(n, device=src.device)
        pos = (shift[:, None] + t[None, :]) % src_lens.clamp_min(1)[:, None]
        return torch.gather(src, 1, pos)

    def _noise(self, x, generator, lengths, mask):
        b, n = x.shape
        dev = x.device
        babble = torch.zeros_like(x)
        k_talkers = self.n_talkers
        if self._pool is not None:
            pool = self._pool.to(dev)
            pool_lens = self._pool_lens.to(dev)
            for _ in range(k_talkers):
                sel = (_rand((b,), generator, dev) * pool.shape[0]).long().clamp_max(pool.shape[0] - 1)
                lens = pool_lens[sel]
                shift = (_rand((b,), generator, dev) * lens).long()
                babble += self._loop_gather(pool[sel], lens, shift, n)
        else:
            ctx = self._context
            if ctx is not None:
                src_all, src_lens_all, index = ctx
                src_all = src_all.to(dev).float()
                nsrc = src_all.shape[0]
                src_lens_all = (torch.full((nsrc,), src_all.shape[-1], device=dev, dtype=torch.long)
                                if src_lens_all is None else
                                torch.as_tensor(src_lens_all, device=dev).long())
                index = torch.as_tensor(index, device=dev).long()
                if src_all.shape[-1] != n:
                    src_all = _fit_length(src_all, n)
                    src_lens_all = src_lens_all.clamp_max(n)
            else:
                src_all, nsrc, index = x, b, torch.arange(b, device=dev)
                src_lens_all = (lengths if lengths is not None
                                else torch.full((b,), n, device=dev, dtype=torch.long))
            if nsrc >= 2:
                src_mask = _valid_mask(src_lens_all, n, dev)
                src_power = _mean_power(src_all, src_mask)
                norm = torch.where(src_power > 0, 1.0 / torch.sqrt(src_power.clamp_min(1e-300)),
                                   torch.zeros_like(src_power)).float()
                src_norm = src_all * norm[:, None]
                for _ in range(k_talkers):
                    # a random row other than the item itself
                    off = 1 + (_rand((b,), generator, dev) * (nsrc - 1)).long().clamp_max(nsrc - 2)
                    sel = (index + off) % nsrc
                    lens = src_lens_all[sel]
                    shift = (_rand((b,), generator, dev) * lens).long()
                    babble += self._loop_gather(src_norm[sel], lens, shift, n)
        # fallback: rows whose babble is empty get speech-shaped noise
        empty = _mean_power(babble, mask) <= 0
        if bool(empty.any()):
            ssn = _fft_shaped_noise((b, n), _speech_shaped_magnitude, self.sample_rate,
                                    generator, dev)
            babble = torch.where(empty[:, None], ssn, babble)
        return babble

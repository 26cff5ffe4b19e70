"""Content-preserving operations (CPOs): the papers' robustness attacks and training expansion.

A CPO changes the signal but not the spoken content; a robust speech hash must map the processed
speech to (nearly) the same code as the original. The three papers use these sets:

* **Paper A** (000, §5.2, Table 4; processed with GoldWave 6.38 / MATLAB R2017b on 1,000 test
  utterances): MP3 compression at 128 kbps (``mp3_128k``), re-quantization 16->8->16 bit
  (``requant_8bit``), amplitude -3 dB / +3 dB (``gain_-3dB``, ``gain_+3dB``) and 30 dB Gaussian
  noise (``gaussian_30dB``).
* **Paper B** (001, §V-A training-set expansion and §V-C / Table 3 tests): amplitude -3 dB / +3 dB,
  MP3 compression, and resampling 16->8->16 kHz (``resample_8k``; the paper labels it "R.Q",
  "resampling 8-16kbps").
* **Paper C** (002, §5.3, Table 3): cafe, white and car noise at 0, 5, 10, 15, 20, 25 dB SNR
  (``cafe_XdB``, ``white_XdB``, ``car_XdB``), added to the queries of a model never trained on noise.

Interface (``docs/CONTRACT.md``): every CPO is a callable object
``cpo(wave, generator=None, *, lengths=None) -> Tensor`` taking ``(B, T)`` (or ``(T,)``) float
tensors on any device and returning the same shape (length preserved), batched along ``B``;
randomness comes only from the given :class:`torch.Generator` (or torch's global RNG when
``None``), drawn on the generator's device and moved to the wave's device, so a seeded CPU
generator gives the same result on CPU and GPU. ``lengths`` (``(B,)``, valid samples per row of a
zero-padded batch) restricts every measurement (signal power for the SNR, MP3 encoding, ...) to
the valid samples, and the padded zone of the output is kept exactly zero.

:func:`build_cpo` parses names (``gain_+3dB``, ``white_10dB``, ``mp3_128k``, ...), ``CPO.name``
round-trips through it, :data:`PAPER_CPOS` holds the papers' sets, :class:`CPOAugment` applies
CPOs at random as a seeded ``nn.Module`` and :func:`expand_with_cpos` builds the papers'
"one processed copy per CPO" expansion of a batch.
"""

from __future__ import annotations

import abc
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "CPO",
    "Identity",
    "Gain",
    "GaussianNoise",
    "WhiteNoise",
    "CarNoise",
    "CafeNoise",
    "Requantize",
    "ResampleRoundTrip",
    "MP3RoundTrip",
    "PAPER_CPOS",
    "build_cpo",
    "CPOAugment",
    "expand_with_cpos",
    "measure_snr_db",
    "mp3_compression_level",
]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


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


def _fmt(v: float) -> str:
    return f"{float(v):g}"


# --------------------------------------------------------------------------------------------
# base class and the operations
# --------------------------------------------------------------------------------------------


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
        self.clip = bool(clip)
        self.factor = 10.0 ** (self.db / 20.0)
        self.name = f"gain_{self.db:+g}dB"

    def _apply(self, x, generator, lengths, mask):
        y = x * self.factor
        return y.clamp(-1.0, 1.0) if self.clip else y


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


def _speech_shaped_magnitude(freqs: Tensor) -> Tensor:
    """Approximate long-term average speech spectrum: 2nd-order high-pass at 100 Hz, flat to
    500 Hz, then -6 dB/octave ("pink-ish" speech-shaped noise)."""
    f = freqs.double()
    highpass = (f / 100.0) ** 2 / torch.sqrt(1.0 + (f / 100.0) ** 4)
    tilt = 1.0 / torch.sqrt(1.0 + (f / 500.0) ** 2)
    return highpass * tilt


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
       :class:`CPOAugment` passes the whole batch as ``context`` so that a sub-batch of one
       selected item still babbles with the rest of the batch.
    3. fallback when there is no other non-silent source (batch of 1 without pool): Gaussian
       **speech-shaped noise** (long-term speech spectrum: high-pass 100 Hz, flat to 500 Hz,
       -6 dB/octave above), documented as a stationary stand-in for babble.
    """

    _prefix = "cafe"

    def __init__(self, snr_db: float, pool: Any = None, n_talkers: int = 5,
                 sample_rate: int = 16000) -> None:
        super().__init__(snr_db)
        if n_talkers < 1:
            raise ValueError(f"n_talkers must be >= 1, got {n_talkers}")
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
            raise ValueError(f"bits must lie in [1, 16], got {bits}")
        if rounding not in ("truncate", "nearest"):
            raise ValueError(f"rounding must be 'truncate' or 'nearest', got {rounding!r}")
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
            raise ValueError("sample rates must be positive")
        self.name = f"resample_{_fmt(self.mid_sr / 1000.0)}k"

    def _apply(self, x, generator, lengths, mask):
        from speechret.torchaudio_api import resample

        down = resample(x, self.orig_sr, self.mid_sr)
        if lengths is not None:
            # an item of length L has ceil(L * mid / orig) samples at the middle rate: cut the
            # filter tail that spills into the padding, so batched == per-item processing
            g = math.gcd(self.orig_sr, self.mid_sr)
            mid_len = -(-lengths * (self.mid_sr // g) // (self.orig_sr // g))
            down = down * _valid_mask(mid_len, down.shape[-1], down.device)
        up = resample(down, self.mid_sr, self.orig_sr)
        return _fit_length(up, x.shape[-1])


def _mp3_bitrate_range(sample_rate: int) -> tuple[int, int]:
    """libsndfile's CBR bitrate range (kbps) for the MPEG version it picks at this rate."""
    if sample_rate >= 32000:
        return 32, 320  # MPEG-1 Layer III
    if sample_rate >= 16000:
        return 8, 160  # MPEG-2 Layer III
    return 8, 64  # MPEG-2.5 Layer III


def mp3_compression_level(bitrate_kbps: int, sample_rate: int = 16000) -> float:
    """soundfile ``compression_level`` giving a constant ``bitrate_kbps`` at ``sample_rate``.

    For constant / average bitrate, libsndfile (``mpeg_l3_encoder_set_quality``) maps a
    compression level ``c`` in [0, 1] to ``bitrate = int(max - c * (max - min))`` kbps, with
    ``[min, max] = [32, 320]`` (MPEG-1, >= 32 kHz), ``[8, 160]`` (MPEG-2, 16-24 kHz) or ``[8, 64]``
    (MPEG-2.5). We invert it aiming half a kbps above the target so the integer truncation lands
    on it: at 16 kHz, 128 kbps is ``c = (160 - 128.5) / 152 ≈ 0.2072``.
    """
    lo, hi = _mp3_bitrate_range(int(sample_rate))
    if not lo <= bitrate_kbps <= hi:
        raise ValueError(f"MP3 bitrate {bitrate_kbps} kbps impossible at {sample_rate} Hz "
                         f"(libsndfile/LAME range {lo}-{hi} kbps)")
    return float(min(1.0, max(0.0, (hi - bitrate_kbps - 0.5) / (hi - lo))))


class MP3RoundTrip(CPO):
    """MP3 compression round trip at ``bitrate_kbps`` (paper A §5.2 Table 4, "MP3 compression
    (128 kbps)"; paper B §V-C Table 3, "MP3").

    Each utterance is encoded by libsndfile/LAME into an in-memory MP3 (constant bitrate, see
    :func:`mp3_compression_level` for the bitrate mapping; at 16 kHz that is MPEG-2 Layer III,
    whose range is 8-160 kbps) and decoded back. ``encode`` / ``decode`` are exposed so the real
    bitrate can be checked from the encoded size.

    Alignment: LAME delays the signal by 576 samples (encoder) + 529 (MDCT / decoder) = 1105 and
    pads the end. libsndfile writes a LAME/Info tag with these numbers and its mpg123 decoder
    trims them, giving a time-aligned stream of exactly the input length (verified by
    cross-correlation). When the tag is missing (it does not fit in a frame at low bitrates,
    roughly <= 40 kbps at 16 kHz), the decoded stream is longer and we drop the known 1105-sample
    delay ourselves. The output is cropped / zero-padded to the input length.

    The codec runs on the CPU, one utterance at a time (libsndfile encodes a single stream per
    file), so this op loops over the batch; it is the slowest CPO (a few ms per second of audio).
    """

    ENCODER_DELAY = 576 + 529

    def __init__(self, bitrate_kbps: int = 128, sample_rate: int = 16000) -> None:
        import soundfile as sf

        if "MP3" not in sf.available_formats():
            raise RuntimeError(f"libsndfile {sf.__libsndfile_version__} was built without MP3 "
                               f"support; MP3RoundTrip needs libsndfile >= 1.1 with mpg123/LAME")
        self.bitrate_kbps = int(bitrate_kbps)
        self.sample_rate = int(sample_rate)
        self.compression_level = mp3_compression_level(self.bitrate_kbps, self.sample_rate)
        self.name = f"mp3_{self.bitrate_kbps}k"

    def encode(self, wave: np.ndarray) -> bytes:
        """MP3 bytes of a mono float wave (CBR at ``bitrate_kbps``)."""
        import soundfile as sf

        buf = io.BytesIO()
        sf.write(buf, np.asarray(wave, dtype=np.float32), self.sample_rate, format="MP3",
                 subtype="MPEG_LAYER_III", compression_level=self.compression_level,
                 bitrate_mode="CONSTANT")
        return buf.getvalue()

    def decode(self, data: bytes, n: int) -> np.ndarray:
        """Decode MP3 bytes to a float32 wave time-aligned with the ``n``-sample input."""
        import soundfile as sf

        y, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        y = y.mean(axis=1) if y.shape[1] > 1 else y[:, 0]
        if y.shape[0] != n:  # no gapless tag: remove the codec delay ourselves
            y = y[self.ENCODER_DELAY:]
        out = np.zeros(n, dtype=np.float32)
        m = min(n, y.shape[0])
        out[:m] = y[:m]
        return out

    def roundtrip(self, wave: np.ndarray) -> np.ndarray:
        w = np.asarray(wave, dtype=np.float32)
        if w.size == 0:
            return w.copy()
        return self.decode(self.encode(w), w.size)

    def _apply(self, x, generator, lengths, mask):
        xs = x.detach().cpu().numpy()
        out = np.zeros_like(xs)
        n = xs.shape[-1]
        for i in range(xs.shape[0]):
            m = int(lengths[i]) if lengths is not None else n
            if m > 0:
                out[i, :m] = self.roundtrip(xs[i, :m])
        return torch.from_numpy(out).to(x.device)


# --------------------------------------------------------------------------------------------
# names, paper sets
# --------------------------------------------------------------------------------------------

#: The CPO sets of the three papers (see the module docstring for sections / tables).
PAPER_CPOS: dict[str, list[str]] = {
    "A": ["mp3_128k", "requant_8bit", "gain_-3dB", "gain_+3dB", "gaussian_30dB"],
    "B": ["gain_-3dB", "gain_+3dB", "mp3_128k", "resample_8k"],
    "C": [f"{kind}_{snr}dB" for kind in ("cafe", "white", "car") for snr in (0, 5, 10, 15, 20, 25)],
}

_NUM = r"([+-]?\d+(?:\.\d+)?)"
_PATTERNS = [
    (re.compile(r"^(?:identity|none|original)$"), "identity"),
    (re.compile(rf"^gain_{_NUM}db$"), "gain"),
    (re.compile(rf"^(gaussian|white|awgn|car|cafe|babble)_{_NUM}db$"), "noise"),
    (re.compile(r"^requant_(\d+)bits?$"), "requant"),
    (re.compile(r"^resample_(\d+(?:\.\d+)?)k(?:hz)?$"), "resample"),
    (re.compile(r"^mp3_(\d+)k(?:bps)?$"), "mp3"),
]


def build_cpo(name: str | CPO, *, sample_rate: int = 16000, pool: Any = None,
              n_talkers: int = 5) -> CPO:
    """Build a CPO from its name (case-insensitive); a CPO instance is returned as is.

    ``gain_+3dB`` / ``gain_-3dB`` (Gain), ``gaussian_30dB`` / ``awgn_30dB`` (GaussianNoise),
    ``white_10dB`` (WhiteNoise), ``car_5dB`` (CarNoise), ``cafe_0dB`` / ``babble_0dB``
    (CafeNoise with ``pool`` / ``n_talkers``), ``requant_8bit`` (Requantize), ``resample_8k``
    (ResampleRoundTrip from ``sample_rate`` through 8 kHz), ``mp3_128k`` (MP3RoundTrip),
    ``identity`` / ``none``. ``build_cpo(op.name)`` rebuilds an equivalent op.
    """
    if isinstance(name, CPO):
        return name
    key = str(name).strip().lower()
    for pattern, kind in _PATTERNS:
        m = pattern.match(key)
        if not m:
            continue
        if kind == "identity":
            return Identity()
        if kind == "gain":
            return Gain(float(m.group(1)))
        if kind == "noise":
            noise, snr = m.group(1), float(m.group(2))
            if noise in ("gaussian", "awgn"):
                return GaussianNoise(snr)
            if noise == "white":
                return WhiteNoise(snr)
            if noise == "car":
                return CarNoise(snr, sample_rate=sample_rate)
            return CafeNoise(snr, pool=pool, n_talkers=n_talkers, sample_rate=sample_rate)
        if kind == "requant":
            return Requantize(int(m.group(1)))
        if kind == "resample":
            return ResampleRoundTrip(sample_rate, int(round(float(m.group(1)) * 1000)))
        if kind == "mp3":
            return MP3RoundTrip(int(m.group(1)), sample_rate=sample_rate)
    raise ValueError(
        f"unknown CPO name {name!r}; expected e.g. gain_+3dB, gaussian_30dB, white_10dB, "
        f"car_5dB, cafe_0dB, requant_8bit, resample_8k, mp3_128k, identity"
    )


def _apply_op(op: CPO, x: Tensor, generator, lengths: Tensor | None,
              context: tuple[Tensor, Tensor | None, Tensor] | None = None) -> Tensor:
    if isinstance(op, CafeNoise) and context is not None:
        return op(x, generator, lengths=lengths, context=context)
    return op(x, generator, lengths=lengths)


# --------------------------------------------------------------------------------------------
# random augmentation and expansion
# --------------------------------------------------------------------------------------------


class CPOAugment(nn.Module):
    """Seeded random application of CPOs to a batch (training augmentation).

    ``mode="each"`` (default, as in ``docs/CONTRACT.md``): the ops are applied in the listed
    order, op ``i`` independently to each item with probability ``p[i]`` (``p`` a float for all or
    a list per op), so an item may receive several ops.
    ``mode="one"``: with probability ``p`` (a float) an item receives exactly one op, chosen
    uniformly; this reproduces in expectation the papers' training-set expansion (paper B §V-A:
    originals plus one processed copy per CPO, i.e. ``p = K / (K + 1)`` for ``K`` ops).

    The selected items of an op form one sub-batch and the op runs once on it (batched), with the
    whole batch as babble context for cafe noise. Random draws come from the module's own
    :class:`torch.Generator` seeded with ``seed`` (CPU; the selection does not depend on the
    device); :meth:`reset` re-seeds. Each DataLoader worker holding a copy would replay the same
    stream, so run it in the training step (on the device), not in dataset workers.
    ``train_only=True`` makes it the identity in ``eval()`` mode. The padded zone (``lengths``)
    stays zero.
    """

    def __init__(
        self,
        ops: Sequence[str | CPO] = (),
        p: float | Sequence[float] = 0.5,
        seed: int = 0,
        *,
        mode: str = "each",
        sample_rate: int = 16000,
        pool: Any = None,
        train_only: bool = False,
    ) -> None:
        super().__init__()
        self.ops: list[CPO] = [build_cpo(o if isinstance(o, CPO) else str(o),
                                         sample_rate=sample_rate, pool=pool)
                               for o in (ops or [])]
        if mode not in ("each", "one"):
            raise ValueError(f"mode must be 'each' or 'one', got {mode!r}")
        self.mode = mode
        if isinstance(p, (int, float)):
            probs = [float(p)] * len(self.ops)
        else:
            probs = [float(v) for v in p]
            if mode == "one":
                raise ValueError("mode='one' takes a single probability p")
            if len(probs) != len(self.ops):
                raise ValueError(f"{len(probs)} probabilities for {len(self.ops)} ops")
        if any(not 0.0 <= v <= 1.0 for v in probs):
            raise ValueError(f"probabilities must lie in [0, 1], got {probs}")
        self.p = probs if mode == "each" else float(p)  # type: ignore[arg-type]
        self.seed = int(seed)
        self.train_only = bool(train_only)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the generator (``seed`` defaults to the construction seed)."""
        self.seed = self.seed if seed is None else int(seed)
        self.generator.manual_seed(self.seed)

    @property
    def names(self) -> list[str]:
        return [op.name for op in self.ops]

    def extra_repr(self) -> str:
        return f"ops={self.names}, p={self.p}, mode={self.mode!r}, seed={self.seed}"

    def _run(self, op: CPO, out: Tensor, sel: Tensor, lengths: Tensor | None,
             context: tuple[Tensor, Tensor | None, Tensor]) -> Tensor:
        idx = torch.nonzero(sel, as_tuple=False).reshape(-1).to(out.device)
        if idx.numel() == 0:
            return out
        sub_len = lengths[idx] if lengths is not None else None
        ctx = (context[0], context[1], idx)
        res = _apply_op(op, out[idx], self.generator, sub_len, ctx)
        out = out.clone()
        out[idx] = res.to(out.dtype)
        return out

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> Tensor:
        if not self.ops or (self.train_only and not self.training):
            return wave
        x, was_1d = _as_batch(wave)
        lens = _check_lengths(lengths, x)
        b = x.shape[0]
        out = x
        if self.mode == "each":
            for op, prob in zip(self.ops, self.p):
                sel = torch.rand((b,), generator=self.generator) < prob
                out = self._run(op, out, sel, lens, (out, lens, torch.arange(b)))
        else:
            apply = torch.rand((b,), generator=self.generator) < self.p
            choice = torch.randint(len(self.ops), (b,), generator=self.generator)
            context = (x, lens, torch.arange(b))
            for k, op in enumerate(self.ops):
                out = self._run(op, out, apply & (choice == k), lens, context)
        return out[0] if was_1d else out


def expand_with_cpos(
    wave: Tensor,
    ops: Sequence[str | CPO],
    generator: torch.Generator | None = None,
    *,
    lengths: Tensor | None = None,
    include_original: bool = False,
    sample_rate: int = 16000,
) -> tuple[Tensor, Tensor]:
    """One processed copy of every utterance per op: the papers' CPO expansion.

    Paper B §V-A expands its training set with the CPO-processed copies of each utterance, and
    papers A (§5.2 Table 4), B (§V-C Table 3) and C (§5.3 Table 3) build their robustness query
    sets the same way. Returns ``(waves, op_index)``: ``waves`` is ``(K * B, T)`` op-major
    (rows ``k*B .. k*B + B - 1`` hold op ``k`` applied to the whole batch in one call),
    ``op_index[r]`` the op of row ``r``. ``include_original=True`` prepends the untouched batch
    with op index ``-1``. With ``lengths``, the matching lengths are ``lengths.repeat(K)``
    (``K + 1`` with the originals).
    """
    x, _ = _as_batch(wave)
    lens = _check_lengths(lengths, x)
    built = [build_cpo(o, sample_rate=sample_rate) for o in ops]
    b = x.shape[0]
    parts: list[Tensor] = []
    index: list[Tensor] = []
    if include_original:
        parts.append(x)
        index.append(torch.full((b,), -1, dtype=torch.long))
    context = (x, lens, torch.arange(b))
    for k, op in enumerate(built):
        parts.append(_apply_op(op, x, generator, lens, context).to(x.dtype))
        index.append(torch.full((b,), k, dtype=torch.long))
    if not parts:
        return x[:0], torch.zeros(0, dtype=torch.long)
    return torch.cat(parts, 0), torch.cat(index, 0).to(x.device)

"""Training-time augmentation beyond the papers' CPOs, batched on the batch's device.

Waveform operations (each an :class:`WaveOp`: applied to each item independently with its
probability ``p``, parameters drawn per item from a range; ``forward(wave, lengths, generator)``
returns the new ``(wave, lengths)``, padding stays zero):

* :class:`SpeedPerturb` — speed perturbation by resampling (Ko et al., "Audio augmentation for
  speech recognition", Interspeech 2015: factors 0.9 / 1.0 / 1.1, tempo and pitch change
  together).  An item of ``L`` samples becomes ``ceil(L / f)`` samples long.  Factors are drawn
  from a grid (``factors``) so that the items sharing a factor are resampled in one batched
  ``torchaudio.functional.resample`` call with a small rational ratio.
* :class:`RandomGain` — a gain uniform in ``[min_db, max_db]`` dB (power × 10^(dB/10)).
* :class:`TimeShift` — shift the utterance by ``s`` samples, ``|s| ≤ max_shift_s``: ``s > 0``
  prepends ``s`` zeros, ``s < 0`` drops the first ``|s|`` samples.
* :class:`RandomCrop` — items longer than ``max_seconds`` keep a random window of that length.
* :class:`RandomLowpass` — a band-limited channel: every frequency above a random cutoff is
  attenuated by a random depth (a codec or a microphone that stops short of the Nyquist band).
* :class:`AddNoise` — white Gaussian noise at an SNR uniform in ``[min_snr_db, max_snr_db]``
  measured over the item's valid samples.
* :class:`CPOs` — the papers' content-preserving operations (:class:`speechret.cpo.CPOAugment`) as
  one more step, so ``conf/augment`` composes with ``conf/cpo`` names.

:class:`WaveAugment` chains them in the listed order with its own seeded generator.  On features:
:class:`speechret.spec_augment.SpecAugment` — time and frequency masks (Park et al., "SpecAugment",
Interspeech 2019, §2) and a VTLP warp; it lives in its own module and is re-exported here, the
name configs and checkpoints written before the split instantiate.

Across items: :class:`Mixup` — each item of a batch is superposed with another item of the same
batch (Zhang et al., "mixup", ICLR 2018); the loss then weighs both items' targets.
:class:`RepeatBatch` — repeated augmentation: every clip of a training batch appears ``repeats``
times in it, and each copy is augmented on its own (Hoffer et al., CVPR 2020; Berman et al. 2019).

All of them are the identity in ``eval()`` mode, so validation, indexing and search never see
them.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from speechret.errors import ConfigError
from speechret.features.base import lengths_to_mask
from speechret.features.resample_axis import resample_padded
from speechret.spec_augment import SpecAugment, check_prob as _check_prob

__all__ = [
    "speed_change",
    "speed_steps",
    "WaveOp",
    "SpeedPerturb",
    "RandomGain",
    "TimeShift",
    "RandomCrop",
    "RandomLowpass",
    "AddNoise",
    "CPOs",
    "WaveAugment",
    "SpecAugment",
    "Mixup",
    "RepeatBatch",
    "take_rows",
]


def _lengths_of(wave: Tensor, lengths: Tensor | None) -> Tensor:
    if wave.ndim != 2:
        raise ValueError(f"augmentation takes a (B, T) waveform batch, got shape {tuple(wave.shape)}")
    if lengths is None:
        return torch.full((wave.shape[0],), wave.shape[1], dtype=torch.long, device=wave.device)
    lens = torch.as_tensor(lengths, device=wave.device).long().reshape(-1)
    if lens.numel() != wave.shape[0] or bool((lens < 0).any()) or bool((lens > wave.shape[1]).any()):
        raise ValueError(f"lengths must be {wave.shape[0]} values in [0, {wave.shape[1]}], got {lens.tolist()}")
    return lens


class WaveOp(nn.Module, abc.ABC):
    """One waveform augmentation: applied to each item with probability ``p``."""

    def __init__(self, p: float = 1.0) -> None:
        super().__init__()
        self.p = _check_prob(p, type(self).__name__)

    def select(self, b: int, generator: torch.Generator) -> Tensor:
        """Items (CPU bool mask) this op is applied to."""
        return torch.rand((b,), generator=generator) < self.p

    def uniform(self, b: int, lo: float, hi: float, generator: torch.Generator) -> Tensor:
        return lo + (hi - lo) * torch.rand((b,), generator=generator, dtype=torch.float64)

    @abc.abstractmethod
    def forward(self, wave: Tensor, lengths: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``wave`` (B, T) with ``lengths`` (B,) → the augmented batch and its new lengths."""


def speed_steps(factors: Sequence[float], resolution: int, owner: str) -> list[int]:
    """``factors`` (speeds, > 1 faster) as the integer steps ``round(f · resolution)`` that
    :func:`speed_change` plays, in order; each must lie in [0.5, 2] (a ``ValueError`` naming
    ``owner.factors`` otherwise)."""
    factors = [float(f) for f in factors]
    if not factors or any(not 0.5 <= f <= 2.0 for f in factors):
        raise ValueError(f"{owner}.factors must be speeds in [0.5, 2], got {factors}")
    return [int(round(f * resolution)) for f in factors]


def speed_ratio(step: int, resolution: int) -> tuple[int, int]:
    """``(orig, new)``: the reduced resampling ratio that plays a clip ``step / resolution`` times
    faster (``orig == new`` is the clip itself)."""
    g = math.gcd(int(step), int(resolution))
    return int(step) // g, int(resolution) // g


def speed_change(wave: Tensor, lengths: Tensor, step: Tensor, resolution: int = 100) -> tuple[Tensor, Tensor]:
    """Each row of ``wave`` (B, T) played ``step[b] / resolution`` times faster, by resampling its
    ``lengths[b]`` valid samples from ``step / resolution · sr`` to ``sr`` (Ko et al. 2015): the
    new length is ``ceil(L · resolution / step)``; rows of one factor are resampled together.
    Returns the zero-padded batch and its lengths (the waveform step of :class:`SpeedPerturb` and
    of the test-time views, :class:`speechret.frontend.SpeedViews`)."""
    b = wave.shape[0]
    step = step.to(wave.device)
    new_len = -(-lengths * resolution // step)
    parts = []
    for s in step.unique().tolist():
        idx = torch.nonzero(step == s).reshape(-1)
        parts.append((idx, resample_padded(wave[idx], lengths[idx], *speed_ratio(s, resolution))[0]))
    out = wave.new_zeros((b, int(new_len.max().item()) if b else 0))
    for idx, y in parts:
        n = min(out.shape[1], y.shape[1])
        out[idx, :n] = y[:, :n]
    return out * lengths_to_mask(new_len, out.shape[1]), new_len


class SpeedPerturb(WaveOp):
    """Speed perturbation by resampling (Ko et al. 2015); ``factors`` > 1 is faster (shorter).

    Args:
        factors: the grid a factor is drawn from uniformly (default Ko et al.'s 0.9 / 1.0 / 1.1).
            Each factor is used as the rational ``round(f * resolution) / resolution``.
        p: probability that an item is perturbed at all (else factor 1).
        resolution: denominator of the resampling ratio (100: factors to 0.01).
    """

    def __init__(self, factors: Sequence[float] = (0.9, 1.0, 1.1), p: float = 1.0, resolution: int = 100) -> None:
        super().__init__(p)
        self.resolution = int(resolution)
        self.steps = sorted(set(speed_steps(factors, self.resolution, "SpeedPerturb")))

    def forward(self, wave, lengths, generator):
        b = wave.shape[0]
        pick = torch.randint(len(self.steps), (b,), generator=generator)
        step = torch.tensor(self.steps)[pick]
        step[~self.select(b, generator)] = self.resolution
        return speed_change(wave, lengths, step, self.resolution)

    def extra_repr(self) -> str:
        return f"factors={[s / self.resolution for s in self.steps]}, p={self.p}"


class RandomGain(WaveOp):
    """Gain uniform in ``[min_db, max_db]`` dB per item (amplitude × 10^(dB/20))."""

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0, p: float = 1.0) -> None:
        super().__init__(p)
        if min_db > max_db:
            raise ValueError(f"RandomGain: min_db {min_db} > max_db {max_db}")
        self.min_db, self.max_db = float(min_db), float(max_db)

    def forward(self, wave, lengths, generator):
        b = wave.shape[0]
        db = self.uniform(b, self.min_db, self.max_db, generator) * self.select(b, generator)
        return wave * (10.0 ** (db / 20.0)).to(wave.device, wave.dtype)[:, None], lengths


class TimeShift(WaveOp):
    """Shift by ``s`` samples, ``s`` uniform in ``[-max_shift_s, max_shift_s]`` seconds.

    ``s > 0`` prepends ``s`` zeros (the item gets longer); ``s < 0`` drops the first ``|s|``
    samples, keeping at least ``min_keep_s`` seconds.
    """

    def __init__(self, max_shift_s: float = 0.1, p: float = 1.0, sample_rate: int = 16000,
                 min_keep_s: float = 0.1) -> None:
        super().__init__(p)
        self.max_shift = int(round(float(max_shift_s) * sample_rate))
        self.min_keep = int(round(float(min_keep_s) * sample_rate))

    def forward(self, wave, lengths, generator):
        b = wave.shape[0]
        s = torch.randint(-self.max_shift, self.max_shift + 1, (b,), generator=generator)
        s = (s * self.select(b, generator)).to(wave.device)
        s = torch.maximum(s, -(lengths - self.min_keep).clamp_min(0))  # keep min_keep samples
        new_len = lengths + s
        n_out = int(new_len.max().item()) if b else 0
        src = torch.arange(n_out, device=wave.device)[None, :] - s[:, None]
        valid = (src >= 0) & (src < lengths[:, None]) & (src < wave.shape[1])
        out = torch.gather(wave, 1, src.clamp(0, max(wave.shape[1] - 1, 0)))
        return out * valid, new_len


class RandomCrop(WaveOp):
    """Items longer than ``max_seconds`` keep a random window of ``max_seconds``."""

    def __init__(self, max_seconds: float = 2.0, p: float = 1.0, sample_rate: int = 16000) -> None:
        super().__init__(p)
        self.max_len = int(round(float(max_seconds) * sample_rate))
        if self.max_len <= 0:
            raise ValueError(f"RandomCrop.max_seconds must be positive, got {max_seconds}")

    def forward(self, wave, lengths, generator):
        b = wave.shape[0]
        crop = (lengths > self.max_len) & self.select(b, generator).to(wave.device)
        slack = (lengths - self.max_len).clamp_min(0)
        start = (torch.rand((b,), generator=generator).to(wave.device) * (slack + 1)).long().clamp_max(slack)
        start = start * crop
        new_len = torch.where(crop, torch.full_like(lengths, self.max_len), lengths)
        n_out = int(new_len.max().item()) if b else 0
        src = (torch.arange(n_out, device=wave.device)[None, :] + start[:, None]).clamp_max(max(wave.shape[1] - 1, 0))
        return torch.gather(wave, 1, src) * lengths_to_mask(new_len, n_out), new_len


class RandomLowpass(WaveOp):
    """A band-limited channel: above a cutoff ``fc ~ U[min_cutoff_hz, max_cutoff_hz]`` every
    frequency is attenuated by ``a ~ U[min_atten_db, max_atten_db]`` dB, through a raised-cosine
    transition ``transition_hz`` wide that ends at ``fc``.

    Random channel filters as augmentation follow FilterAugment (Nam, Kim & Park, "FilterAugment:
    An Acoustic Environmental Data Augmentation Method", ICASSP 2022), which weights random
    frequency bands of the spectrogram.  A time-invariant gain per band is cancelled by the
    per-utterance CMVN of speechret's models, so what a channel leaves for them to learn is a band
    sunk towards the noise floor: this op cuts the top of the spectrum by 20-60 dB in the
    waveform, and a later :class:`AddNoise` puts a floor under the cut, as a narrow-band
    recording has.  Why the top: some DSPSpeech-20 recordings step down about 20 dB between
    4 and 5 kHz (e.g. speakers 15307130191, 17307130064; the rest roll off gradually), as a
    telephone codec or a cheap microphone would.

    Batched as one zero-padded ``rfft`` / ``irfft`` of the filtered rows, each multiplied by its own
    zero-phase response.  The FFT length is a power of two at least ``16 · sample_rate /
    transition_hz`` samples longer than the batch (512 at the defaults): the response is smooth
    (a raised cosine), so its impulse response has decayed long before that guard and the
    circular convolution equals the linear one to float tolerance.  The valid samples keep their
    length and the padding stays zero.

    Args:
        min_cutoff_hz / max_cutoff_hz: range of the cutoff (end of the transition), Hz.
        min_atten_db / max_atten_db: range of the stop-band attenuation, dB (> 0 cuts).
        transition_hz: width of the raised-cosine transition below the cutoff, Hz.
        p: probability that an item is filtered.
        sample_rate: of the waveforms, Hz; the cutoffs must lie in ``(transition_hz, sr / 2]``.
    """

    def __init__(self, min_cutoff_hz: float = 3500.0, max_cutoff_hz: float = 7500.0, min_atten_db: float = 20.0,
                 max_atten_db: float = 60.0, transition_hz: float = 500.0, p: float = 0.5,
                 sample_rate: int = 16000) -> None:
        super().__init__(p)
        self.min_fc, self.max_fc = float(min_cutoff_hz), float(max_cutoff_hz)
        self.min_att, self.max_att = float(min_atten_db), float(max_atten_db)
        self.transition, self.sample_rate = float(transition_hz), int(sample_rate)
        self.guard = int(math.ceil(16 * self.sample_rate / self.transition))
        if not self.transition < self.min_fc <= self.max_fc <= self.sample_rate / 2:
            raise ConfigError(f"RandomLowpass: need transition_hz < min_cutoff_hz <= max_cutoff_hz <= sample_rate / 2, "
                              f"got {transition_hz} / {min_cutoff_hz} / {max_cutoff_hz} / {sample_rate}")
        if not 0.0 <= self.min_att <= self.max_att:
            raise ConfigError(f"RandomLowpass: need 0 <= min_atten_db <= max_atten_db, got {min_atten_db} / {max_atten_db}")

    def response(self, cutoff_hz: Tensor, atten_db: Tensor, n_fft: int) -> Tensor:
        """Zero-phase amplitude response ``(B, n_fft // 2 + 1)`` of cutoffs / attenuations ``(B,)``,
        on their device and in their dtype (the rfft bins: ``torch.fft.rfftfreq``)."""
        f = torch.fft.rfftfreq(n_fft, d=1.0 / self.sample_rate, device=cutoff_hz.device, dtype=cutoff_hz.dtype)
        start = (cutoff_hz - self.transition)[:, None]
        ramp = ((f[None, :] - start) / self.transition).clamp(0.0, 1.0)  # 0 in the pass band, 1 in the stop band
        floor = 10.0 ** (-atten_db / 20.0)[:, None]
        return 1.0 - (1.0 - floor) * 0.5 * (1.0 - torch.cos(math.pi * ramp))

    def forward(self, wave, lengths, generator):
        b, n = wave.shape
        sel = self.select(b, generator)
        fc = self.uniform(b, self.min_fc, self.max_fc, generator)
        att = self.uniform(b, self.min_att, self.max_att, generator)
        if not bool(sel.any()) or n == 0:
            return wave, lengths
        idx = torch.nonzero(sel).reshape(-1).to(wave.device)
        n_fft = 1 << (n + self.guard - 1).bit_length()
        dtype = torch.promote_types(wave.dtype, torch.float32)  # the FFT in float32 at least (bf16 / fp16 waves)
        h = self.response(fc[sel].to(wave.device, dtype), att[sel].to(wave.device, dtype), n_fft)
        x = (wave[idx] * lengths_to_mask(lengths[idx], n)).to(dtype)
        y = torch.fft.irfft(torch.fft.rfft(x, n=n_fft) * h, n=n_fft)[:, :n].to(wave.dtype)
        out = wave.clone()
        out[idx] = y * lengths_to_mask(lengths[idx], n)
        return out, lengths

    def extra_repr(self) -> str:
        return (f"cutoff_hz=[{self.min_fc:g}, {self.max_fc:g}], atten_db=[{self.min_att:g}, {self.max_att:g}], "
                f"transition_hz={self.transition:g}, p={self.p}")


class AddNoise(WaveOp):
    """White Gaussian noise at an SNR uniform in ``[min_snr_db, max_snr_db]`` (over valid samples)."""

    def __init__(self, min_snr_db: float = 10.0, max_snr_db: float = 40.0, p: float = 0.5) -> None:
        super().__init__(p)
        if min_snr_db > max_snr_db:
            raise ValueError(f"AddNoise: min_snr_db {min_snr_db} > max_snr_db {max_snr_db}")
        self.min_snr, self.max_snr = float(min_snr_db), float(max_snr_db)

    def forward(self, wave, lengths, generator):
        b = wave.shape[0]
        sel = self.select(b, generator).to(wave.device)
        snr = self.uniform(b, self.min_snr, self.max_snr, generator).to(wave.device)
        mask = lengths_to_mask(lengths, wave.shape[1])
        power = (wave.double() ** 2 * mask).sum(1) / lengths.clamp_min(1)
        noise = torch.randn(wave.shape, generator=generator).to(wave.device, torch.float64)
        scale = torch.sqrt(power / 10.0 ** (snr / 10.0)) * sel
        return (wave + (noise * scale[:, None] * mask).to(wave.dtype)), lengths


class CPOs(WaveOp):
    """The papers' CPOs (``speechret.cpo`` names, e.g. ``mp3_128k``, ``requant_8bit``) as a step.

    Wraps :class:`speechret.cpo.CPOAugment` (``mode``, ``p`` as there); lengths are unchanged.
    A step of ``augment.wave`` runs after the front end, on the trimmed clip; ``conf/cpo`` applies
    the same CPOs to the recording before the front end, as the robustness protocols do
    (:meth:`speechret.data.datamodule.SpeechDataModule.prepare_batch`).
    """

    def __init__(self, ops: Sequence[str] = (), p: float | Sequence[float] = 0.5, mode: str = "each",
                 seed: int = 0, sample_rate: int = 16000) -> None:
        super().__init__(1.0)
        from speechret.cpo import CPOAugment

        self.augment = CPOAugment(list(ops), p=p, seed=seed, mode=mode, sample_rate=sample_rate)

    def forward(self, wave, lengths, generator):
        self.augment.generator = generator
        return self.augment(wave, lengths), lengths


class WaveAugment(nn.Module):
    """The waveform augmentation chain of ``conf/augment``: ops in order, one seeded generator.

    ``forward(wave (B, T), lengths (B,)) -> (wave, lengths)``; the identity in ``eval()`` mode.
    The draws come from a CPU generator, so they do not depend on the device.
    """

    def __init__(self, ops: Sequence[WaveOp] = (), seed: int = 0) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.seed = int(seed)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(self.seed)

    def forward(self, wave: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        lens = _lengths_of(wave, lengths)
        if not self.training or not len(self.ops):
            return wave, lens
        for op in self.ops:
            wave, lens = op(wave, lens, self.generator)
        return wave, lens


class Mixup(nn.Module):
    """Mixup of training items (Zhang et al., "mixup: Beyond Empirical Risk Minimization", ICLR 2018,
    §2 eq. 1): ``x̃ = λ x_i + (1 − λ) x_j`` and the loss ``λ ℓ(y_i) + (1 − λ) ℓ(y_j)``.

    Applied to the waveforms, after the waveform chain and before the features, so a mixed item is
    a real superposition of two utterances (between-class learning of sounds, Tokozume et al.,
    "Learning from Between-class Examples for Deep Sound Recognition", ICLR 2018), not an average
    of two log spectra.  Choices (configurable or documented here):

    * one ``λ ~ Beta(alpha, alpha)`` and one permutation ``j = π(i)`` per batch, as in Zhang et al.'s
      §2 implementation, so the loss of any objective mixes exactly by calling it twice;
    * ``λ`` is replaced by ``max(λ, 1 − λ)``: an item's own target keeps the larger weight (the
      loss is symmetric in the two, so this only fixes which item names the pair);
    * a batch is mixed with probability ``p``; a mixed item is as long as the longer of its two
      (the shorter one's padding is silence).

    ``forward(wave (B, T), lengths (B,)) -> (wave, lengths, index, weight)``: ``index``
    (B,) long is ``π`` (the partner of each item), ``weight`` the scalar ``λ``; an unmixed batch
    returns ``None`` for both.  The identity in ``eval()`` mode.  The LightningModule applies the
    weights (``batch["mix_index"]``, ``batch["mix_weight"]``,
    :meth:`speechret.models.hash_modules.ClassificationHashModule.compute_loss`).
    """

    def __init__(self, alpha: float = 0.4, p: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if not float(alpha) > 0.0:
            raise ConfigError(f"Mixup.alpha must be > 0 (the Beta distribution's parameter), got {alpha}")
        self.alpha = float(alpha)
        self.p = _check_prob(p, "Mixup")
        self.rng = np.random.default_rng(int(seed))  # seeded draws, the same on every device

    def forward(self, wave: Tensor, lengths: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        lens = _lengths_of(wave, lengths)
        b = wave.shape[0]
        if not self.training or b < 2 or self.rng.random() >= self.p:
            return wave, lens, None, None
        lam = float(self.rng.beta(self.alpha, self.alpha))
        lam = max(lam, 1.0 - lam)
        perm = torch.from_numpy(self.rng.permutation(b)).to(wave.device)
        partner = wave[perm] * lengths_to_mask(lens[perm], wave.shape[1]).to(wave.dtype)
        mixed = lam * wave + (1.0 - lam) * partner
        return mixed, torch.maximum(lens, lens[perm]), perm, torch.tensor(lam, device=wave.device)


class RepeatBatch(nn.Module):
    """Repeated augmentation: each clip of a training batch is repeated ``repeats`` times, and
    every copy then goes through the rest of the augmentation on its own draws (Hoffer, Ben-Nun,
    Hubara, Giladi, Hoefler & Soudry, "Augment Your Batch: Improving Generalization Through
    Instance Repetition", CVPR 2020; Berman, Jégou, Vedaldi, Kokkinos & Douze, "MultiGrain",
    2019; DeiT's recipe, Touvron et al., ICML 2021).  A batch then holds the loader's ``B``
    distinct clips in ``B · repeats`` rows, each clip's copies side by side
    (``repeat_interleave``), so the loss sees several views of one voice's word at once.

    Choices (configurable or documented here):

    * ``data.batch_size`` stays the rows of a training step, as in DeiT: the DataModule's loader
      draws ``batch_size / repeats`` distinct clips (:meth:`speechret.data.SpeechDataModule.train_dataloader`),
      so a step costs what it did, the step budget shows each clip as often, and an epoch holds
      ``repeats`` times as many steps;
    * it runs first among the training transforms (:meth:`speechret.data.SpeechDataModule.prepare_batch`),
      before the CPOs and the front end, so every later random step draws for each copy apart;
    * every per-row field of the collated batch is repeated: tensors whose first axis is the
      batch's, and lists of that length (ids, speakers); other values pass unchanged.

    ``forward(batch) -> batch``; the identity in ``eval()`` mode and for ``repeats == 1``.
    """

    def __init__(self, repeats: int = 2) -> None:
        super().__init__()
        if int(repeats) != repeats or int(repeats) < 1:
            raise ConfigError(f"RepeatBatch.repeats must be an integer >= 1 (1: no repetition), got {repeats}")
        self.repeats = int(repeats)

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        if not self.training or self.repeats == 1:
            return batch
        return take_rows(batch, torch.arange(len(batch["wave"])).repeat_interleave(self.repeats))

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}"


def take_rows(batch: dict[str, Any], index: Tensor) -> dict[str, Any]:
    """The collated ``batch`` with its rows taken at ``index`` (a 1-D long tensor; rows may repeat):
    every per-row field, a tensor whose first axis is the batch's or a list / tuple of that length
    (returned as a list), is indexed; other values pass unchanged.  Shared by :class:`RepeatBatch`
    and :class:`speechret.concat.ConcatWords`."""
    b = len(batch["wave"])
    rows = index.tolist()
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, Tensor) and value.ndim and value.shape[0] == b:
            out[key] = value[index.to(value.device)]
        elif isinstance(value, (list, tuple)) and len(value) == b:
            out[key] = [value[j] for j in rows]
        else:
            out[key] = value
    return out

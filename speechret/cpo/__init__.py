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

Modules: :mod:`~speechret.cpo.base` (the :class:`CPO` base class, :func:`measure_snr_db`),
:mod:`~speechret.cpo.ops` (identity, gain, re-quantization, resampling),
:mod:`~speechret.cpo.noise` (Gaussian / white / car / cafe noise and their synthesis),
:mod:`~speechret.cpo.mp3` (the MP3 codec round trip), :mod:`~speechret.cpo.names` (the name
language, :data:`PAPER_CPOS`, :func:`build_cpo`) and :mod:`~speechret.cpo.augment`
(:class:`CPOAugment`, :func:`expand_with_cpos`).

:func:`build_cpo` builds a CPO from a name (``gain_+3dB``, ``white_10dB``, ``mp3_128k``, ...;
parsed by :func:`parse_cpo_name` into a Hydra ``_target_`` node) or from such a node, and
``CPO.name`` round-trips through it; :data:`PAPER_CPOS` holds the papers' sets,
:class:`CPOAugment` applies CPOs at random as a seeded ``nn.Module`` and
:func:`expand_with_cpos` builds the papers' "one processed copy per CPO" expansion of a batch.
"""

from speechret.cpo.augment import CPOAugment, expand_with_cpos
from speechret.cpo.base import CPO, measure_snr_db
from speechret.cpo.mp3 import MP3RoundTrip, mp3_compression_level
from speechret.cpo.names import PAPER_CPOS, build_cpo, parse_cpo_name
from speechret.cpo.noise import CafeNoise, CarNoise, GaussianNoise, WhiteNoise
from speechret.cpo.ops import Gain, Identity, Requantize, ResampleRoundTrip

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
    "parse_cpo_name",
    "CPOAugment",
    "expand_with_cpos",
    "measure_snr_db",
    "mp3_compression_level",
]

"""Synthetic speakers and utterances: espeak voice variants + prosody → one normalised utterance.

* **Speakers** are espeak voice variants (``espeak-ng-data/voices/!v``: ``m1``…``m7``,
  ``f1``…``f5``, ``klatt``…) alternating male/female, each with its own base pitch, pitch range,
  speaking rate and recording gain drawn from ``seed``.  More speakers than variants reuse
  variants with other pitch/rate.
* **Repetitions** of the same content by the same speaker differ slightly (seeded jitter of rate
  ±8 %, pitch ±4, range ±6, gain ±1 dB, leading/trailing silence), so repetition-based splits
  (train on repetitions 1-6, test on 7-8, as the DSPSpeech-20 protocol of papers A/B does by
  recordings) are meaningful.
* **Post-processing**: 22,050 Hz → 16 kHz (``scipy.signal.resample_poly(x, 320, 441)``),
  silence trimmed at -40 dB below the peak then padded with 60-200 ms, peak normalised to
  :data:`TARGET_PEAK_DB` plus the speaker's gain, a -65 dBFS Gaussian noise floor (so that
  "silence" is not digital zero, as in real recordings); saved as 16-bit PCM by the corpus.

An utterance depends only on ``(seed, speaker, text, repetition)`` (see
:mod:`~speechret.data.synthetic.espeak` on why espeak-ng itself is deterministic here).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from speechret.audio import resample
from speechret.errors import ConfigError

from .dsp import trim
from .espeak import VOICE, EspeakSynth, SynthesisError, available_variants
from .texts import espeak_text

__all__ = [
    "SAMPLE_RATE",
    "TARGET_PEAK_DB",
    "MALE_VARIANTS",
    "FEMALE_VARIANTS",
    "SpeakerProfile",
    "make_speakers",
    "synthesize",
]

#: output sample rate of the corpus
SAMPLE_RATE = 16000
#: peak level of a normalised utterance before the speaker gain, dBFS
TARGET_PEAK_DB = -3.0

#: voice variants used for speakers (filtered by what the installed espeak-ng-data provides)
MALE_VARIANTS: tuple[str, ...] = ("m1", "m3", "m2", "m4", "m6", "m7", "Andy", "john", "robert", "klatt", "klatt3", "david")
FEMALE_VARIANTS: tuple[str, ...] = ("f2", "f1", "f4", "f3", "f5", "linda", "steph", "Annie")


@dataclass(frozen=True)
class SpeakerProfile:
    """A synthetic speaker: espeak voice variant + prosody + recording gain."""

    name: str
    variant: str
    gender: str
    pitch: int  # espeak pitch 0..99 (50 = voice default)
    range: int  # espeak pitch range 0..99 (50 = default)
    rate: int  # words per minute (espeak default 175)
    gain_db: float  # added to TARGET_PEAK_DB

    @property
    def voice(self) -> str:
        return f"{VOICE}+{self.variant}"


def make_speakers(n_speakers: int, seed: int = 0) -> list[SpeakerProfile]:
    """``n_speakers`` distinct speakers, alternating male/female variants, prosody from ``seed``.

    Speaker ``i`` depends only on ``(seed, i)`` (and the installed variants), so a corpus with
    more speakers extends one with fewer.
    """
    if n_speakers < 1:
        raise ConfigError(f"n_speakers must be >= 1, got {n_speakers}")
    have = set(available_variants())
    male = [v for v in MALE_VARIANTS if v in have] or ["m1"]
    female = [v for v in FEMALE_VARIANTS if v in have] or ["f1"]
    base = np.random.default_rng([seed, 0x5EED])
    male = [male[i] for i in base.permutation(len(male))]
    female = [female[i] for i in base.permutation(len(female))]
    out = []
    for i in range(n_speakers):
        g = "m" if i % 2 == 0 else "f"
        pool = male if g == "m" else female
        variant = pool[(i // 2) % len(pool)]
        cycle = (i // 2) // len(pool)  # >0 when variants are reused: push prosody apart
        rng = np.random.default_rng([seed, 1, i])
        pitch = int(rng.integers(35, 66)) + (cycle % 2) * (-12 if g == "m" else 12)
        out.append(
            SpeakerProfile(
                name=f"syn{i:02d}",
                variant=variant,
                gender=g,
                pitch=int(np.clip(pitch, 5, 95)),
                range=int(rng.integers(30, 81)),
                rate=int(rng.integers(135, 191)) + cycle * 10,
                gain_db=float(np.round(rng.uniform(-6.0, 0.0), 2)),
            )
        )
    return out


def _content_key(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def synthesize(
    pinyin: str,
    speaker: SpeakerProfile,
    repetition: int = 1,
    *,
    seed: int = 0,
    engine: EspeakSynth | None = None,
    sample_rate: int = SAMPLE_RATE,
    noise_floor_db: float | None = -65.0,
    jitter: bool = True,
) -> np.ndarray:
    """One utterance: float32 mono in [-1, 1] at ``sample_rate``, ready to save as 16-bit PCM.

    Deterministic in ``(pinyin, speaker, repetition, seed)``; ``jitter`` varies rate, pitch,
    range, gain and silences per repetition (module docstring).
    """
    text = espeak_text(pinyin)
    rng = np.random.default_rng([seed, 2, _content_key(speaker.name), _content_key(text), int(repetition) & 0xFFFF])
    if jitter:
        rate = int(round(speaker.rate * (1.0 + rng.uniform(-0.08, 0.08))))
        pitch = int(np.clip(speaker.pitch + rng.integers(-4, 5), 0, 99))
        rng_range = int(np.clip(speaker.range + rng.integers(-6, 7), 0, 99))
        gain_db = speaker.gain_db + rng.uniform(-1.0, 1.0)
        lead, trail = rng.uniform(0.06, 0.20), rng.uniform(0.06, 0.20)
    else:
        rate, pitch, rng_range, gain_db, lead, trail = speaker.rate, speaker.pitch, speaker.range, speaker.gain_db, 0.1, 0.1
    espeak_seed = int(rng.integers(1, 2**31 - 1))
    own = engine is None
    eng = engine or EspeakSynth(workers=1)
    try:
        samples, sr = eng.synth(text, speaker.voice, rate=rate, pitch=pitch, range_=rng_range, seed=espeak_seed)
    finally:
        if own:
            eng.close()
    x = samples.astype(np.float32) / 32768.0
    x = resample(x, sr, sample_rate)
    x = trim(x, sample_rate)
    peak = float(np.max(np.abs(x)))
    if peak <= 0:
        raise SynthesisError(f"espeak-ng produced silence for {text!r} ({speaker.voice})")
    x = x * (10 ** ((TARGET_PEAK_DB + gain_db) / 20) / peak)
    x = np.concatenate(
        [np.zeros(int(lead * sample_rate), np.float32), x.astype(np.float32), np.zeros(int(trail * sample_rate), np.float32)]
    )
    if noise_floor_db is not None:
        x = x + rng.standard_normal(len(x)).astype(np.float32) * np.float32(10 ** (noise_floor_db / 20))
    return np.clip(x, -1.0, 32767 / 32768).astype(np.float32)

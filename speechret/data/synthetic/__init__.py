"""Built-in synthetic Mandarin corpus, spoken by espeak-ng.

The three papers evaluate on recorded Mandarin (DSPSpeech-20 isolated words for A and B, THCHS-30
/ self-recorded sentences for C).  So that every experiment, test and demo runs without
downloading anything, this package generates a small corpus with the same structure — speakers ×
content classes × repetitions — from the espeak-ng formant synthesiser shipped by
``espeakng_loader`` (``libespeak-ng.so`` + ``espeak-ng-data``).

* **Text → speech** (:mod:`.espeak`).  Mandarin is fed as tone-numbered pinyin (``"bei3 jing1"``)
  to the :data:`VOICE` ``cmn-latn-pinyin`` ("Chinese (Mandarin, latin as Pinyin)",
  ``espeak-ng-data/lang/sit/cmn-Latn-pinyin``); the plain ``cmn`` voice reads Chinese characters
  through its dictionary and gets many words wrong.  ``ü`` is written ``v`` (``lv4``).
  espeak-ng runs in a helper process that forks per utterance, so synthesis is bit-exact
  whatever else is generated, in which order, or by how many workers.
* **Speakers and repetitions** (:mod:`.voices`): espeak voice variants alternating male/female
  with seeded pitch, range, rate and gain; repetitions jitter them slightly, so
  repetition-based splits (the DSPSpeech-20 protocol of papers A/B) are meaningful.
* **Post-processing** (:mod:`.voices`, :mod:`.dsp`): 22,050 Hz → 16 kHz, silence trimmed and
  re-padded, peak normalised, -65 dBFS noise floor, 16-bit PCM WAV.
* **Content classes** (:mod:`.texts`): the first 12 :data:`DEFAULT_WORDS` are the Mandarin words
  of DSPSpeech-20 (in its ``word_id`` order 0-11), the next 25 common words cover all 26
  pronunciation classes of paper C §3.3; :data:`DEFAULT_SENTENCES` are 23 short sentences that
  contain those words, for CTC training and keyword query-by-example (paper C §4.4).
* **The corpus** (:mod:`.corpus`): :func:`generate_corpus` writes WAVs + ``manifest.csv`` and is
  idempotent; the result depends only on ``(seed, speaker index, text, repetition)``.

CLI (:mod:`.cli`)::

    python -m speechret.data.synthetic OUT_DIR --speakers 6 --repetitions 2 --kind both
"""

from __future__ import annotations

from .cli import main
from .corpus import GENERATOR_VERSION, PARAMS_FILE, corpus_fingerprint, generate_corpus, load_synthetic
from .espeak import VOICE, EspeakSynth, SynthesisError, available_variants
from .texts import DEFAULT_SENTENCES, DEFAULT_WORDS, DSPSPEECH20_WORDS
from .voices import (
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    SAMPLE_RATE,
    TARGET_PEAK_DB,
    SpeakerProfile,
    make_speakers,
    synthesize,
)

__all__ = [
    "VOICE",
    "SAMPLE_RATE",
    "TARGET_PEAK_DB",
    "GENERATOR_VERSION",
    "PARAMS_FILE",
    "DEFAULT_WORDS",
    "DSPSPEECH20_WORDS",
    "DEFAULT_SENTENCES",
    "MALE_VARIANTS",
    "FEMALE_VARIANTS",
    "SynthesisError",
    "SpeakerProfile",
    "EspeakSynth",
    "available_variants",
    "make_speakers",
    "synthesize",
    "generate_corpus",
    "load_synthetic",
    "corpus_fingerprint",
    "main",
]

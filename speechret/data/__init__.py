"""Data layer: manifests, corpus layouts, the paper-C pronunciation labels, the synthetic corpus.

* :mod:`.manifest` — :class:`Item` / :class:`Manifest` (CSV / JSONL, filtering, relabelling);
* :mod:`.corpora` — DSPSpeech-20, THCHS-30, AISHELL-3, pattern folders, generic manifest files,
  :func:`load_corpus` dispatcher;
* :mod:`.pronunciation` — the 27-class initial/vowel model of paper C §3.3 / §4.2;
* :mod:`.synthetic` — espeak-ng Mandarin corpus generator (:func:`generate_corpus`);
* ``datamodule`` — the Lightning DataModule (imported lazily: ``SpeechDataModule`` pulls in
  Lightning).
"""

from __future__ import annotations

from typing import Any

from .corpora import (
    AUDIO_EXTENSIONS,
    CORPUS_KINDS,
    load_aishell3,
    load_corpus,
    load_dspspeech20,
    load_manifest_file,
    load_pattern_folder,
    load_thchs30,
)
from .manifest import FIELDS, Item, Manifest, ManifestError, audio_duration
from .pronunciation import (
    CLASSES,
    NUM_CLASSES,
    OTHER,
    initial_of,
    pinyin_to_labels,
    text_to_labels,
    text_to_pinyin,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "CORPUS_KINDS",
    "CLASSES",
    "FIELDS",
    "NUM_CLASSES",
    "OTHER",
    "Item",
    "Manifest",
    "ManifestError",
    "audio_duration",
    "generate_corpus",
    "initial_of",
    "load_aishell3",
    "load_corpus",
    "load_dspspeech20",
    "load_manifest_file",
    "load_pattern_folder",
    "load_thchs30",
    "pinyin_to_labels",
    "text_to_labels",
    "text_to_pinyin",
]

# SpeechDataModule is not in __all__: ``from speechret.data import *`` must not import Lightning
_LAZY = {
    # lazy so that `python -m speechret.data.synthetic` does not import itself twice
    "generate_corpus": (".synthetic", "generate_corpus"),
    "SpeechDataModule": (".datamodule", "SpeechDataModule"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

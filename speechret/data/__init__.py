"""Data layer: manifests, corpus layouts, the paper-C pronunciation labels, the synthetic corpus.

* :mod:`.manifest` — :class:`Item` / :class:`Manifest` (CSV / JSONL, filtering, relabelling),
  built on :mod:`.item` (the record type) and :mod:`.records` (reading manifest files);
* :mod:`.corpora` — DSPSpeech-20, pattern folders, generic manifest files and the
  :func:`load_corpus` dispatcher (corpus kind → loader); THCHS-30 and AISHELL-3 live in
  :mod:`.mandarin_corpora`, what the loaders share in :mod:`.layout`;
* :mod:`.pronunciation` — the 27-class initial/vowel model of paper C §3.3 / §4.2;
* :mod:`.synthetic` — espeak-ng Mandarin corpus generator (:func:`generate_corpus`; a package:
  ``python -m speechret.data.synthetic`` is its CLI);
* :mod:`.splits`, :mod:`.dataset` — train/val/test splits, the Dataset and the collate function;
* ``datamodule`` — the Lightning DataModule (imported lazily: ``SpeechDataModule`` pulls in
  Lightning).
"""

from __future__ import annotations

import importlib
from typing import Any

from .corpora import (
    AUDIO_EXTENSIONS,
    CORPUS_KINDS,
    corpus_kind,
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
from .synthetic import generate_corpus

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
    "corpus_kind",
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
    "SpeechDataModule": (".datamodule", "SpeechDataModule"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod, __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

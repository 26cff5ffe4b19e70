"""One recording of a corpus: :class:`Item`, its :data:`FIELDS`, and :class:`ManifestError`.

A manifest (:class:`~speechret.data.manifest.Manifest`) is a list of Items; this module holds
what every other part of the data layer (manifest files, corpus layouts, the synthetic corpus)
shares, so that none of them imports another just for the record type.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from speechret.errors import SpeechretError

__all__ = ["FIELDS", "Item", "ManifestError"]


class ManifestError(SpeechretError, ValueError):
    """A manifest (or corpus layout) is malformed; the message names the file and row."""


@dataclass(slots=True)
class Item:
    """One recording.

    Attributes:
        id: unique identifier within the manifest (by default the file stem).
        path: absolute path of the audio file (relative paths are resolved on load).
        speaker: speaker identifier ("" when unknown).
        label: content class, ``0..K-1`` (``-1`` when unknown).  Recordings of the same word /
            sentence share a label: this is the retrieval ground truth (a hit is relevant iff it
            has the query's label) and the softmax target of papers A and B.
        text: transcript (Chinese characters for Mandarin, words otherwise).
        pinyin: tone-numbered pinyin, syllables separated by single spaces (``"bei3 jing1"``);
            "" for non-Mandarin items.  Source of the paper-C CTC targets.
        language: ISO 639-1 code (``"zh"``, ``"en"``, ...) or "".
        duration: seconds (``0.0`` when unknown).
        split: ``"train"``/``"val"``/``"test"``/... or "" when unassigned.
        repetition: index of the repetition of the same content by the same speaker (``-1``
            when unknown); DSPSpeech-20 numbers them 1..8.
    """

    id: str
    path: str
    speaker: str = ""
    label: int = -1
    text: str = ""
    pinyin: str = ""
    language: str = ""
    duration: float = 0.0
    split: str = ""
    repetition: int = -1

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in FIELDS}

    def replace(self, **changes: Any) -> Item:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Item))

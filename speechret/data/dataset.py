"""Items → samples → batches: :class:`SpeechDataset` (waveform + labels, optional CPO copies) and
the variable-length :func:`collate_speech` (also used by :class:`speechret.hashing.hasher.Hasher`).

Batch dict keys: ``wave`` (B, T) float32, ``wave_lengths`` (B,), ``label`` (B,) content class,
``targets`` (B, L) pronunciation labels padded with -1 and ``target_lengths`` (B,) for CTC,
``index`` (B,) dataset index, ``item_index`` (B,) index into the DataModule's items, ``cpo`` (B,)
index of the CPO copy (-1 for the original), ``ids`` list of item ids; ``features`` /
``feature_lengths`` when the features were cached.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from speechret.audio import load_audio

from .item import Item
from .pronunciation import pinyin_to_labels, text_to_labels

__all__ = ["SpeechDataset", "CachedFeatureDataset", "collate_speech", "pad_stack", "pronunciation_targets"]


def pronunciation_targets(item: Item) -> list[int]:
    """CTC targets of paper C §4.2: one pronunciation class per syllable (pinyin, else text)."""
    if item.pinyin:
        return pinyin_to_labels(item.pinyin)
    if item.text and item.language.startswith("zh"):
        return text_to_labels(item.text)
    return []


class SpeechDataset(Dataset):
    """Items (optionally × CPO copies) → dict of a float32 waveform and its labels.

    ``copies`` is the papers' training-set expansion (paper A §5, paper B §V-A: "CPO'd copies of
    every utterance"): dataset index ``i`` maps to item ``i // (n_copies)`` and copy
    ``i % n_copies`` where copy 0 is the original when ``include_original``.  A copy is made
    deterministically from ``(seed, item, copy)`` so every epoch (and the feature cache) sees the
    same copy.
    """

    def __init__(
        self,
        items: Sequence[Item],
        sample_rate: int,
        *,
        copies: Sequence[Callable] = (),
        include_original: bool = True,
        seed: int = 0,
        max_samples: int | None = None,
        waveforms: Mapping[int, np.ndarray] | None = None,
        item_indices: Sequence[int] | None = None,
    ) -> None:
        self.items = list(items)
        self.sample_rate = sample_rate
        self.copies = list(copies)
        self.include_original = include_original
        self.seed = seed
        self.max_samples = max_samples
        self.waveforms = waveforms
        self.item_indices = list(item_indices) if item_indices is not None else list(range(len(self.items)))
        self.variants = ([-1] if include_original or not self.copies else []) + list(range(len(self.copies)))
        self.targets = [pronunciation_targets(it) for it in self.items]

    def __len__(self) -> int:
        return len(self.items) * len(self.variants)

    def load(self, k: int) -> np.ndarray:
        it = self.items[k]
        gi = self.item_indices[k]
        wave = self.waveforms.get(gi) if self.waveforms is not None else None
        if wave is None:
            wave = load_audio(it.path, self.sample_rate)
        if self.max_samples is not None and wave.shape[0] > self.max_samples:
            wave = wave[: self.max_samples]
        return wave

    def __getitem__(self, index: int) -> dict[str, Any]:
        k, v = divmod(index, len(self.variants))
        cpo = self.variants[v]
        wave = self.load(k)
        if cpo >= 0:
            g = torch.Generator().manual_seed(hash((self.seed, self.item_indices[k], cpo)) & 0x7FFFFFFF)
            wave = self.copies[cpo](torch.from_numpy(wave)[None], generator=g)[0].numpy()
        it = self.items[k]
        return {
            "wave": np.ascontiguousarray(wave, dtype=np.float32),
            "label": it.label,
            "targets": self.targets[k],
            "index": index,
            "item_index": self.item_indices[k],
            "cpo": cpo,
            "id": it.id,
            "speaker": it.speaker,
        }


def collate_speech(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Variable-length collate: zero-pad waveforms to the longest, keep lengths; pad CTC targets
    with -1 (``target_lengths`` says how many are real)."""
    lengths = torch.tensor([b["wave"].shape[0] for b in batch], dtype=torch.long)
    wave = torch.zeros(len(batch), int(lengths.max()))
    for i, b in enumerate(batch):
        wave[i, : lengths[i]] = torch.from_numpy(b["wave"])
    tl = torch.tensor([len(b["targets"]) for b in batch], dtype=torch.long)
    targets = torch.full((len(batch), max(1, int(tl.max()))), -1, dtype=torch.long)
    for i, b in enumerate(batch):
        if b["targets"]:
            targets[i, : tl[i]] = torch.tensor(b["targets"], dtype=torch.long)
    out = {
        "wave": wave,
        "wave_lengths": lengths,
        "label": torch.tensor([b["label"] for b in batch], dtype=torch.long),
        "targets": targets,
        "target_lengths": tl,
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.long),
        "item_index": torch.tensor([b["item_index"] for b in batch], dtype=torch.long),
        "cpo": torch.tensor([b["cpo"] for b in batch], dtype=torch.long),
        "ids": [b["id"] for b in batch],
        "speakers": [b.get("speaker") for b in batch],
    }
    if "features" in batch[0]:
        out["features"], out["feature_lengths"] = pad_stack([b["features"] for b in batch])
    return out


def pad_stack(feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack cached per-item features, zero-padding the first (time) axis."""
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    out = feats[0].new_zeros((len(feats), int(lengths.max()), *feats[0].shape[1:]))
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lengths


class CachedFeatureDataset(Dataset):
    """Wraps a :class:`SpeechDataset` and adds precomputed per-item features."""

    def __init__(self, base: SpeechDataset, features: Sequence[torch.Tensor]) -> None:
        self.base, self.features = base, features

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        d = self.base[index]
        d["features"] = self.features[index]
        return d

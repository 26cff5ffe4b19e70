"""LightningDataModule: any manifest → batches of waveforms, features and labels.

Data path (DESIGN.md "The flow of data")::

    manifest ─► select labels / languages / speakers ─► split (speaker-disjoint, repetition, ...)
            ─► load + validate audio (worker processes) ─► [CPO copies, deterministic]
            ─► variable-length collate (B, T) + lengths
            ─► on the device: [CPO augmentation, train only] ─► [front end]
            ─► [multi-word rows, waveform augmentation, train only] ─► features ─► batch dict

CPO augmentation and feature extraction run in :meth:`SpeechDataModule.on_after_batch_transfer`,
i.e. batched on the accelerator the Trainer uses (GPU when ``trainer=gpu``), never as a per-sample
Python loop on the CPU.  The feature module is the same object the :class:`~speechret.hashing`
front half uses at indexing and search time, built from the same ``features`` config, so training,
indexing and search cannot disagree about features.

Batch dict keys:

``wave`` (B, T) float32, ``wave_lengths`` (B,), ``features`` (model input), ``feature_lengths``
(B,), ``label`` (B,) content class (contiguous 0..K-1 after selection, -1 unknown),
``targets`` (B, L) pronunciation labels padded with -1 and ``target_lengths`` (B,) for CTC,
``index`` (B,) dataset index, ``item_index`` (B,) index into :attr:`SpeechDataModule.items`,
``cpo`` (B,) index of the CPO copy (-1 for the original), ``ids`` list of item ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from speechret.audio import load_audio
from speechret.cpo import build_cpo
from speechret.errors import ConfigError
from speechret.fileio import atomic_path

from .corpora import corpus_kind, corpus_manifest, prepare_corpus
from .duplicates import check_policy, file_digest, resolve_duplicates
from .extra_train import extra_training_items, parse_train_extra
from .dataset import CachedFeatureDataset, SpeechDataset, collate_speech, pronunciation_targets
from .item import Item
from .manifest import Manifest
from .splits import SPLITS, split_by_repetition, split_by_speaker, split_from_manifest, split_random

log = logging.getLogger(__name__)

_SPLIT_KINDS = ("speaker", "repetition", "random", "manifest", "none")
_TARGETS = ("class", "ctc", "both")


# --------------------------------------------------------------------------------------------
# DataModule
# --------------------------------------------------------------------------------------------
class SpeechDataModule(L.LightningDataModule):
    """Any corpus or manifest → train/val/test loaders of waveforms, features and labels.

    Args:
        corpus: corpus kind for :func:`speechret.data.corpora.load_corpus` (``synthetic``,
            ``dspspeech20``, ``thchs30``, ``aishell3``, ``folder``, ``manifest``).
        root: corpus root (for ``manifest``: the CSV/JSONL file).
        corpus_kwargs: extra arguments of the loader (for ``synthetic``: the generator's
            arguments; the corpus is generated in :meth:`prepare_data` when missing).
        features: feature extractor (``nn.Module`` from ``conf/features``), applied on the device.
        augment: train-time CPO augmentation (``speechret.cpo.CPOAugment``, ``conf/cpo``), applied
            on the device to training batches only, to the recording before the front end.
        frontend: front end applied to every batch of every split after the CPOs and before the
            other augmentation and the features (``conf/frontend``, e.g.
            :class:`speechret.frontend.SilenceTrim`); it returns ``(wave, lengths)``.
            :class:`speechret.hashing.hasher.Hasher` applies the same one.
        wave_augment: train-time waveform augmentation after the front end
            (:class:`speechret.augment.WaveAugment`, ``conf/augment`` ``wave``); returns
            ``(wave, lengths)`` (speed perturbation changes lengths).
        feature_augment: train-time augmentation of the features
            (:class:`speechret.spec_augment.SpecAugment`, ``conf/augment`` ``spec``).
        concat_augment: train-time re-packing of a batch of words into multi-word rows with their
            CTC targets joined, after the front end and before ``wave_augment``
            (:class:`speechret.concat.ConcatWords`, ``conf/augment`` ``concat``; CTC models only).
        repeat_augment: train-time repetition of every clip of a batch, first of the training
            transforms, so each copy is augmented on its own draws
            (:class:`speechret.augment.RepeatBatch`, ``conf/augment`` ``repeat``); a training
            batch keeps ``batch_size`` rows, drawn as ``batch_size / repeats`` distinct clips.
        mix_augment: train-time mixing of items after ``wave_augment``
            (:class:`speechret.augment.Mixup`, ``conf/augment`` ``mix``); it adds
            ``batch["mix_index"]`` and ``batch["mix_weight"]``, which the model's loss weighs.
        copies: CPO names or objects; the training set becomes the originals plus one CPO'd copy
            of every utterance per op (papers A and B's 3,060-utterance training sets).
        labels / languages / speakers: selection (``data.labels=[0,1,2]``, ``data.languages=[zh]``).
        relabel: map the selected labels to contiguous 0..K-1 (mapping in :attr:`label_map`).
        split: ``speaker`` (speaker-disjoint, seeded), ``repetition``, ``random`` (stratified),
            ``manifest`` (the items' own split field) or ``none`` (everything is test: evaluation).
        target: ``class`` (content label), ``ctc`` (pronunciation sequence; items without one are
            dropped with a warning) or ``both``.
        duplicates: what to do with items whose file holds the same bytes as an earlier item's
            (one recording listed twice; :mod:`speechret.data.duplicates`): ``drop`` (default) keeps
            the first of each group and warns, ``error`` stops naming them, ``keep`` uses them all.
            Checked in :meth:`setup` on the selected items, before the split, so copies never fall
            on both sides of it.
        max_seconds: crop longer waveforms (memory bound for long sentences); ``None`` keeps all.
        cache_waveforms: decode every selected file once in :meth:`setup` (shared by forked workers).
        train_extra: other corpora whose items of the selected classes (matched by ``text``) join
            the training split only, their speakers prefixed (:mod:`speechret.data.extra_train`,
            ``conf/data/train_extra/``); validation and test stay this corpus's own.
        cache_features: precompute features of every batch that is not augmented on the fly
            (val/test, and train when no augmentation is set — CPO copies are deterministic and cached
            too); stored in memory, and in ``cache_dir`` when given, keyed by the manifest and the
            feature config.
    """

    def __init__(
        self,
        corpus: str = "synthetic",
        root: str | Path = "data/synth_cmn",
        corpus_kwargs: Mapping[str, Any] | None = None,
        features: nn.Module | None = None,
        augment: nn.Module | None = None,
        frontend: nn.Module | None = None,
        wave_augment: nn.Module | None = None,
        feature_augment: nn.Module | None = None,
        mix_augment: nn.Module | None = None,
        concat_augment: nn.Module | None = None,
        repeat_augment: nn.Module | None = None,
        copies: Sequence[str | Callable] | None = None,
        include_original: bool = True,
        sample_rate: int = 16000,
        labels: Sequence[int] | None = None,
        languages: Sequence[str] | None = None,
        speakers: Sequence[str] | None = None,
        relabel: bool = True,
        split: str = "speaker",
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        val_speakers: Sequence[str] | None = None,
        test_speakers: Sequence[str] | None = None,
        val_repetitions: Sequence[int] = (7,),
        test_repetitions: Sequence[int] = (8,),
        target: str = "class",
        duplicates: str = "drop",
        max_seconds: float | None = None,
        batch_size: int = 16,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_waveforms: bool = False,
        cache_features: bool = False,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        train_extra: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        if split not in _SPLIT_KINDS:
            raise ConfigError(f"data.split: unknown split {split!r}: speaker, repetition, random, manifest or none")
        if target not in _TARGETS:
            raise ConfigError(f"data.target: unknown target {target!r}: class, ctc or both")
        if concat_augment is not None and target != "ctc":
            raise ConfigError(f"augment.concat joins the CTC targets of several words into one training row, but "
                              f"data.target={target} also trains content classes, and a row of words has no single "
                              f"class: use it with a CTC model (data.target=ctc) or remove augment.concat")
        self.corpus, self.root = corpus_kind(corpus, key="data.corpus"), Path(root)
        self.corpus_kwargs = dict(corpus_kwargs or {})
        self.features = features
        self.augment = augment
        self.frontend = frontend
        self.wave_augment = wave_augment
        self.feature_augment = feature_augment
        self.mix_augment = mix_augment
        self.concat_augment = concat_augment
        self.repeat_augment = repeat_augment
        if batch_size % self._repeats:
            raise ConfigError(f"data.batch_size={batch_size} is the rows of a training step, which augment.repeat "
                              f"fills with batch_size / repeats distinct clips: make it a multiple of "
                              f"augment.repeat.repeats={self._repeats}")
        bind = getattr(feature_augment, "bind", None)
        if callable(bind) and features is not None:  # masks follow the extractor's time / freq axes
            bind(features)
        self.copy_ops = [self._build_cpo(c) for c in (copies or [])]
        self.include_original = include_original
        self.sample_rate = sample_rate
        self.select = dict(
            labels=list(labels) if labels is not None else None,
            languages=list(languages) if languages is not None else None,
            speakers=[str(s) for s in speakers] if speakers is not None else None,
        )
        self.relabel = relabel
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.val_speakers = None if val_speakers is None else [str(x) for x in val_speakers]
        self.test_speakers = None if test_speakers is None else [str(x) for x in test_speakers]
        self.val_repetitions, self.test_repetitions = list(val_repetitions), list(test_repetitions)
        self.target = target
        self.duplicates = check_policy(duplicates)
        self.max_samples = None if max_seconds is None else int(round(max_seconds * sample_rate))
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.cache_waveforms, self.cache_features = cache_waveforms, cache_features
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.seed = seed
        self.train_extra = parse_train_extra(train_extra)
        if self.train_extra and split == "none":
            raise ConfigError("data.train_extra adds training items, but data.split=none has no training split")
        self.items: list[Item] = []
        self.label_map: dict[int, int] = {}
        self.label_names: dict[int, str] = {}
        self.split_indices: dict[str, list[int]] = {}
        self.datasets: dict[str, Dataset] = {}
        self._waveforms: dict[int, np.ndarray] | None = None
        self._is_setup = False

    @staticmethod
    def _build_cpo(c: str | Callable) -> Callable:
        return build_cpo(c) if isinstance(c, str) else c

    # ---------------------------------------------------------------- corpus
    def prepare_data(self) -> None:
        """Generate the built-in synthetic corpus when it is the corpus and is missing."""
        prepare_corpus(self.corpus, self.root, self.corpus_kwargs)
        for extra in self.train_extra:
            extra.prepare()

    def load_manifest(self) -> Manifest:
        return corpus_manifest(self.corpus, self.root, self.corpus_kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self._is_setup:
            return
        manifest = self.load_manifest().filter(**self.select)
        items = list(manifest)
        if self.target in {"ctc", "both"}:
            keep = [it for it in items if pronunciation_targets(it)]
            if len(keep) < len(items):
                log.warning("target=%s: dropped %d items without Mandarin pinyin/text", self.target, len(items) - len(keep))
            items = keep
        if not items:
            raise ValueError(f"no items left in {self.corpus} corpus at {self.root} after selection {self.select}")
        if self.duplicates != "keep":
            keep = resolve_duplicates(items, [file_digest(it.path) for it in items], self.duplicates,
                                      source=f"{self.corpus} at {self.root}")
            items = [items[i] for i in keep]
        self.label_names = {}
        for it in items:
            if it.label >= 0:
                self.label_names.setdefault(it.label, it.text)
        if self.relabel:
            self.label_map = {old: new for new, old in enumerate(sorted(self.label_names))}
            items = [_with_label(it, self.label_map.get(it.label, -1)) for it in items]
            self.label_names = {self.label_map[k]: v for k, v in self.label_names.items()}
        else:
            self.label_map = {k: k for k in self.label_names}
        self.split_indices = self._make_split(items)
        if self.train_extra:  # other corpora's items of the same classes, training split only
            extra = extra_training_items(self.train_extra, {text: k for k, text in self.label_names.items()})
            self.split_indices["train"] = self.split_indices["train"] + list(range(len(items), len(items) + len(extra)))
            items = items + extra
        self.items = items
        # Evaluation splits are put in a seeded random order: any prefix (limit_val_batches, a
        # first batch) then mixes content classes and speakers, so a partial validation still
        # has relevant pairs for its mAP; the full-set metrics do not depend on the order.
        rng = random.Random(self.seed)
        for name in ("val", "test"):
            rng.shuffle(self.split_indices[name])
        if self.cache_waveforms:
            self._waveforms = {i: self._load_item(i) for i in range(len(items))}
        for name, idx in self.split_indices.items():
            train = name == "train"
            ds = SpeechDataset(
                [items[i] for i in idx],
                self.sample_rate,
                copies=self.copy_ops if train else (),
                include_original=self.include_original,
                seed=self.seed,
                max_samples=self.max_samples,
                waveforms=self._waveforms,
                item_indices=idx,
            )
            if self.cache_features and self.features is not None and not (train and self.augments_train):
                ds = CachedFeatureDataset(ds, self._cached_features(name, ds))
            self.datasets[name] = ds
        self._is_setup = True

    @property
    def augments_train(self) -> bool:
        """Whether training batches are augmented on the fly (then their features are not cached)."""
        return any(m is not None
                   for m in (self.augment, self.wave_augment, self.feature_augment, self.mix_augment,
                             self.concat_augment, self.repeat_augment))

    def _load_item(self, i: int) -> np.ndarray:
        return load_audio(self.items[i].path, self.sample_rate)

    def _make_split(self, items: list[Item]) -> dict[str, list[int]]:
        if self.split == "speaker":
            return split_by_speaker(items, self.val_fraction, self.test_fraction, self.seed,
                                    self.val_speakers, self.test_speakers)
        if self.split == "repetition":
            return split_by_repetition(items, self.val_repetitions, self.test_repetitions)
        if self.split == "random":
            return split_random(items, self.val_fraction, self.test_fraction, self.seed)
        if self.split == "manifest":
            return split_from_manifest(items)
        return {"train": [], "val": [], "test": list(range(len(items)))}

    # ---------------------------------------------------------------- features
    def _cache_key(self, split: str, ds: SpeechDataset) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([asdict(it) for it in ds.items], sort_keys=True, default=str).encode())
        h.update(json.dumps(getattr(self.features, "config", None) or repr(self.features), sort_keys=True, default=str).encode())
        h.update(repr(self.frontend).encode())
        h.update(json.dumps([split, [getattr(c, "name", repr(c)) for c in ds.copies], ds.include_original,
                             ds.seed, self.max_samples, self.sample_rate]).encode())
        return h.hexdigest()[:20]

    @torch.no_grad()
    def _cached_features(self, split: str, ds: SpeechDataset) -> list[torch.Tensor]:
        path = self.cache_dir / f"features-{split}-{self._cache_key(split, ds)}.pt" if self.cache_dir else None
        if path is not None and path.is_file():
            return torch.load(path)
        out: list[torch.Tensor] = []
        self.features.eval()
        for start in range(0, len(ds), self.eval_batch_size):
            batch = collate_speech([ds[i] for i in range(start, min(len(ds), start + self.eval_batch_size))])
            wave, lengths = self._front(batch["wave"], batch["wave_lengths"])
            feats, flen = self.features(wave, lengths)
            out += [f[: int(n)].clone() for f, n in zip(feats, flen)]
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save(out, tmp)
        return out

    def _front(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.frontend is None:
            return wave, lengths
        self.frontend.to(wave.device)
        return self.frontend(wave, lengths)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """On the device: CPOs (training only), front end, augmentation (training only), then features
        (unless cached)."""
        training = self.trainer is not None and self.trainer.training
        return self.prepare_batch(batch, augment=training)

    def prepare_batch(self, batch: dict[str, Any], augment: bool = False) -> dict[str, Any]:
        """A collated batch already on its device → CPOs (when asked) → front end → augmentation
        (when asked) → features.

        Order: ``repeat_augment`` (each clip's copies), ``augment`` (CPOs), ``frontend`` (every
        split), ``concat_augment`` (multi-word rows: the batch may come back with fewer rows),
        ``wave_augment`` and ``mix_augment`` on the waveform, features, then ``feature_augment`` on
        the features.
        The CPOs come before the front end because they model what happens to a recording before
        speechret sees it, which is where the robustness protocols (``protocol=cpo_retrieval``) and
        the deterministic ``copies`` apply them: with a silence trimmer, a re-quantized or noisy
        clip is trimmed differently from the clean one, and training shows the model that move.
        Batches whose features were cached (front end included) skip the waveform steps.
        """
        augment = augment and self.augments_train
        if "features" in batch and not augment:
            return batch
        batch.pop("features", None)
        if augment and self.repeat_augment is not None:
            batch = self.repeat_augment(batch)
        wave, lengths = batch["wave"], batch["wave_lengths"]
        if augment and self.augment is not None:
            self.augment.to(wave.device)
            wave = self.augment(wave, lengths)
        wave, lengths = self._front(wave, lengths)
        if augment and self.concat_augment is not None:
            batch["wave"], batch["wave_lengths"] = wave, lengths
            batch = self.concat_augment.to(wave.device)(batch)
            wave, lengths = batch["wave"], batch["wave_lengths"]
        if augment and self.wave_augment is not None:
            self.wave_augment.to(wave.device)
            wave, lengths = self.wave_augment(wave, lengths)
        if augment and self.mix_augment is not None:
            self.mix_augment.to(wave.device)
            wave, lengths, index, weight = self.mix_augment(wave, lengths)
            if index is not None:
                batch["mix_index"], batch["mix_weight"] = index, weight
        batch["wave"], batch["wave_lengths"] = wave, lengths
        if self.features is not None:
            self.features.to(wave.device)
            batch["features"], batch["feature_lengths"] = self.features(wave, lengths)
            if augment and self.feature_augment is not None:
                self.feature_augment.to(wave.device)
                batch["features"] = self.feature_augment(batch["features"], batch["feature_lengths"])
        return batch

    # ---------------------------------------------------------------- loaders
    def _loader(self, split: str, shuffle: bool, batch_size: int) -> DataLoader:
        if not self._is_setup:
            self.setup()
        ds = self.datasets[split]
        return DataLoader(
            ds,
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_speech,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed) if shuffle else None,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches of ``batch_size`` rows: with ``repeat_augment``, ``batch_size / repeats``
        distinct clips, each repeated into its rows by :meth:`prepare_batch`."""
        return self._loader("train", True, self.batch_size // self._repeats)

    @property
    def _repeats(self) -> int:
        return int(getattr(self.repeat_augment, "repeats", 1))

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.eval_batch_size)

    # ---------------------------------------------------------------- facts
    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def split_speakers(self, split: str) -> list[str]:
        """The sorted speakers of one split (``train``, ``val`` or ``test``); unnamed speakers left out."""
        if not self._is_setup:
            self.setup()
        if split not in self.split_indices:
            raise ValueError(f"split_speakers: unknown split {split!r}; splits: {sorted(self.split_indices)}")
        return sorted({self.items[i].speaker for i in self.split_indices[split]} - {""})

    def summary(self) -> dict[str, Any]:
        """Items, speakers, durations and label counts overall and per split."""
        if not self._is_setup:
            self.setup()
        out: dict[str, Any] = {"corpus": self.corpus, "root": str(self.root), "classes": self.num_classes}
        out["all"] = Manifest(self.items).summary()
        for name, idx in self.split_indices.items():
            out[name] = Manifest([self.items[i] for i in idx]).summary() if idx else {"items": 0}
            out[name]["batches_items"] = len(self.datasets[name])
        return out


def _with_label(item: Item, label: int) -> Item:
    d = asdict(item)
    d["label"] = label
    return Item(**d)


def speaker_overlap(dm: SpeechDataModule) -> set[str]:
    """Speakers present in more than one split (empty for a speaker-disjoint split)."""
    sets = [{dm.items[i].speaker for i in dm.split_indices[s]} for s in SPLITS]
    return (sets[0] & sets[1]) | (sets[0] & sets[2]) | (sets[1] & sets[2])


__all__ = [
    "SpeechDataModule",
    "SpeechDataset",
    "collate_speech",
    "split_by_speaker",
    "split_by_repetition",
    "split_random",
    "split_from_manifest",
    "pronunciation_targets",
    "speaker_overlap",
]

"""The honest evaluation set: never an item (or, for speaker protocols, a speaker) the checkpoint saw.

``evaluate.set`` (:func:`set_name`, :func:`choose_eval_data`):

* ``test`` (default without ``data=...``): the checkpoint's own test split — the data config
  stored in the checkpoint (``checkpoint["speechret"]["data"]``) split again by the same
  :class:`~speechret.data.datamodule.SpeechDataModule` logic and seed (:class:`TrainedOn`);
* ``unseen`` (default with ``data=...``): every item of ``data`` except the items of the
  checkpoint's train and val splits, recognised by id and ``<folder>/<file>``
  (:func:`item_keys`), so the same corpus under another root is still recognised;
* ``all``: every item, training data included; the report's first line says so.

Speaker protocols (``cross_speaker``, ``keyword``: ``Protocol.speaker_disjoint``) also leave out
every speaker of the train and val splits (speaker ids), and need ``min_speakers`` unheard voices;
for the built-in synthetic corpus, missing voices are generated (:func:`new_synthetic_voices`,
``evaluate.new_voices``).  ``evaluate.labels`` and ``evaluate.max_items`` then select within the
set; unreadable files are reported and skipped.  A ``test`` / ``unseen`` set is checked disjoint
from what the checkpoint trained or validated on (:func:`check_disjoint`).
Every set is also cleared of copies (:func:`drop_copies`, :mod:`speechret.data.duplicates`):
an item whose file has the same bytes as one the checkpoint trained or validated on, and all but
the first of the items that share one file's bytes; the description says how many were left out.

The *threshold data* (:func:`threshold_trial`): the protocol run on ``evaluate.threshold_split``
of the checkpoint's training data (its validation split), or — when that cannot form one relevant
pair of the protocol — on ``evaluate.threshold_fallback`` (train + val), with a note for the
report; never the evaluation set (:func:`check_threshold_data`).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from speechret.audio import AudioError, load_audio
from speechret.data.duplicates import file_digest, resolve_duplicates
from speechret.errors import ConfigError
from speechret.evaluate.protocols import EvalData, Trial

log = logging.getLogger(__name__)

#: ``evaluate.set`` values (conf/evaluate.yaml); null/auto = ``test`` without ``data=...``, ``unseen`` with it
EVAL_SETS = ("test", "unseen", "all")
#: splits of the checkpoint's training data that ``evaluate.threshold_split`` / ``threshold_fallback`` name
THRESHOLD_SPLITS = ("val", "train")

_LOADER_OVERRIDES: dict[str, Any] = {"features": None, "augment": None, "copies": None,
                                     "cache_features": False, "cache_waveforms": False}


# --------------------------------------------------------------------------------------------
# loading items
# --------------------------------------------------------------------------------------------


def as_container(cfg: Any) -> dict[str, Any]:
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def datamodule(data_cfg: Any, **overrides: Any) -> Any:
    """A set-up ``SpeechDataModule`` of a data config (no features, augmentation, CPO copies or
    caches) with ``overrides``; its ``split_indices`` are the training run's split when the
    config is the one stored in the checkpoint (same corpus, selection, split kind and seed).
    A config without ``duplicates`` was stored before ``data.duplicates`` existed: its run kept
    every copy (``keep``), and so does its split here; :func:`drop_copies` then takes the copies out
    of the evaluation set.  With ``split="none"`` (the whole corpus) a run's ``train_extra`` corpora
    are left out: they joined its training split only."""
    d = as_container(data_cfg)
    d.setdefault("duplicates", "keep")
    d.update(_LOADER_OVERRIDES)
    d.update(overrides)
    if d.get("split") == "none":  # the whole corpus: a training run's extra corpora are not part of it
        d["train_extra"] = None
    dm = instantiate(d, _convert_="all")
    dm.prepare_data()
    dm.setup()
    return dm


def read_items(items: Sequence[Any], sample_rate: int, source: str) -> EvalData:
    """Decode ``items``; files that fail are skipped with a warning naming them."""
    kept, waves, bad = [], [], []
    for it in items:
        try:
            waves.append(load_audio(it.path, sample_rate))
            kept.append(it)
        except AudioError as e:
            bad.append(str(e))
    for msg in bad[:20]:
        log.warning("skipped: %s", msg)
    if bad:
        log.warning("%d of %d files could not be read and were skipped", len(bad), len(items))
    return EvalData(kept, waves, sample_rate, source, skipped=bad)


def seeded_subset(items: list[Any], max_items: int | None, seed: int) -> list[Any]:
    if max_items is not None and 0 < int(max_items) < len(items):
        rng = np.random.default_rng(seed)
        return [items[i] for i in sorted(rng.choice(len(items), size=int(max_items), replace=False).tolist())]
    return items


def load_eval_data(data_cfg: Any, split: str = "none", labels: Sequence[int] | None = None,
                   max_items: int | None = None, seed: int = 0,
                   within_labels: Sequence[int] | None = None) -> EvalData:
    """Items of ``split`` of a data config (a ``SpeechDataModule`` config, e.g. ``cfg.data`` or the
    ``data`` section stored in a checkpoint) with their waveforms.

    ``split="none"`` takes the whole corpus with its original content labels (``evaluate.set=all``
    and the corpus ``unseen`` filters); ``"val"``/``"train"``/``"test"`` reproduce the training
    run's split (same seed).  Files that fail to decode are skipped with a warning naming them.
    ``labels`` selects the corpus labels *before* the split (the DataModule's own selection);
    ``within_labels`` keeps the items of those corpus labels *after* it, so the split is the
    training run's whatever the selection (the threshold data of ``evaluate.labels``).
    """
    d = as_container(data_cfg)
    overrides: dict[str, Any] = {}
    if split == "none":
        overrides.update(split="none", relabel=False)
    if labels is not None:
        overrides["labels"] = [int(x) for x in labels]
        overrides["relabel"] = False
    dm = datamodule(d, **overrides)
    idx = list(range(len(dm.items))) if split == "none" else list(dm.split_indices.get(split, []))
    if not idx:
        raise ValueError(f"data {d.get('corpus')} at {d.get('root')}: split {split!r} is empty")
    items = [dm.items[i] for i in idx]
    if within_labels is not None:
        corpus_label = {new: old for old, new in dm.label_map.items()}
        keep = {int(x) for x in within_labels}
        items = [it for it in items if corpus_label.get(it.label, it.label) in keep]
        if not items:
            raise ValueError(f"data {d.get('corpus')} at {d.get('root')}: split {split!r} holds none of "
                             f"the labels {sorted(keep)} (evaluate.labels)")
    items = seeded_subset(items, max_items, seed)
    return read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} ({split})")


# --------------------------------------------------------------------------------------------
# what the checkpoint saw
# --------------------------------------------------------------------------------------------


def item_keys(item: Any) -> tuple[str, str]:
    """How an item is recognised across corpus copies: its id and the last two components of its
    path (``<speaker folder>/<file>``) — never the absolute path, so the same corpus under another
    root (a copy, ``evaluate.val_root``, another machine) is still recognised."""
    p = Path(str(item.path))
    return str(item.id), f"{p.parent.name}/{p.name}"


@dataclass
class TrainedOn:
    """What a checkpoint trained and validated on: the ``train`` and ``val`` splits that its
    stored data config makes (the DataModule's own split logic, same seed), as item keys
    (:func:`item_keys`) and speaker ids; ``dm`` is that DataModule (corpus labels, not relabelled)."""

    keys: frozenset[str]
    speakers: frozenset[str]
    n_items: int
    dm: Any
    source: str

    @classmethod
    def from_config(cls, data_cfg: Any) -> TrainedOn:
        # relabel=False keeps the corpus labels (evaluate.labels) and leaves every split kind
        # unchanged: the relabelling is monotone and applied after the selection.
        dm = datamodule(data_cfg, relabel=False)
        seen = [dm.items[i] for s in ("train", "val") for i in dm.split_indices.get(s, [])]
        keys = frozenset(k for it in seen for k in item_keys(it))
        d = as_container(data_cfg)
        return cls(keys, frozenset(str(it.speaker) for it in seen), len(seen), dm,
                   f"{d.get('corpus')}:{d.get('root')}")

    @functools.cached_property
    def digests(self) -> frozenset[str]:
        """:func:`~speechret.data.duplicates.file_digest` of every file it trained or validated on."""
        return frozenset(file_digest(self.dm.items[i].path)
                         for s in ("train", "val") for i in self.dm.split_indices.get(s, []))

    def saw(self, item: Any, speakers: bool) -> bool:
        """Whether the checkpoint trained or validated on ``item`` (or, ``speakers``, on its voice)."""
        return any(k in self.keys for k in item_keys(item)) or (speakers and str(item.speaker) in self.speakers)


def check_disjoint(data: EvalData, trained: TrainedOn, speakers: bool) -> None:
    """The hard check behind every ``test`` / ``unseen`` evaluation: no item of ``data`` is one the
    checkpoint trained or validated on, and for speaker protocols no speaker either."""
    items = [it.id for it in data.items if any(k in trained.keys for k in item_keys(it))]
    voices = sorted({str(it.speaker) for it in data.items} & trained.speakers) if speakers else []
    if items or voices:
        raise ValueError(
            f"evaluation set {data.eval_set!r} is not disjoint from the checkpoint's training data ({trained.source}, "
            f"train + val splits): {len(items)} items it trained or validated on (e.g. {items[:5]})"
            + (f" and {len(voices)} of its speakers ({voices[:10]})" if voices else "")
            + "; evaluate.set=all evaluates such data on purpose (labelled as including training data)")


def drop_copies(items: list[Any], trained: TrainedOn | None, source: str) -> tuple[list[Any], str]:
    """``items`` without copies (:mod:`speechret.data.duplicates`: files with the same bytes): an
    item whose file is a copy of one the checkpoint trained or validated on (``trained``; a
    checkpoint stored before ``data.duplicates`` kept its corpus's copies, so one can fall on each
    side of an item split), and every copy of another evaluation item but the first. Returns the
    items and a note for the set's description ("" when nothing was left out)."""
    digests = [file_digest(it.path) for it in items]
    seen = trained.digests if trained is not None else frozenset()
    leaked = [i for i, d in enumerate(digests) if d in seen]
    rest = [i for i in range(len(items)) if digests[i] not in seen]
    kept = [rest[j] for j in resolve_duplicates([items[i] for i in rest], [digests[i] for i in rest], "drop",
                                                source=source, label="evaluation set")]
    note = ""
    if leaked:
        log.warning("evaluation set: %d items are copies of files the checkpoint trained or validated on and were "
                    "left out (e.g. %s)", len(leaked), [str(items[i].id) for i in leaked[:5]])
        note += f", without {len(leaked)} items whose file is a copy of one the checkpoint trained or validated on"
    if len(kept) < len(rest):
        note += (f", without {len(rest) - len(kept)} copies of another item's file (one recording listed more than "
                 "once: one item kept per recording)")
    return [items[i] for i in kept], note


def speakers_of(items: Sequence[Any]) -> list[str]:
    return sorted({str(it.speaker) for it in items})


def _short(names: Sequence[str], n: int = 8) -> str:
    return ", ".join(names[:n]) + (f", … ({len(names)})" if len(names) > n else "")


def new_synthetic_voices(data_cfg: Any, k: int, labels: Sequence[int] | None = None) -> tuple[list[Any], str]:
    """``k`` voices of the built-in synthetic corpus that ``data_cfg`` (a ``corpus: synthetic``
    config) does not hold: the generator's speakers ``n … n+k-1``.  A synthetic speaker depends
    only on ``(seed, index)`` (:func:`speechret.data.synthetic.make_speakers`), so a corpus of
    ``n + k`` speakers extends the training corpus with ``k`` voices no model trained on it heard.
    The extended corpus is generated once next to the original (``<root>_voices<n+k>``)."""
    from speechret.data.synthetic import generate_corpus, make_speakers

    d = as_container(data_cfg)
    kw = dict(d.get("corpus_kwargs") or {})
    n0 = int(kw.get("n_speakers", inspect.signature(generate_corpus).parameters["n_speakers"].default))
    old = {s.name for s in make_speakers(n0, int(kw.get("seed", 0)))}
    kw["n_speakers"] = n0 + int(k)
    root = Path(str(d["root"]))
    d.update(root=str(root.with_name(f"{root.name}_voices{n0 + int(k)}")), corpus_kwargs=kw, speakers=None)
    log.info("generating %d new synthetic voices in %s", k, d["root"])
    dm = datamodule(d, split="none", relabel=False)
    keep = [it for it in dm.items if str(it.speaker) not in old]
    if labels is not None:
        keep = [it for it in keep if it.label in set(int(x) for x in labels)]
    return keep, str(d["root"])


# --------------------------------------------------------------------------------------------
# choosing the evaluation set
# --------------------------------------------------------------------------------------------


def set_name(value: Any, has_data: bool) -> str:
    """``evaluate.set``; null/``auto``: ``test`` without ``data=...``, ``unseen`` with it."""
    s = "" if value is None else str(value)
    if s in ("", "auto"):
        return "unseen" if has_data else "test"
    if s not in EVAL_SETS:
        raise ConfigError(f"evaluate.set must be one of {EVAL_SETS} (or null for the default), not {s!r}")
    return s


def training_data_cfg(hasher: Any | None, val_root: Any = None) -> dict[str, Any] | None:
    """The data config stored in the checkpoint (``checkpoint["speechret"]["data"]``), its root
    replaced by ``evaluate.val_root`` when the corpus moved."""
    d = dict(((hasher.config or {}) if hasher is not None else {}).get("data") or {})
    if not d:
        return None
    if val_root:
        d["root"] = str(val_root)
    return d


@dataclass
class SetRequest:
    """What :func:`choose_eval_data` selects from: ``kind`` (:data:`EVAL_SETS`), the protocol's
    needs, the ``data=...`` config and the checkpoint's stored one, and ``evaluate.*`` options."""

    kind: str
    data_cfg: Any
    train_cfg: dict[str, Any] | None
    has_checkpoint: bool
    speakers: bool = False  # the protocol is speaker-disjoint
    need: int = 1  # speakers the protocol needs
    pname: str = "this"
    labels: list[int] | None = None
    max_items: int | None = None
    seed: int = 0
    new_voices: int = 0

    def keep_label(self, it: Any) -> bool:
        return self.labels is None or it.label in set(self.labels)


def choose_eval_data(req: SetRequest, trained_on: Callable[[], TrainedOn]) -> EvalData:
    """The evaluation set of ``req`` (see the module docstring); ``trained_on`` gives what the
    checkpoint trained and validated on (:class:`TrainedOn`), loaded only when needed."""
    if req.kind == "all" or not req.has_checkpoint:
        return _all_items(req, trained_on)
    return _unseen_items(req, trained_on())


def _all_items(req: SetRequest, trained_on: Callable[[], TrainedOn]) -> EvalData:
    src_cfg = req.data_cfg or req.train_cfg
    if not src_cfg:
        raise ConfigError("no evaluation data: give data=<config> (e.g. data=dspspeech20 data.root=...)")
    d = as_container(src_cfg)
    dm = datamodule(d, split="none", relabel=False)
    items, note = drop_copies([it for it in dm.items if req.keep_label(it)], None, "the all set")
    items = seeded_subset(items, req.max_items, req.seed)
    data = read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} (all)")
    data.eval_set = "all"
    if not req.has_checkpoint:
        data.description = (f"every item of {d.get('corpus')}:{d.get('root')} ({len(data)} items; no "
                            "checkpoint, so no training data to leave out)")
    elif req.train_cfg is None:
        data.description = (f"ALL items of {d.get('corpus')}:{d.get('root')} ({len(data)} items) — MAY INCLUDE "
                            "TRAINING DATA: the checkpoint stores no data config (evaluate.set=all)")
    else:
        trained = trained_on()
        n_seen = sum(trained.saw(it, req.speakers) for it in data.items)
        data.description = (f"ALL items of {d.get('corpus')}:{d.get('root')} ({len(data)} items, "
                            f"{len(speakers_of(data.items))} speakers) — INCLUDES TRAINING DATA: {n_seen} of them "
                            + ("are by speakers the checkpoint trained or validated on" if req.speakers else
                               "were trained or validated on")
                            + " (evaluate.set=all); thresholds and metrics are optimistic")
    if note:
        data.description += f" ({note.removeprefix(', ')})"
    return data


def _unseen_items(req: SetRequest, trained: TrainedOn) -> EvalData:
    kind, speakers, need = req.kind, req.speakers, req.need
    if kind == "test":
        if req.data_cfg:
            raise ConfigError("evaluate.set=test evaluates the checkpoint's own test split: drop data=... (use "
                              "evaluate.val_root=<dir> if its corpus moved), or use evaluate.set=unseen to evaluate "
                              "data=... minus what the checkpoint trained or validated on")
        dm = trained.dm
        items = [dm.items[i] for i in sorted(dm.split_indices.get("test", []))]
        d = as_container(req.train_cfg)
        what = (f"the checkpoint's own test split of {d.get('corpus')}:{d.get('root')} (split={d.get('split')}, "
                f"seed={d.get('seed')}; the training run's DataModule split)")
        if not items:
            raise ValueError(f"the checkpoint's test split of {d.get('corpus')}:{d.get('root')} is empty "
                             f"(data.test_fraction={d.get('test_fraction')} at training): evaluate another corpus "
                             "with data=... (evaluate.set=unseen), or evaluate.set=all")
    else:
        d = as_container(req.data_cfg or req.train_cfg)
        dm = datamodule(d, split="none", relabel=False)
        items = [it for it in dm.items if not trained.saw(it, False)]
        what = (f"{d.get('corpus')}:{d.get('root')} without the {len(dm.items) - len(items)} items the checkpoint "
                "trained or validated on")
    items = [it for it in items if req.keep_label(it)]
    if speakers:  # a speaker split leaves none; a repetition / random split leaves all
        before = len(items)
        items = [it for it in items if str(it.speaker) not in trained.speakers]
        if before > len(items):
            what += (f", without the {before - len(items)} items by its {len(trained.speakers)} training and "
                     f"validation speakers ({req.pname} is a speaker protocol)")
    items, note = drop_copies(items, trained, f"the {kind} set")
    what += note
    have = speakers_of(items)
    if len(have) < need:
        k = int(req.new_voices or 0)
        if k > 0 and d.get("corpus") == "synthetic":
            added, where = new_synthetic_voices(d, max(k, need - len(have)), req.labels)
            what += (f", plus {len(speakers_of(added))} synthetic voices generated for this evaluation "
                     f"({_short(speakers_of(added))}: the generator's speakers beyond the corpus's, never heard "
                     f"in training; evaluate.new_voices) at {where}")
            items += added
            kind += "+new_voices"
    have = speakers_of(items)
    if not items:
        raise ValueError(f"the {kind} set is empty ({what}; evaluate.labels={req.labels}): nothing the checkpoint "
                         "never trained or validated on is left to evaluate")
    if len(have) < need:
        raise ValueError(
            f"the {req.pname} protocol needs at least {need} speakers the checkpoint never trained or validated on; "
            f"the {kind} set ({what}) has {len(have)}{': ' + _short(have) if have else ''}. Give data=<a corpus "
            "with more speakers> (evaluate.set=unseen leaves out the checkpoint's items and speakers), or "
            "evaluate.set=all (includes training data)")
    items = seeded_subset(items, req.max_items, req.seed)
    data = read_items(items, dm.sample_rate, f"{d.get('corpus')}:{d.get('root')} ({kind})")
    data.eval_set = kind
    spk = speakers_of(data.items)
    data.description = (f"{what}: {len(data)} items, {len(spk)} speaker{'s' if len(spk) != 1 else ''} ({_short(spk)}); none of them "
                        + ("nor their speakers " if speakers else "")
                        + "trained or validated on (checked)")
    check_disjoint(data, trained, speakers)
    return data


def set_metrics(data: EvalData) -> dict[str, Any]:
    """The evaluation set's keys in metrics.json."""
    return {"eval_set": data.eval_set, "eval_set_description": data.description or data.source,
            "eval_includes_training_data": data.eval_set == "all" and "no checkpoint" not in data.description,
            "n_eval_items": len(data), "n_eval_speakers": len(speakers_of(data.items))}


# --------------------------------------------------------------------------------------------
# the threshold data: the checkpoint's validation split, never the evaluation set
# --------------------------------------------------------------------------------------------


def threshold_splits(spec: Any, key: str) -> list[str]:
    """``evaluate.threshold_split`` / ``threshold_fallback`` (``key``) as a list of split names."""
    if not spec:
        return []
    splits = [str(spec)] if isinstance(spec, str) else [str(x) for x in spec]
    bad = [s for s in splits if s not in THRESHOLD_SPLITS]
    if bad:
        raise ConfigError(f"{key} names splits of the checkpoint's training data, {' | '.join(THRESHOLD_SPLITS)} "
                          f"or a list of them, not {bad}")
    return splits


def threshold_trial(protocol: Any, tries: Sequence[list[str]],
                    load: Callable[[list[str]], EvalData]) -> tuple[Trial, EvalData, str]:
    """The protocol's trial on the first of ``tries`` (lists of splits of the training data, loaded
    by ``load``) that can form a relevant pair of ``protocol`` (enough speakers, a relevant pair).
    Returns (trial, its data, a note for the report when it fell back past the first)."""
    first = tries[0]
    why: list[str] = []
    for splits in tries:
        try:
            data = load(splits)
            spk = speakers_of(data.items)
            if len(spk) < int(getattr(protocol, "min_speakers", 1)):
                raise ValueError(f"{len(spk)} speaker{'s' if len(spk) != 1 else ''}: {_short(spk)}")
            trial = protocol.build(data)
            if not trial.relevant.any():
                raise ValueError(f"no relevant pair among {len(spk)} speakers")
        except ValueError as e:
            why.append(f"{'+'.join(splits)}: {e}")
            continue
        trial.info["source"] = data.source
        note = ""
        if splits is not first:
            note = (f"the {'+'.join(first)} split cannot form {protocol.name} pairs ({why[0].split(': ', 1)[1]}); "
                    f"thresholds are chosen on {'+'.join(splits)} of the training data instead "
                    "(evaluate.threshold_fallback)" + (", which includes the training speakers: an optimistic "
                                                        "choice, never the evaluation set" if "train" in splits else ""))
            log.warning("thresholds: %s", note)
        return trial, data, note
    raise ConfigError(f"no data to choose a threshold for the {protocol.name} protocol ({'; '.join(why)}); set "
                      "evaluate.threshold=<value> (evaluate.thresholds.<system>=<value>) or evaluate.threshold_split")


def check_threshold_data(threshold_data: EvalData, data: EvalData) -> None:
    """Thresholds are never chosen on the evaluation set (unless that is ``all``, which says so)."""
    if data.eval_set == "all":
        return
    shared = {item_keys(it)[0] for it in threshold_data.items} & {item_keys(it)[0] for it in data.items}
    if shared:
        raise ValueError(f"threshold data ({threshold_data.source}) and evaluation set share {len(shared)} items "
                         f"(e.g. {sorted(shared)[:5]})")

"""Extra training corpora: items of other corpora that join the training split only.

A corpus with few voices can be widened by another corpus of the same words -- another recording
campaign, or speech synthesised in many voices (TTS data augmentation for keyword spotting: Lin,
Kilgour, Roblek & Sharifi, "Training keyword spotters with limited and synthesized speech data",
ICASSP 2020).  :class:`speechret.data.datamodule.SpeechDataModule` takes them as
``data.train_extra`` (``conf/data/train_extra/``): every item whose ``text`` names one of the main
corpus's selected classes joins the training split under that class; the validation and test
splits, and therefore every checkpoint choice and every reported figure, stay the main corpus's
own.  Extra speakers are renamed ``<prefix><speaker>`` so they never share a name with a speaker of
the main corpus (a speaker-disjoint split stays disjoint, and the speaker adversary counts them
apart).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from speechret.errors import ConfigError

from .corpora import corpus_kind, corpus_manifest, prepare_corpus
from .item import Item

__all__ = ["ExtraTrainCorpus", "parse_train_extra", "extra_training_items"]

_KEYS = {"corpus", "root", "corpus_kwargs", "speaker_prefix"}


@dataclass(frozen=True)
class ExtraTrainCorpus:
    """One extra training corpus.

    Args:
        corpus: corpus kind (:func:`speechret.data.corpora.load_corpus`); ``synthetic`` is
            generated in ``root`` when missing (:func:`speechret.data.synthetic.generate_corpus`
            with ``corpus_kwargs``, e.g. ``words``, ``n_speakers``, ``repetitions``).
        root: the corpus folder (or manifest file).
        corpus_kwargs: loader arguments, or the generator's for ``synthetic``.
        speaker_prefix: prepended to its speakers' names (:func:`parse_train_extra` gives
            ``"<corpus>:"`` when the entry names none).
    """

    corpus: str
    root: Path
    corpus_kwargs: Mapping[str, Any] = field(default_factory=dict)
    speaker_prefix: str = ""

    def prepare(self) -> None:
        """Generate a synthetic corpus when it is missing (idempotent)."""
        prepare_corpus(self.corpus, self.root, self.corpus_kwargs)

    def load(self) -> list[Item]:
        return list(corpus_manifest(self.corpus, self.root, self.corpus_kwargs))


def parse_train_extra(specs: Sequence[Mapping[str, Any]] | None, param: str = "data.train_extra") -> list[ExtraTrainCorpus]:
    """``data.train_extra`` (a list of ``{corpus, root, corpus_kwargs?, speaker_prefix?}``) as
    :class:`ExtraTrainCorpus` objects; a clear :class:`ConfigError` naming the entry otherwise."""
    out = []
    for i, spec in enumerate(specs or []):
        where = f"{param}[{i}]"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: expected a mapping with corpus and root, got {spec!r}")
        unknown = set(spec) - _KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")
        if not spec.get("corpus") or not spec.get("root"):
            raise ConfigError(f"{where}: needs both corpus and root, got {dict(spec)!r}")
        kind = corpus_kind(str(spec["corpus"]), key=f"{where}.corpus")
        prefix = spec.get("speaker_prefix")
        out.append(ExtraTrainCorpus(kind, Path(str(spec["root"])), dict(spec.get("corpus_kwargs") or {}),
                                    f"{kind}:" if prefix is None else str(prefix)))
    return out


def extra_training_items(extra: Sequence[ExtraTrainCorpus], text_to_label: Mapping[str, int],
                         param: str = "data.train_extra") -> list[Item]:
    """The items of ``extra`` whose ``text`` is a key of ``text_to_label``, labelled by it and with
    their speakers prefixed.  A corpus that contributes nothing is an error: it names the corpus
    and the classes' texts, since a silent empty extra corpus would train on the main one alone."""
    out: list[Item] = []
    for i, corpus in enumerate(extra):
        items = corpus.load()
        keep = [it for it in items if it.text in text_to_label]
        if not keep:
            raise ConfigError(
                f"{param}[{i}]: none of the {len(items)} items of {corpus.corpus} at {corpus.root} has the text of "
                f"a selected class ({sorted(text_to_label)}); extra training items are matched to classes by text")
        out += [it.replace(label=int(text_to_label[it.text]), speaker=f"{corpus.speaker_prefix}{it.speaker}",
                           split="train") for it in keep]
    return out

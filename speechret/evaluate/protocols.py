"""Evaluation protocols: which audio is queried against which database, and what is relevant.

A protocol turns an evaluation set (:class:`EvalData`: items the checkpoint never trained or
validated on, chosen by :mod:`speechret.evaluate.eval_sets` — ``evaluate.set``) into a :class:`Trial`
— query waveforms, database waveforms, a relevance matrix, pairs left out of the ranking, a group
per query (CPO, noise condition) and the index of each query's own source in the database.  The
runner (:mod:`speechret.evaluate.retrieval`) then encodes both sides with each system and computes
every metric from the distance matrix, so the same protocol measures a deep hash and the MFCC/DTW
and ASR baselines alike.  Studies that are not one ranking are :class:`speechret.evaluate.base.Study`.

Protocols (one Hydra config each in ``conf/protocol/``):

* :class:`CPORetrieval` — papers A (§5.2–5.3, Tables 2, 4, 5) and B (§V-C/D, Tables 1–3):
  database = the clean utterances, queries = CPO'd copies of (a seeded subset of) them: MP3
  128 kbps, re-quantization 16→8→16 bit, ±3 dB, 30 dB Gaussian noise, 16→8→16 kHz resampling.
  Relevance = same content label.  Identity retrieval: each query's own source must be found.
* :class:`CrossSpeaker` — paper C (§5.2, §5.5): each utterance queries all others; relevant =
  same content by *another* speaker; the query's own speaker is left out of the ranking and its
  same-content items are reported separately (``same_speaker.*``), as is the speaker-blind view of
  paper C Table 5 (``any_speaker.*``: same content, any speaker).
* :class:`Keyword` — paper C (§4.4 keyword QBE, Fig. 10): queries are single words by one speaker;
  the database holds multi-word utterances built by concatenating words of *other* speakers with
  short seeded pauses (each utterance from one speaker); relevant = contains the query word.
* :class:`Noise` — paper C §5.3 Table 3: white, car and cafe noise at 0…25 dB SNR added to the
  queries of a model never trained on noise; database = clean; relevance = same content.

Speaker protocols (``speaker_disjoint = True``: cross_speaker, keyword) compare voices: the
runner then also leaves out every *speaker* the checkpoint trained or validated on, and needs at
least ``min_speakers`` speakers in the evaluation set.

Randomness (subsets, CPO noise, concatenations) comes from ``seed`` only.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from speechret.data.manifest import Item
from speechret.metrics import cross_speaker_relevance

log = logging.getLogger(__name__)

PAPER_A_CPOS = ("mp3_128k", "requant_8bit", "gain_-3dB", "gain_+3dB", "gaussian_30dB")
PAPER_B_CPOS = ("gain_-3dB", "gain_+3dB", "mp3_128k", "resample_8k")
PAPER_C_NOISES = ("cafe", "white", "car")
PAPER_C_SNRS = (0, 5, 10, 15, 20, 25)


# --------------------------------------------------------------------------------------------
# evaluation data and trials
# --------------------------------------------------------------------------------------------


@dataclass
class EvalData:
    """Items of an evaluation set with their decoded waveforms (mono float32 at ``sample_rate``)."""

    items: list[Item]
    waves: list[np.ndarray]
    sample_rate: int = 16000
    source: str = ""
    #: files of the selection that could not be read (message per file), left out
    skipped: list[str] = field(default_factory=list)
    #: which evaluation set this is (``test``, ``unseen``, ``all``, ``+new_voices``; see the runner)
    eval_set: str = ""
    #: one sentence for the report: where the items come from and what was left out
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.items) != len(self.waves):
            raise ValueError(f"{len(self.items)} items but {len(self.waves)} waveforms")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        return np.array([it.label for it in self.items], dtype=np.int64)

    @property
    def speakers(self) -> np.ndarray:
        return np.array([str(it.speaker) for it in self.items], dtype=object)

    def subset(self, idx: Sequence[int]) -> EvalData:
        return EvalData([self.items[i] for i in idx], [self.waves[i] for i in idx], self.sample_rate, self.source,
                        eval_set=self.eval_set, description=self.description)


@dataclass
class Trial:
    """What a protocol asks the systems to do; see the module docstring.

    ``relevant`` / ``exclude`` are (Q, N) booleans (excluded pairs are neither ranked nor counted);
    ``groups`` (Q,) names the condition of each query ("" when there is one); ``source`` (Q,) is
    the database index of the query's own source (-1: none); ``views`` holds extra relevance
    definitions reported separately, name → (relevant, exclude).  ``self_query``: each query *is*
    its source (cross_speaker: an utterance queries the others), so the query–source distance is
    0 by construction and identity retrieval is not measured; the intra-class BER of paper A
    Fig. 7 is then taken over the relevant pairs instead.  ``breakdowns`` holds partitions of the
    queries reported part by part with the main relevance, name → (Q,) part of each query (e.g.
    ``query_speaker``: a mean over speakers can hide one voice the model fails on).
    """

    protocol: str
    query_waves: list[np.ndarray]
    db_waves: list[np.ndarray]
    relevant: np.ndarray
    exclude: np.ndarray | None = None
    groups: np.ndarray | None = None
    source: np.ndarray | None = None
    mode: str = "full"
    views: dict[str, tuple[np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    db_labels: np.ndarray | None = None
    query_labels: np.ndarray | None = None
    inter_class_idx: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    self_query: bool = False
    breakdowns: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        q, n = len(self.query_waves), len(self.db_waves)
        if self.relevant.shape != (q, n):
            raise ValueError(f"{self.protocol}: relevance {self.relevant.shape} for {q} queries × {n} items")
        if self.groups is None:
            self.groups = np.array([""] * q, dtype=object)
        if self.source is None:
            self.source = np.full(q, -1, dtype=np.int64)
        for name, parts in self.breakdowns.items():
            if len(parts) != q:
                raise ValueError(f"{self.protocol}: breakdown {name!r} has {len(parts)} parts for {q} queries")

    @property
    def n_queries(self) -> int:
        return len(self.query_waves)

    @property
    def n_database(self) -> int:
        return len(self.db_waves)

    def group_names(self) -> list[str]:
        seen: dict[str, None] = {}
        for g in self.groups:
            seen.setdefault(str(g), None)
        return list(seen)


def pad_batch(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    lens = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(lens.max()) if len(waves) else 0)
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.as_tensor(np.asarray(w, dtype=np.float32))
    return out, lens


def apply_cpo(name: str, waves: Sequence[np.ndarray], seed: int, sample_rate: int = 16000,
              pool: Sequence[np.ndarray] | None = None, batch_size: int = 64) -> list[np.ndarray]:
    """``name`` (see :func:`speechret.cpo.build_cpo`) applied to every waveform, batched on the
    CPU with a seeded generator; ``pool`` feeds the cafe (babble) noise with *other* utterances."""
    from speechret.cpo import CafeNoise, build_cpo

    op = build_cpo(name, sample_rate=sample_rate)
    if isinstance(op, CafeNoise) and pool is not None and len(pool):
        op.set_pool(pool)
    gen = torch.Generator().manual_seed(int(seed))
    out: list[np.ndarray] = []
    for s in range(0, len(waves), batch_size):
        x, lens = pad_batch(waves[s : s + batch_size])
        y = op(x, gen, lengths=lens)
        out += [y[i, : int(n)].numpy().astype(np.float32) for i, n in enumerate(lens)]
    return out


def _subset(n: int, max_n: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = np.arange(n)
    if max_n is not None and 0 < int(max_n) < n:
        idx = np.sort(rng.choice(n, size=int(max_n), replace=False))
    return idx


def _same_label(q_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    q, d = np.asarray(q_labels)[:, None], np.asarray(db_labels)[None, :]
    return (q == d) & (q >= 0)


# --------------------------------------------------------------------------------------------
# protocols
# --------------------------------------------------------------------------------------------


class Protocol(abc.ABC):
    """Base class: ``build(data)`` → :class:`Trial`.  ``max_queries`` caps the queried sources
    (seeded subset; ``None`` = all) — the database is always the whole evaluation set."""

    name = "protocol"
    #: Compute the inter-class BER statistics / FAR of paper A §5.2 on this protocol.
    inter_class = False
    #: Relevance is across speakers: the evaluation set must not hold a speaker the checkpoint
    #: trained or validated on (not only no such item).
    speaker_disjoint = False
    #: Speakers the evaluation set needs for the protocol to form any relevant pair.
    min_speakers = 1

    def __init__(self, max_queries: int | None = 1000, seed: int = 0) -> None:
        self.max_queries = max_queries
        self.seed = int(seed)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed)

    @abc.abstractmethod
    def build(self, data: EvalData) -> Trial:
        """The queries, database and relevance of this protocol on ``data``."""

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.name, "max_queries": self.max_queries, "seed": self.seed}


class CPORetrieval(Protocol):
    """Papers A/B: clean database, CPO'd queries; relevance = same content; identity retrieval.

    Args:
        cpos: CPO names (default: the union of papers A and B — MP3 128k, re-quantization 8 bit,
            −3 dB, +3 dB, Gaussian noise 30 dB, resampling 16→8→16 kHz).
        max_queries: sources queried (seeded subset; paper A uses 1,000 test speeches).
    """

    name = "cpo_retrieval"
    inter_class = True

    def __init__(self, cpos: Sequence[str] = PAPER_A_CPOS + ("resample_8k",), max_queries: int | None = 1000,
                 seed: int = 0) -> None:
        super().__init__(max_queries, seed)
        if not cpos:
            raise ValueError("cpo_retrieval needs at least one CPO")
        self.cpos = [str(c) for c in cpos]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "cpos": self.cpos}

    def build(self, data: EvalData) -> Trial:
        rng = self.rng()
        src = _subset(len(data), self.max_queries, rng)
        labels = data.labels
        others = np.setdiff1d(np.arange(len(data)), src)
        pool = [data.waves[i] for i in (others if len(others) else np.arange(len(data)))]
        q_waves, groups, source = [], [], []
        for k, name in enumerate(self.cpos):
            q_waves += apply_cpo(name, [data.waves[i] for i in src], self.seed * 1000 + k, data.sample_rate, pool)
            groups += [name] * len(src)
            source += list(src)
        source = np.asarray(source, dtype=np.int64)
        q_labels = labels[source]
        return Trial(self.name, q_waves, list(data.waves), _same_label(q_labels, labels), None,
                     np.asarray(groups, dtype=object), source, "full", db_labels=labels, query_labels=q_labels,
                     inter_class_idx=src, info={"n_sources": len(src), "cpos": self.cpos})


class CrossSpeaker(Protocol):
    """Paper C: every (sampled) utterance queries all others; relevant = same content, another
    speaker; same-speaker items are left out of the main ranking and reported as views, and the
    queries of each speaker are reported apart (``query_speaker.<speaker>.map`` ...)."""

    name = "cross_speaker"
    inter_class = True
    speaker_disjoint = True
    min_speakers = 2

    def build(self, data: EvalData) -> Trial:
        src = _subset(len(data), self.max_queries, self.rng())
        labels, spk = data.labels, data.speakers
        n = len(data)
        self_pair = src[:, None] == np.arange(n)[None, :]
        relevant, same_spk, same_lab = cross_speaker_relevance(labels[src], labels, spk[src], spk)
        exclude = self_pair | same_spk
        views = {
            "same_speaker": (same_lab & same_spk & ~self_pair, self_pair | ~same_spk),
            "any_speaker": (same_lab & ~self_pair, self_pair),
        }
        if not relevant.any():
            log.warning("cross_speaker: no query has same-content items by another speaker")
        return Trial(self.name, [data.waves[i] for i in src], list(data.waves), relevant, exclude,
                     None, src.astype(np.int64), "full", views, db_labels=labels, query_labels=labels[src],
                     inter_class_idx=src, info={"n_speakers": int(len(set(spk)))}, self_query=True,
                     breakdowns={"query_speaker": np.asarray(spk[src], dtype=str)})


def join_words(rng: np.random.Generator, waves: Sequence[Any], labels: np.ndarray, pool: np.ndarray, k: int,
               pause: Sequence[float], sample_rate: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """One utterance of :class:`Keyword`'s database: ``k`` distinct words (fewer when ``pool`` has
    fewer), each a random item of ``pool`` (indices into ``waves`` / ``labels``, usually one
    speaker's), joined by silences of ``pause`` = ``[lo, hi]`` seconds before, between and after
    them.  Returns ``(wave, word labels, item indices)``; ``bench/paper_c_segments.py`` builds its
    utterances with it too."""
    avail = np.unique(labels[pool])
    chosen = rng.choice(avail, size=min(int(k), len(avail)), replace=False)
    parts = [np.zeros(int(rng.uniform(*pause) * sample_rate), dtype=np.float32)]
    picked = []
    for lab in chosen:
        cand = pool[labels[pool] == lab]
        i = int(cand[int(rng.integers(len(cand)))])
        picked.append(i)
        parts += [np.asarray(waves[i], dtype=np.float32),
                  np.zeros(int(rng.uniform(*pause) * sample_rate), dtype=np.float32)]
    return np.concatenate(parts), chosen, picked


class Keyword(Protocol):
    """Paper C keyword QBE: single-word queries by ``query_speakers`` speaker(s); a database of
    multi-word utterances, each made of ``words_per_utterance`` distinct words of one *other*
    speaker joined by pauses of ``pause_s`` seconds (uniform in the range); relevance = the
    utterance contains the query's word.

    Args:
        query_speakers: speakers whose words are the queries (seeded choice), or a list of names.
        n_utterances: database size.
        words_per_utterance: ``[lo, hi]`` words per utterance (uniform, inclusive).
        pause_s: ``[lo, hi]`` seconds of silence between (and around) words.
    """

    name = "keyword"
    speaker_disjoint = True
    min_speakers = 2

    def __init__(self, query_speakers: int | Sequence[str] = 1, n_utterances: int = 300,
                 words_per_utterance: Sequence[int] = (2, 4), pause_s: Sequence[float] = (0.1, 0.3),
                 max_queries: int | None = 1000, seed: int = 0) -> None:
        super().__init__(max_queries, seed)
        self.query_speakers = query_speakers
        self.n_utterances = int(n_utterances)
        self.words = (int(words_per_utterance[0]), int(words_per_utterance[-1]))
        self.pause = (float(pause_s[0]), float(pause_s[-1]))
        if not 1 <= self.words[0] <= self.words[1]:
            raise ValueError(f"words_per_utterance must be 1 <= lo <= hi, got {words_per_utterance}")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "query_speakers": self.query_speakers, "n_utterances": self.n_utterances,
                "words_per_utterance": list(self.words), "pause_s": list(self.pause)}

    def build(self, data: EvalData) -> Trial:
        rng = self.rng()
        spk, labels = data.speakers, data.labels
        speakers = sorted(set(spk))
        if isinstance(self.query_speakers, int):
            if len(speakers) < 2:
                raise ValueError(f"keyword protocol needs at least 2 speakers in {data.source or 'the data'}, "
                                 f"got {len(speakers)}")
            n_q = min(int(self.query_speakers), len(speakers) - 1)
            qspk = sorted(rng.choice(speakers, size=n_q, replace=False).tolist())
        else:
            qspk = [str(s) for s in self.query_speakers]
        is_q = np.isin(spk, qspk)
        q_idx = np.flatnonzero(is_q & (labels >= 0))
        if self.max_queries is not None and len(q_idx) > int(self.max_queries):
            q_idx = np.sort(rng.choice(q_idx, size=int(self.max_queries), replace=False))
        others = [s for s in speakers if s not in qspk]
        by_spk = {s: np.flatnonzero((spk == s) & (labels >= 0)) for s in others}
        by_spk = {s: v for s, v in by_spk.items() if len(v)}
        if not q_idx.size or not by_spk:
            raise ValueError(f"keyword protocol: no query words by {qspk} or no other speaker's words")
        sr = data.sample_rate
        db_waves, db_sets, db_meta = [], [], []
        spk_names = sorted(by_spk)
        for _ in range(self.n_utterances):
            s = spk_names[int(rng.integers(len(spk_names)))]
            pool = by_spk[s]
            k = int(rng.integers(self.words[0], self.words[1] + 1))
            wave, chosen, picked = join_words(rng, data.waves, labels, pool, k, self.pause, sr)
            db_waves.append(wave)
            db_sets.append({int(x) for x in chosen})
            db_meta.append({"speaker": s, "labels": [int(x) for x in chosen], "items": [data.items[i].id for i in picked]})
        q_labels = labels[q_idx]
        relevant = np.array([[int(lq) in s for s in db_sets] for lq in q_labels], dtype=bool).reshape(len(q_idx), len(db_sets))
        return Trial(self.name, [data.waves[i] for i in q_idx], db_waves, relevant, None, None, None, "keyword",
                     query_labels=q_labels,
                     info={"query_speakers": qspk, "n_utterances": len(db_waves), "database": db_meta,
                           "mean_words": float(np.mean([len(m["labels"]) for m in db_meta])),
                           "mean_seconds": float(np.mean([len(w) for w in db_waves]) / sr)})


class Noise(Protocol):
    """Paper C Table 3: ``noises`` × ``snrs`` added to the queries (plus the clean queries as
    the reference group ``clean``); database = the clean evaluation set; relevance = same
    content (any speaker, the clean source included, as retrieval "in the original speech
    database" of §5.3)."""

    name = "noise"

    def __init__(self, noises: Sequence[str] = PAPER_C_NOISES, snrs: Sequence[float] = PAPER_C_SNRS,
                 include_clean: bool = True, max_queries: int | None = 200, seed: int = 0) -> None:
        super().__init__(max_queries, seed)
        self.noises = [str(n) for n in noises]
        self.snrs = [float(s) for s in snrs]
        self.include_clean = include_clean

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "noises": self.noises, "snrs": self.snrs}

    @staticmethod
    def group(noise: str, snr: float) -> str:
        return f"{noise}.{snr:g}"

    def build(self, data: EvalData) -> Trial:
        src = _subset(len(data), self.max_queries, self.rng())
        others = np.setdiff1d(np.arange(len(data)), src)
        pool = [data.waves[i] for i in (others if len(others) else np.arange(len(data)))]
        clean = [data.waves[i] for i in src]
        q_waves, groups = ([], []) if not self.include_clean else (list(clean), ["clean"] * len(src))
        k = 0
        for noise in self.noises:
            for snr in self.snrs:
                q_waves += apply_cpo(f"{noise}_{snr:g}dB", clean, self.seed * 1000 + k, data.sample_rate, pool)
                groups += [self.group(noise, snr)] * len(src)
                k += 1
        reps = len(groups) // max(1, len(src))
        source = np.tile(src, reps).astype(np.int64)
        labels = data.labels
        return Trial(self.name, q_waves, list(data.waves), _same_label(labels[source], labels), None,
                     np.asarray(groups, dtype=object), source, "full", db_labels=labels,
                     query_labels=labels[source], info={"n_sources": len(src)})


PROTOCOLS = {p.name: p for p in (CPORetrieval, CrossSpeaker, Keyword, Noise)}

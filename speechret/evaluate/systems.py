"""Retrieval systems compared by the evaluation protocols.

A *system* turns waveforms into representations and representations into a distance matrix;
every protocol (:mod:`speechret.evaluate.protocols`) and every metric works on that matrix, so the
deep hashes and the classic baselines (:mod:`speechret.evaluate.baselines`: MFCC + DTW, ASR-style
edit distance) are measured by exactly the same code::

    system.encode(waves)                       -> representations (array or list, one per wave)
    system.distances(queries, database, mode)  -> (Q, N) float, lower = more similar
    system.name                                -> label in metrics.json / report.md

``mode`` is ``"full"`` (whole query against whole item) or ``"keyword"`` (the query should occur
*inside* the item: paper C §4.4 keyword QBE).

:class:`HashSystem` wraps a trained checkpoint's :class:`~speechret.hasher.Hasher`, so the codes
are produced by the same front half as training, indexing and search.  Distances:

* papers A and B: normalized Hamming distance (BER), paper A eq. (10) / paper B eq. (16); for paper
  B the "two-stage" order of §IV-F (BER over ``h2`` plus 1 when the category hashes ``h1`` differ),
  so a threshold τ < 1 retrieves exactly what the two-stage matcher retrieves;
* paper C: the grouped 27-bit sliding matching of §4.4 in its exact decision form
  (:func:`speechret.search.sliding.decision_distances`, float64).  An item is retrieved at γ iff
  :func:`speechret.search.sliding.sliding_decisions` says so — an alignment exists and the
  decision distance is ``≤ γ`` (paper C step 6 fails only when ``d̄ > γ``), so
  :attr:`HashSystem.threshold_strict` is False for paper C.  That is exactly the set
  ``search.py mode=full_speech`` / ``mode=keyword`` returns at the same γ
  (:meth:`speechret.search.matchers.KeywordMatcher.search`), with the same direction:
  ``keyword`` slides the query over the item; ``full`` follows ``direction`` — by default
  ``"query_in_item"``, paper C §4.4 as written (step 2 slides the query over the stored
  sequence, for keyword and full-speech retrieval alike), or ``"symmetric"`` (speechret's
  opt-in extension: an item shorter than the query is slid over the query).  Keep the paper-C
  distances float64 end to end: rounding them to float32 can move a pair across γ.

Fixed-length codes have no notion of containment: in ``keyword`` mode they are compared whole,
which is what paper C Table 5 means by "deep hashing-based [18, 31]: keyword search ✗".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from speechret.models.hash_modules import fixed_code_distances
from speechret.search.sliding import DEFAULT_DIRECTION, check_direction, decision_distances, sliding_decisions

MODES = ("full", "keyword")


def take(reprs: Any, idx: Sequence[int] | np.ndarray) -> Any:
    """Rows ``idx`` of an array of codes or elements of a list of variable-length codes."""
    if isinstance(reprs, np.ndarray):
        return reprs[np.asarray(idx, dtype=np.int64)]
    return [reprs[int(i)] for i in idx]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    return mode


class HashSystem:
    """Deep hashing of a trained checkpoint (papers A, B or C) as a retrieval system.

    Args:
        hasher: :class:`speechret.hasher.Hasher` (``Hasher.from_checkpoint``).
        name: label in the reports (default ``deep_hash``).
        chunk: queries per distance block (bounds the float32 work matrix of fixed codes).
        direction: paper C full-speech direction, ``"query_in_item"`` (default, §4.4) or
            ``"symmetric"`` (see :mod:`speechret.search.sliding`); must equal ``search.py``'s
            ``direction`` for the two to agree.
    """

    is_hash = True

    def __init__(self, hasher: Any, name: str = "deep_hash", chunk: int = 4096,
                 direction: str = DEFAULT_DIRECTION) -> None:
        self.hasher = hasher
        self.name = name
        self.chunk = int(chunk)
        self.direction = check_direction(direction)

    @property
    def method(self) -> str:
        return self.hasher.method

    @property
    def n_classes(self) -> int:
        return int(self.hasher.n_classes) if self.method == "paper_b" else 0

    @property
    def threshold_strict(self) -> bool:
        """How the threshold compares: ``d < T`` for papers A and B (paper A §5.3, paper B §IV-F),
        ``d ≤ γ`` for paper C (§4.4 step 6: a match fails only when ``d̄ > γ``)."""
        return self.method != "paper_c"

    def direction_of(self, mode: str) -> str:
        """Paper C sliding direction of ``mode``: keyword search always slides the query over
        the item; full-speech retrieval follows :attr:`direction`."""
        return "query_in_item" if check_mode(mode) == "keyword" else self.direction

    def n_bits(self, codes: Any) -> int | None:
        """Bits per compared code (paper B: the semantic hash ``h2``); None for paper C."""
        if self.method == "paper_c" or not isinstance(codes, np.ndarray) or codes.ndim != 2:
            return None
        return int(codes.shape[1]) - self.n_classes

    def describe(self) -> dict[str, Any]:
        cfg = self.hasher.config or {}
        net = (cfg.get("model") or {}).get("net") or {}
        out = {"system": self.name, "method": self.method,
               "architecture": str(net.get("_target_", "")).rsplit(".", 1)[-1],
               "features": str((cfg.get("features") or {}).get("_target_", "")).rsplit(".", 1)[-1]}
        if self.method == "paper_c":
            out["decision"] = f"sliding decision distance <= gamma (float64), full-speech direction {self.direction}"
        return out

    def encode(self, waves: Sequence[np.ndarray]) -> Any:
        return self.hasher.codes_of_waves(list(waves))

    def distances(self, queries: Any, database: Any, mode: str = "full") -> np.ndarray:
        check_mode(mode)
        if self.method == "paper_c":  # float64: the decision compares these with γ exactly
            return decision_distances(list(queries), list(database), self.direction_of(mode))
        q, db = np.asarray(queries, dtype=bool), np.asarray(database, dtype=bool)
        if len(q) == 0 or len(db) == 0:
            return np.zeros((len(q), len(db)), dtype=np.float32)
        parts = [fixed_code_distances(self.method, q[s : s + self.chunk], db, self.n_classes)
                 for s in range(0, len(q), self.chunk)]
        return np.concatenate(parts).astype(np.float32)

    def retrieved(self, queries: Any, database: Any, threshold: float, mode: str = "full",
                  distances: np.ndarray | None = None) -> np.ndarray:
        """(Q, N) bool: the items this system retrieves at ``threshold`` — the evaluation's
        relevant-set decision.  Paper C: :func:`speechret.search.sliding.sliding_decisions`
        (the set ``search.py`` returns); papers A / B: ``BER < T`` (for B over the two-stage
        distance, i.e. same category and ``BER(h2) < τ``).  ``distances``: this system's
        :meth:`distances` of the same pairs, when already computed."""
        if self.method == "paper_c":
            return sliding_decisions(list(queries), list(database), threshold, self.direction_of(mode),
                                     distances=distances)
        d = self.distances(queries, database, mode) if distances is None else np.asarray(distances)
        return d < threshold

    def ber(self, queries: Any, database: Any) -> np.ndarray:
        """Plain BER (paper A eq. 10) for the inter-class statistics of paper A §5.2: over the
        whole code (A), over ``h2`` (B, without the category term), sliding distance (C)."""
        if self.method == "paper_c":
            return self.distances(queries, database, "full")
        q, db = np.asarray(queries, dtype=bool), np.asarray(database, dtype=bool)
        k = self.n_classes
        return fixed_code_distances("paper_a", q[:, k:], db[:, k:]).astype(np.float32)


def build_baselines(names: Sequence[str], cfg: Any, main: HashSystem | None = None) -> list[Any]:
    """Baseline systems by name: ``dtw`` (MFCC + DTW QBE) and ``asr`` (greedy CTC decoding of a
    paper-C pronunciation model + edit distance; the model is ``evaluate.asr_ckpt`` or the main
    checkpoint when that is a paper-C model)."""
    from speechret.evaluate.baselines import ASRSystem, DTWSystem

    out = []
    for name in names or []:
        if name == "dtw":
            opts = dict(cfg.get("dtw") or {}) if cfg is not None else {}
            out.append(DTWSystem(**opts))
        elif name == "asr":
            ckpt = cfg.get("asr_ckpt") if cfg is not None else None
            if ckpt:
                from speechret.hasher import Hasher

                hasher = Hasher.from_checkpoint(ckpt, device=str(cfg.get("device", "cpu")))
            elif main is not None and main.method == "paper_c":
                hasher = main.hasher
            else:
                raise ValueError("baseline 'asr' needs a paper-C (CTC pronunciation) model: set "
                                 "evaluate.asr_ckpt=<ckpt of cnn3d_bilstm_ctc / bilstm_ctc_baseline>")
            if getattr(hasher, "method", None) != "paper_c":
                raise ValueError(f"baseline 'asr': {ckpt} is not a paper-C CTC checkpoint")
            out.append(ASRSystem(hasher))
        else:
            raise ValueError(f"unknown baseline {name!r}: dtw or asr")
    return out

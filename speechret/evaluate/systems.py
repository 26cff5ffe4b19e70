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

:class:`HashSystem` wraps a trained checkpoint's :class:`~speechret.hashing.hasher.Hasher`, so the codes
are produced by the same front half as training, indexing and search.  Distances:

* papers A and B: normalized Hamming distance (BER), paper A eq. (10) / paper B eq. (16); for paper
  B the "two-stage" order of §IV-F (BER over ``h2`` plus 1 when the category hashes ``h1`` differ),
  so a threshold τ < 1 retrieves exactly what the two-stage matcher retrieves;
* paper C: the grouped 27-bit sliding matching of §4.4 in its exact decision form
  (:func:`speechret.hashing.sliding.decision_distances`, float64).  An item is retrieved at γ iff
  :func:`speechret.hashing.sliding.sliding_decisions` says so — an alignment exists and the
  decision distance is ``≤ γ`` (paper C step 6 fails only when ``d̄ > γ``), so
  :attr:`HashSystem.threshold_strict` is False for paper C.  That is exactly the set
  ``search.py mode=full_speech`` / ``mode=keyword`` returns at the same γ
  (:meth:`speechret.search.keyword.KeywordMatcher.search`), with the same direction:
  ``keyword`` slides the query over the item; ``full`` follows ``direction`` — by default
  ``"query_in_item"``, paper C §4.4 as written (step 2 slides the query over the stored
  sequence, for keyword and full-speech retrieval alike), or ``"symmetric"`` (speechret's
  opt-in extension: an item shorter than the query is slid over the query).  Keep the paper-C
  distances float64 end to end: rounding them to float32 can move a pair across γ.

Fixed-length codes have no notion of containment: in ``keyword`` mode they are compared whole,
which is what paper C Table 5 means by "deep hashing-based [18, 31]: keyword search ✗".
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from speechret.hashing import HashMethod, get_hash_method
from speechret.hashing.method import check_compare_mode as check_mode
from speechret.hashing.sliding import DEFAULT_DIRECTION, check_direction


class HashSystem:
    """Deep hashing of a trained checkpoint as a retrieval system: every decision is the
    checkpoint's :class:`~speechret.hashing.HashMethod`'s (codes, distances, threshold rule).

    Args:
        hasher: :class:`speechret.hashing.hasher.Hasher` (``Hasher.from_checkpoint``).
        name: label in the reports (default ``deep_hash``).
        chunk: queries per distance block (bounds the float32 work matrix of fixed codes).
        direction: full-speech direction of grouped codes, ``"query_in_item"`` (default, paper C
            §4.4) or ``"symmetric"`` (see :mod:`speechret.hashing.sliding`); must equal
            ``search.py``'s ``direction`` for the two to agree.
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

    @functools.cached_property
    def hashing(self) -> HashMethod:
        """The :class:`~speechret.hashing.HashMethod` of the hasher's codes: the hasher's own object
        (the checkpoint's ``model.hash_options`` included), or one built from its method's name."""
        own = getattr(self.hasher, "hashing", None)
        if isinstance(own, HashMethod):
            return own
        return get_hash_method(self.hasher.method, n_classes=getattr(self.hasher, "n_classes", 0))

    @property
    def n_classes(self) -> int:
        return self.hashing.category_bits

    @property
    def threshold_strict(self) -> bool:
        """How the threshold compares: ``d < T`` for papers A and B (paper A §5.3, paper B §IV-F),
        ``d ≤ γ`` for paper C (§4.4 step 6: a match fails only when ``d̄ > γ``)."""
        return self.hashing.threshold_strict

    def n_bits(self, codes: Any) -> int | None:
        """Bits per compared code (paper B: the semantic hash ``h2``); None for paper C."""
        return self.hashing.n_bits(codes)

    def describe(self) -> dict[str, Any]:
        cfg = self.hasher.config or {}
        net = (cfg.get("model") or {}).get("net") or {}
        return {"system": self.name, "method": self.method,
                "architecture": str(net.get("_target_", "")).rsplit(".", 1)[-1],
                "features": str((cfg.get("features") or {}).get("_target_", "")).rsplit(".", 1)[-1],
                **self.hashing.describe(self.direction)}

    def encode(self, waves: Sequence[np.ndarray]) -> Any:
        return self.hasher.codes_of_waves(list(waves))

    def distances(self, queries: Any, database: Any, mode: str = "full") -> np.ndarray:
        return self.hashing.distances(queries, database, check_mode(mode), self.direction, chunk=self.chunk)

    def retrieved(self, queries: Any, database: Any, threshold: float, mode: str = "full",
                  distances: np.ndarray | None = None) -> np.ndarray:
        """(Q, N) bool: the items this system retrieves at ``threshold`` — the evaluation's
        relevant-set decision.  Paper C: :func:`speechret.hashing.sliding.sliding_decisions`
        (the set ``search.py`` returns); papers A / B: ``BER < T`` (for B over the two-stage
        distance, i.e. same category and ``BER(h2) < τ``).  ``distances``: this system's
        :meth:`distances` of the same pairs, when already computed."""
        return self.hashing.retrieved(queries, database, threshold, check_mode(mode), self.direction,
                                     distances=distances)

    def ber(self, queries: Any, database: Any) -> np.ndarray:
        """Plain BER (paper A eq. 10) for the inter-class statistics of paper A §5.2: over the
        whole code (A), over ``h2`` (B, without the category term), sliding distance (C)."""
        return self.hashing.ber(queries, database)


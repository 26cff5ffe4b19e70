"""Search matchers over binary hash codes: threshold / top-k (papers A, B), two-stage (paper B
§IV-F) and grouped-sliding keyword / full-speech query by example (paper C §4.4).

Every matcher has a brute-force numpy reference (``*_bruteforce``) that the tests compare with.

Conventions
-----------
* Codes enter packed (``uint8 (N, ceil(d/8))``, :func:`speechret.hashing.pack_bits` order) for the
  fixed-length searches, as bools or packed (given ``d_bits``) for the two-stage matcher (it splits
  h1 ‖ h2 itself) and as ``(S, 27)`` bool groups or ``(S,)`` uint32 words for the keyword matcher.
* Every matcher a library keeps has ``add(codes, ids)``, ``save(path)`` (one file or a directory
  at ``path``, the matcher's choice) and the classmethod ``load(path, **arguments)``, where the arguments are those of the Hydra node its hash
  method declares (:meth:`speechret.hashing.HashMethod.matcher_nodes`): the library saves and
  restores them without knowing which method it holds.
* BER = Hamming distance / d (papers A eq. 8, B eq. 16). Results are sorted by distance, then by
  item id (then by start position for keyword hits), so ties are deterministic.
* **Threshold** (papers A, B: "if D < τ the match is successful"): a code matches when
  ``BER < T`` *strictly*. The Hamming radius is ``h* = max{h : h / d < T}`` evaluated with the
  same float expression the brute force uses; FAISS binary ``range_search`` keeps distances
  strictly below its radius, so it is called with ``h* + 1``.
* **Paper C** uses ``≤ γ`` (step 6 fails only when ``d̄ > γ``): a candidate start's first group
  must satisfy ``h / 27 ≤ γ`` (the step-3 test), so the d = 32 group index is range-searched with
  radius ``max{h : h / 27 ≤ γ} + 1``. The candidates are verified with the running-mean kernel of
  :mod:`speechret.hashing.sliding`, the one the evaluation's decision distance uses, so
  :meth:`speechret.search.keyword.KeywordMatcher.full_speech` returns exactly
  :func:`~speechret.hashing.sliding.sliding_decisions` (float64, ``≤ γ``, same direction).
* **Approximate indexes** (HNSW, IVF with ``nprobe < nlist``) may drop candidates; every search
  passes its ``range_k`` through and :func:`speechret.search.index.range_search` warns
  (:class:`~speechret.search.index.ApproximateSearchWarning`) when that may have happened.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from speechret.hashing import hamming, pack_bits, split_paper_b, unpack_bits
from speechret.hashing.methods.paper_b import category_of
from speechret.search import index as ix


# ------------------------------------------------------------------------------------ helpers
def max_hamming_below(d_bits: int, threshold: float, strict: bool = True) -> int:
    """Largest Hamming distance ``h ∈ [0, d]`` with ``h / d < threshold`` (``≤`` when not
    strict); −1 when none (e.g. ``threshold <= 0`` strict)."""
    h = np.arange(d_bits + 1)
    ok = (h / d_bits < threshold) if strict else (h / d_bits <= threshold)
    return int(h[ok].max()) if ok.any() else -1


def _sort_hits(ids: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((ids, dist))
    return ids[order], dist[order]


def _packed(codes: np.ndarray) -> np.ndarray:
    c = np.ascontiguousarray(codes)
    if c.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {c.dtype}")
    return c.reshape(1, -1) if c.ndim == 1 else c


# ------------------------------------------------------------------------- threshold / top-k
def threshold_search(index: Any, queries_packed: np.ndarray, d_bits: int, ber_threshold: float,
                     range_k: int = ix.DEFAULT_RANGE_K) -> list[tuple[np.ndarray, np.ndarray]]:
    """All stored codes with ``BER < ber_threshold`` for every query, via ``range_search``.

    Returns one ``(ids int64, ber float64)`` per query, sorted by distance then id. ``d_bits`` is
    the code length the BER is normalised by (it may be smaller than the index width when the
    code was zero-padded to whole bytes). HNSW uses the search-then-filter fallback
    (:func:`speechret.search.index.range_search`)."""
    q = _packed(queries_packed)
    hmax = max_hamming_below(d_bits, ber_threshold, strict=True)
    if hmax < 0 or index.ntotal == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.float64)) for _ in range(len(q))]
    lims, dist, ids = ix.range_search(index, q, hmax + 1, range_k=range_k)
    out = []
    for i in range(len(q)):
        a, b = lims[i], lims[i + 1]
        s_ids, s_dist = _sort_hits(ids[a:b], dist[a:b])
        out.append((s_ids, s_dist / d_bits))
    return out


def threshold_search_bruteforce(db_packed: np.ndarray, db_ids: np.ndarray, queries_packed: np.ndarray,
                                d_bits: int, ber_threshold: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Numpy reference of :func:`threshold_search`: ``BER = hamming / d < T``."""
    db_ids = np.asarray(db_ids, dtype=np.int64)
    h = hamming(_packed(queries_packed), _packed(db_packed))
    out = []
    for row in h:
        ber = row / d_bits
        keep = ber < ber_threshold
        s_ids, s_dist = _sort_hits(db_ids[keep], row[keep])
        out.append((s_ids, s_dist / d_bits))
    return out


def topk_search(index: Any, queries_packed: np.ndarray, k: int, d_bits: int | None = None,
                exact_ties: bool = False, tie_margin: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest codes: ``(ids int64 (Q, k), ber float64 (Q, k))``, each row sorted by
    (distance, id); missing neighbours (fewer than k stored) get id −1 and BER ``inf``.

    FAISS picks arbitrarily among codes tied at the k-th distance. With ``exact_ties=True`` (flat /
    IVF only) the search asks for ``tie_margin`` more neighbours than ``k``: when the last of them
    is farther than the k-th, every code tied with the k-th is among them, and the smallest ids
    are kept; otherwise (more ties than the margin) the tied codes are fetched with a
    ``range_search``. Either way the answer equals the brute force's (distance, id) order exactly,
    and the common case costs one scan instead of two."""
    q = _packed(queries_packed)
    d = d_bits or index.d
    nq = len(q)
    ids_out = np.full((nq, k), -1, dtype=np.int64)
    ber_out = np.full((nq, k), np.inf, dtype=np.float64)
    if index.ntotal == 0 or k <= 0:
        return ids_out, ber_out
    kk = min(k, index.ntotal)
    exact = exact_ties and ix.index_kind(index) != "hnsw"
    wide = min(kk + tie_margin, index.ntotal) if exact else kk
    dist, ids = index.search(q, wide)
    dist, ids = dist.astype(np.int64), ids.astype(np.int64)
    for i in range(nq):
        valid = ids[i] >= 0
        r_ids, r_dist = _sort_hits(ids[i][valid], dist[i][valid])
        if exact and len(r_dist) >= kk:
            dk = int(r_dist[kk - 1])
            # every candidate returned (fewer than asked, or the whole index), or the margin ends
            # beyond the k-th distance
            complete = len(r_dist) < wide or wide == index.ntotal or int(r_dist[-1]) > dk
            if not complete:
                lims, dd, ii = ix.range_search(index, q[i : i + 1], dk + 1)
                r_ids, r_dist = _sort_hits(ii.astype(np.int64), dd.astype(np.int64))
        r_ids, r_dist = r_ids[:kk], r_dist[:kk]
        ids_out[i, : len(r_ids)] = r_ids
        ber_out[i, : len(r_ids)] = r_dist / d
    return ids_out, ber_out


def topk_search_bruteforce(db_packed: np.ndarray, db_ids: np.ndarray, queries_packed: np.ndarray, k: int,
                           d_bits: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Numpy reference of :func:`topk_search` (ties broken by smaller id)."""
    db = _packed(db_packed)
    db_ids = np.asarray(db_ids, dtype=np.int64)
    d = d_bits or db.shape[1] * 8
    h = hamming(_packed(queries_packed), db)
    nq = h.shape[0]
    ids_out = np.full((nq, k), -1, dtype=np.int64)
    ber_out = np.full((nq, k), np.inf, dtype=np.float64)
    for i, row in enumerate(h):
        order = np.lexsort((db_ids, row))[:k]
        ids_out[i, : len(order)] = db_ids[order]
        ber_out[i, : len(order)] = row[order] / d
    return ids_out, ber_out


class ThresholdMatcher:
    """Fixed-length codes in one FAISS binary index; threshold (``BER < T``) or top-k search.

    ``kind`` / ``params``: see :func:`speechret.search.index.build_binary_index`. ``d_bits``: the
    code length (BER denominator); the index is ``8 * ceil(d_bits / 8)`` bits wide."""

    def __init__(self, d_bits: int, ber_threshold: float = 0.25, kind: str = "flat", **params: Any):
        self.d_bits = int(d_bits)
        self.ber_threshold = float(ber_threshold)
        self.kind = kind
        self._train_size = int(params.pop("train_size", 100_000))
        self.range_k = int(params.pop("range_k", ix.DEFAULT_RANGE_K))
        self.index = ix.build_binary_index(kind, 8 * ((self.d_bits + 7) // 8), **params)

    def add(self, codes_packed: np.ndarray, ids: np.ndarray | None = None) -> ThresholdMatcher:
        ix.add_codes(self.index, _packed(codes_packed), ids, train_size=self._train_size)
        return self

    def add_bits(self, codes_bits: np.ndarray, ids: np.ndarray | None = None) -> ThresholdMatcher:
        return self.add(pack_bits(codes_bits), ids)

    def search(self, queries_packed: np.ndarray, ber_threshold: float | None = None):
        t = self.ber_threshold if ber_threshold is None else ber_threshold
        return threshold_search(self.index, queries_packed, self.d_bits, t, range_k=self.range_k)

    def topk(self, queries_packed: np.ndarray, k: int, exact_ties: bool = False):
        return topk_search(self.index, queries_packed, k, self.d_bits, exact_ties=exact_ties)

    def save(self, path: str | Path) -> Path:
        """Write the index to the file ``path`` (atomically)."""
        return ix.save_index(self.index, path)

    @classmethod
    def load(cls, path: str | Path, d_bits: int, ber_threshold: float = 0.25, kind: str = "flat",
             **params: Any) -> ThresholdMatcher:
        """The matcher :meth:`save` wrote to ``path`` (arguments as the constructor's)."""
        m = cls.__new__(cls)
        m.d_bits, m.ber_threshold = int(d_bits), float(ber_threshold)
        m.index = ix.load_index(path)
        m.kind, m._train_size = ix.index_kind(m.index), int(params.get("train_size", 100_000))
        m.range_k = int(params.get("range_k", ix.DEFAULT_RANGE_K))
        return m

    bruteforce = staticmethod(threshold_search_bruteforce)
    topk_bruteforce = staticmethod(topk_search_bruteforce)


# ---------------------------------------------------------------------------- paper B two-stage
class TwoStageMatcher:
    """Paper B §IV-F two-stage retrieval over codes ``h1 ‖ h2`` (C category bits, then K bits).

    Stage 1 — the query's category ``argmax h1_q`` selects the candidate set: the library items of
    the same category. This is implemented exactly by keeping one sub-index per category
    (``IndexBinaryFlat`` over the packed h2, in an ``IDMap2``), so stage 1 is a dictionary lookup
    and never scans other categories. Stage 2 — BER on h2 (eq. 16), either ``BER < τ``
    (:meth:`search`) or the k nearest (:meth:`topk`) within the category.

    ``d_bits`` (optional): the whole code's length C + K; given it, codes may also enter packed
    (``uint8 (N, ceil(d_bits / 8))``, as a library stores them)."""

    def __init__(self, n_classes: int, ber_threshold: float = 0.25, kind: str = "flat",
                 d_bits: int | None = None, **params: Any):
        self.n_classes = int(n_classes)
        self.ber_threshold = float(ber_threshold)
        self.d_bits = None if d_bits is None else int(d_bits)
        self.range_k = int(params.pop("range_k", ix.DEFAULT_RANGE_K))
        self.kind, self.params = kind, params
        self.k_bits: int | None = None if d_bits is None else int(d_bits) - self.n_classes
        self.indexes: dict[int, Any] = {}
        self._next_id = 0

    def _split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.atleast_2d(np.asarray(codes))
        if codes.dtype == np.uint8 and self.d_bits is not None and codes.shape[1] == (self.d_bits + 7) // 8 \
                and codes.shape[1] != self.d_bits:
            codes = unpack_bits(codes, self.d_bits)
        h1, h2 = split_paper_b(codes, self.n_classes)
        if self.k_bits is None:
            self.k_bits = h2.shape[1]
        elif h2.shape[1] != self.k_bits:
            raise ValueError(f"semantic hash has {h2.shape[1]} bits, matcher has {self.k_bits}")
        if self.k_bits == 0:
            raise ValueError("codes carry no semantic bits after the category hash")
        return category_of(h1), pack_bits(h2)

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> TwoStageMatcher:
        """Add ``bool (N, C + K)`` codes (paper B's ``h1 ‖ h2``; packed ones given ``d_bits``)."""
        cat, h2 = self._split(codes)
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(cat), dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        self._next_id = max(self._next_id, int(ids.max()) + 1) if len(ids) else self._next_id
        for c in np.unique(cat):
            sel = cat == c
            if int(c) not in self.indexes:
                self.indexes[int(c)] = ix.build_binary_index(self.kind, h2.shape[1] * 8, **self.params)
            ix.add_codes(self.indexes[int(c)], h2[sel], ids[sel])
        return self

    def search(self, queries: np.ndarray, ber_threshold: float | None = None):
        """Per query ``(ids, ber)`` of same-category items with ``BER(h2) < τ``."""
        t = self.ber_threshold if ber_threshold is None else ber_threshold
        cat, h2 = self._split(queries)
        out = []
        for c, q in zip(cat, h2):
            index = self.indexes.get(int(c))
            if index is None:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.float64)))
            else:
                out.append(threshold_search(index, q[None], self.k_bits, t, range_k=self.range_k)[0])
        return out

    def topk(self, queries: np.ndarray, k: int, exact_ties: bool = True):
        """``(ids (Q, k), ber (Q, k))``: the k nearest same-category items (−1 / inf padding)."""
        cat, h2 = self._split(queries)
        ids = np.full((len(cat), k), -1, dtype=np.int64)
        bers = np.full((len(cat), k), np.inf)
        for i, (c, q) in enumerate(zip(cat, h2)):
            index = self.indexes.get(int(c))
            if index is not None:
                ids[i], bers[i] = (a[0] for a in topk_search(index, q[None], k, self.k_bits, exact_ties))
        return ids, bers

    def save(self, directory: str | Path) -> Path:
        """Write one ``cat<c>.faissbin`` per category and ``state.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for c, index in sorted(self.indexes.items()):
            ix.save_index(index, directory / f"cat{c:05d}.faissbin")
        (directory / "state.json").write_text(json.dumps({"next_id": self._next_id, "k_bits": self.k_bits}))
        return directory

    @classmethod
    def load(cls, directory: str | Path, n_classes: int, **kwargs: Any) -> TwoStageMatcher:
        """The matcher :meth:`save` wrote into ``directory`` (arguments as the constructor's)."""
        directory = Path(directory)
        state = json.loads((directory / "state.json").read_text())
        m = cls(n_classes, **kwargs)
        for p in sorted(directory.glob("cat*.faissbin")):
            m.indexes[int(p.stem[3:])] = ix.load_index(p)
        m._next_id, m.k_bits = int(state["next_id"]), state["k_bits"]
        return m


def two_stage_bruteforce(db_codes: np.ndarray, db_ids: np.ndarray, queries: np.ndarray, n_classes: int,
                         ber_threshold: float | None = None, k: int | None = None):
    """Numpy reference: restrict to the query's category, then threshold (``BER < τ``) or top-k
    on h2. Returns what :meth:`TwoStageMatcher.search` (threshold) or ``.topk`` (k) returns."""
    db_ids = np.asarray(db_ids, dtype=np.int64)
    h1, h2 = split_paper_b(db_codes, n_classes)
    qh1, qh2 = split_paper_b(np.atleast_2d(queries), n_classes)
    dcat, qcat = category_of(h1), category_of(qh1)
    kb = h2.shape[1]
    dist = hamming(pack_bits(qh2), pack_bits(h2))
    if k is None:
        out = []
        for i in range(len(qcat)):
            keep = (dcat == qcat[i]) & (dist[i] / kb < ber_threshold)
            s_ids, s_d = _sort_hits(db_ids[keep], dist[i][keep])
            out.append((s_ids, s_d / kb))
        return out
    ids = np.full((len(qcat), k), -1, dtype=np.int64)
    bers = np.full((len(qcat), k), np.inf)
    for i in range(len(qcat)):
        sel = np.flatnonzero(dcat == qcat[i])
        order = sel[np.lexsort((db_ids[sel], dist[i][sel]))][:k]
        ids[i, : len(order)] = db_ids[order]
        bers[i, : len(order)] = dist[i][order] / kb
    return ids, bers


__all__ = [
    "ThresholdMatcher",
    "TwoStageMatcher",
    "category_of",
    "max_hamming_below",
    "threshold_search",
    "threshold_search_bruteforce",
    "topk_search",
    "topk_search_bruteforce",
    "two_stage_bruteforce",
]


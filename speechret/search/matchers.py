"""Search matchers over binary hash codes: threshold / top-k (papers A, B), two-stage (paper B
§IV-F) and grouped-sliding keyword / full-speech query by example (paper C §4.4).

Every matcher has a brute-force numpy reference (``*_bruteforce``) that the tests compare with.

Conventions
-----------
* Codes enter packed (``uint8 (N, ceil(d/8))``, :func:`speechret.hashing.pack_bits` order) for the
  fixed-length searches, as bools for the two-stage matcher (it splits h1 ‖ h2 itself) and as
  ``(S, 27)`` bool groups or ``(S,)`` uint32 words for the keyword matcher.
* BER = Hamming distance / d (papers A eq. 8, B eq. 16). Results are sorted by distance, then by
  item id (then by start position for keyword hits), so ties are deterministic.
* **Threshold** (papers A, B: "if D < τ the match is successful"): a code matches when
  ``BER < T`` *strictly*. The Hamming radius is ``h* = max{h : h / d < T}`` evaluated with the
  same float expression the brute force uses; FAISS binary ``range_search`` keeps distances
  strictly below its radius, so it is called with ``h* + 1``.
* **Paper C** uses ``≤ γ`` (step 6 fails only when ``d̄ > γ``): a candidate start's first group
  must satisfy ``h / 27 ≤ γ`` (the step-3 test), so the d = 32 group index is range-searched with
  radius ``max{h : h / 27 ≤ γ} + 1``. The candidates are verified with the running-mean kernel of
  :mod:`speechret.search.sliding`, the one the evaluation's decision distance uses, so
  :meth:`KeywordMatcher.full_speech` returns exactly
  :func:`~speechret.search.sliding.sliding_decisions` (float64, ``≤ γ``, same direction).
* **Approximate indexes** (HNSW, IVF with ``nprobe < nlist``) may drop candidates; every search
  passes its ``range_k`` through and :func:`speechret.search.index.range_search` warns
  (:class:`~speechret.search.index.ApproximateSearchWarning`) when that may have happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from speechret.hashing import hamming, pack_bits, split_paper_b
from speechret.search import index as ix
from speechret.search.sliding import (
    DEFAULT_DIRECTION,
    GROUP_BITS,
    as_words,
    check_direction,
    verify_items_in_query,
    verify_starts,
)


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
                exact_ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest codes: ``(ids int64 (Q, k), ber float64 (Q, k))``, each row sorted by
    (distance, id); missing neighbours (fewer than k stored) get id −1 and BER ``inf``.

    FAISS picks arbitrarily among codes tied at the k-th distance. With ``exact_ties=True`` (flat /
    IVF only) the tied codes are fetched with a ``range_search`` and the smallest ids kept, so the
    answer equals the brute force's (distance, id) order exactly."""
    q = _packed(queries_packed)
    d = d_bits or index.d
    nq = len(q)
    ids_out = np.full((nq, k), -1, dtype=np.int64)
    ber_out = np.full((nq, k), np.inf, dtype=np.float64)
    if index.ntotal == 0 or k <= 0:
        return ids_out, ber_out
    kk = min(k, index.ntotal)
    dist, ids = index.search(q, kk)
    dist, ids = dist.astype(np.int64), ids.astype(np.int64)
    for i in range(nq):
        valid = ids[i] >= 0
        r_ids, r_dist = _sort_hits(ids[i][valid], dist[i][valid])
        if exact_ties and len(r_dist) == kk and ix.index_kind(index) != "hnsw":
            dk = int(r_dist[-1])
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
        return ix.save_index(self.index, path)

    @classmethod
    def load(cls, path: str | Path, d_bits: int, ber_threshold: float = 0.25) -> ThresholdMatcher:
        m = cls.__new__(cls)
        m.d_bits, m.ber_threshold = int(d_bits), float(ber_threshold)
        m.index = ix.load_index(path)
        m.kind, m._train_size, m.range_k = ix.index_kind(m.index), 100_000, ix.DEFAULT_RANGE_K
        return m

    bruteforce = staticmethod(threshold_search_bruteforce)
    topk_bruteforce = staticmethod(topk_search_bruteforce)


# ---------------------------------------------------------------------------- paper B two-stage
def category_of(h1: np.ndarray) -> np.ndarray:
    """Stage 1: the category encoded by the one-hot h1 (index of its set bit; argmax, so the
    first set bit if several, 0 if none)."""
    return np.asarray(h1, dtype=bool).argmax(axis=-1)


class TwoStageMatcher:
    """Paper B §IV-F two-stage retrieval over codes ``h1 ‖ h2`` (C category bits, then K bits).

    Stage 1 — the query's category ``argmax h1_q`` selects the candidate set: the library items of
    the same category. This is implemented exactly by keeping one sub-index per category
    (``IndexBinaryFlat`` over the packed h2, in an ``IDMap2``), so stage 1 is a dictionary lookup
    and never scans other categories. Stage 2 — BER on h2 (eq. 16), either ``BER < τ``
    (:meth:`search`) or the k nearest (:meth:`topk`) within the category."""

    def __init__(self, n_classes: int, ber_threshold: float = 0.25, kind: str = "flat", **params: Any):
        self.n_classes = int(n_classes)
        self.ber_threshold = float(ber_threshold)
        self.range_k = int(params.pop("range_k", ix.DEFAULT_RANGE_K))
        self.kind, self.params = kind, params
        self.k_bits: int | None = None
        self.indexes: dict[int, Any] = {}
        self._next_id = 0

    def _split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.atleast_2d(np.asarray(codes))
        h1, h2 = split_paper_b(codes, self.n_classes)
        if self.k_bits is None:
            self.k_bits = h2.shape[1]
        elif h2.shape[1] != self.k_bits:
            raise ValueError(f"semantic hash has {h2.shape[1]} bits, matcher has {self.k_bits}")
        if self.k_bits == 0:
            raise ValueError("codes carry no semantic bits after the category hash")
        return category_of(h1), pack_bits(h2)

    def add(self, codes: np.ndarray, ids: np.ndarray | None = None) -> TwoStageMatcher:
        """Add ``bool (N, C + K)`` codes (as from ``codes_from_output("paper_b")``)."""
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


# ------------------------------------------------------------------------ paper C keyword QBE
class KeywordHit(NamedTuple):
    """One paper-C match: item id, mean BER d̄ of the q matched groups, span ``[start, end)``."""

    item: int
    ber: float
    start: int
    end: int


def _words_to_rows(words: np.ndarray) -> np.ndarray:
    """uint32 words → ``uint8 (S, 4)`` FAISS rows; identical to ``pack_groups_27`` of the groups
    (bit δ of the word → byte δ // 8, bit δ % 8)."""
    return np.ascontiguousarray(words.astype("<u4")).view(np.uint8).reshape(-1, 4)


def _finish_hits(items: np.ndarray, means: np.ndarray, starts: np.ndarray, q: int, mode: str,
                 ends: np.ndarray | None = None) -> list[KeywordHit]:
    """Sort hits by (d̄, item, start); ``full_speech`` keeps the best start per item. ``ends``
    default to ``start + q`` (query in item); symmetric items shorter than the query span
    ``[0, k)``."""
    if mode not in ("keyword", "full_speech"):
        raise ValueError(f"mode must be 'keyword' or 'full_speech', got {mode!r}")
    items, means = np.asarray(items, np.int64), np.asarray(means, np.float64)
    starts = np.asarray(starts, np.int64)
    ends = starts + q if ends is None else np.asarray(ends, np.int64)
    order = np.lexsort((starts, items, means))
    items, means, starts, ends = items[order], means[order], starts[order], ends[order]
    if mode == "full_speech":  # best start per item (smallest d̄, then earliest start)
        _, first = np.unique(items, return_index=True)
        keep = np.sort(first)
        items, means, starts, ends = items[keep], means[keep], starts[keep], ends[keep]
    return [KeywordHit(int(i), float(m), int(s), int(e)) for i, m, s, e in zip(items, means, starts, ends)]


@dataclass
class KeywordMatcher:
    """Paper C §4.4 grouped sliding search of a query's 27-bit groups inside stored sequences.

    Every stored group is one row (packed to 32 bits, :func:`~speechret.hashing.pack_groups_27`
    layout) of a d = 32 FAISS binary index whose row id is its global group number; the parallel
    arrays ``row_item`` / ``row_pos`` map a row to (item slot, position). A query with q groups:

    1. candidates = rows within ``h / 27 ≤ γ`` of the query's **first** group (range_search —
       steps 2–3), whose position leaves ≥ q groups in the item;
    2. each candidate start is verified with steps 4–7 (every running mean ``d̄ ≤ γ``);
    3. hits :class:`KeywordHit` sorted by (d̄, item id, start).

    ``mode="keyword"`` returns every matching start (each occurrence of the keyword);
    ``mode="full_speech"`` (whole-utterance query by example) returns one hit per item — its best
    start, the one :func:`speechret.search.sliding.sliding_match` reports. The procedure is the
    same; only the reporting differs.

    ``direction`` (full-speech only; keyword search always slides the query over the item):
    ``"query_in_item"`` (default, paper C §4.4 step 2 — an item with fewer groups than the query
    never matches) or ``"symmetric"`` (an item shorter than the query is slid over the query
    instead; its hit spans the whole item). Either way the full-speech hit set is exactly
    :func:`speechret.search.sliding.sliding_decisions` at γ — the evaluation's decision.

    ``index_kind`` may be ``"ivf"``/``"hnsw"`` for the candidate index, but only ``"flat"``
    (default) makes the search exact; ``range_k`` (or ``index_params["range_k"]``) caps HNSW's
    candidates per query, with an :class:`~speechret.search.index.ApproximateSearchWarning` when
    the cap is reached."""

    gamma: float = 0.25
    bits: int = GROUP_BITS
    index_kind: str = "flat"
    index_params: dict | None = None
    direction: str = DEFAULT_DIRECTION
    range_k: int | None = None

    def __post_init__(self) -> None:
        check_direction(self.direction)
        params = dict(self.index_params or {})
        rk = params.pop("range_k", None)
        if self.range_k is None:
            self.range_k = int(rk) if rk is not None else ix.DEFAULT_RANGE_K
        self._item_ids: list[int] = []
        self._lengths: list[int] = []
        self.words = np.zeros(0, np.uint32)
        self.offsets = np.zeros(1, np.int64)
        self.row_item = np.zeros(0, np.int64)
        self.row_pos = np.zeros(0, np.int64)
        self.item_ids = np.zeros(0, np.int64)
        self.index = ix.build_binary_index(self.index_kind, 32, **params)

    def __len__(self) -> int:
        return len(self._item_ids)

    def add(self, sequences: Sequence[np.ndarray], ids: Sequence[int] | None = None) -> KeywordMatcher:
        """Add items: each a ``(S, 27)`` bool group array (or ``(S,)`` uint32 words)."""
        words = [as_words(s).astype(np.uint32) for s in sequences]
        if ids is None:
            start = (max(self._item_ids) + 1) if self._item_ids else 0
            ids = range(start, start + len(words))
        ids = [int(i) for i in ids]
        if len(ids) != len(words):
            raise ValueError(f"{len(ids)} ids for {len(words)} sequences")
        first_slot, first_row = len(self._item_ids), int(self.offsets[-1])
        lens = np.array([len(w) for w in words], dtype=np.int64)
        flat = np.concatenate(words).astype(np.uint32) if lens.sum() else np.zeros(0, np.uint32)
        self._item_ids += ids
        self._lengths += lens.tolist()
        self.item_ids = np.asarray(self._item_ids, dtype=np.int64)
        self.words = np.concatenate([self.words, flat])
        self.offsets = np.concatenate([self.offsets, first_row + np.cumsum(lens)])
        slots = np.repeat(np.arange(first_slot, first_slot + len(words), dtype=np.int64), lens)
        pos = np.arange(len(flat), dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)
        self.row_item = np.concatenate([self.row_item, slots])
        self.row_pos = np.concatenate([self.row_pos, pos])
        if len(flat):
            rows = np.arange(first_row, first_row + len(flat), dtype=np.int64)
            ix.add_codes(self.index, _words_to_rows(flat), rows)
        return self

    def candidate_radius(self, gamma: float) -> int:
        """FAISS radius for step 3: ``max{h : h / bits ≤ γ} + 1`` (range_search is strict)."""
        return max_hamming_below(self.bits, gamma, strict=False) + 1

    def search(self, query: np.ndarray, gamma: float | None = None, mode: str = "keyword",
               direction: str | None = None) -> list[KeywordHit]:
        """Hits of one query (``(S, 27)`` groups or uint32 words) at ``γ`` (default
        ``self.gamma``); ``direction`` overrides ``self.direction`` for ``mode="full_speech"``."""
        g = self.gamma if gamma is None else float(gamma)
        direction = check_direction(self.direction if direction is None else direction)
        qw = as_words(query).astype(np.uint32)
        q = len(qw)
        items, means, starts = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        radius = self.candidate_radius(g)
        if q and radius > 0 and self.index.ntotal:
            _, _, rows = ix.range_search(self.index, _words_to_rows(qw[:1]), radius, range_k=self.range_k)
            slots, pos = self.row_item[rows], self.row_pos[rows]
            m = verify_starts(qw, self.words, self.offsets, slots, pos, g, self.bits)
            ok = m >= 0
            items, means, starts = self.item_ids[slots[ok]], m[ok], pos[ok]
        if q and mode == "full_speech" and direction == "symmetric" and len(self):
            lengths = np.diff(self.offsets)
            short = np.flatnonzero((lengths > 0) & (lengths < q)).astype(np.int64)
            m, _ = verify_items_in_query(qw, self.words, self.offsets, short, g, self.bits)
            ok = m >= 0
            ends = np.concatenate([starts + q, lengths[short[ok]]])  # reversed: the whole item
            items = np.concatenate([items, self.item_ids[short[ok]]])
            means = np.concatenate([means, m[ok]])
            starts = np.concatenate([starts, np.zeros(int(ok.sum()), np.int64)])
            return _finish_hits(items, means, starts, q, mode, ends)
        return _finish_hits(items, means, starts, q, mode)

    def full_speech(self, query: np.ndarray, gamma: float | None = None,
                    direction: str | None = None) -> list[KeywordHit]:
        """Paper C full-speech query by example: one hit (best start) per matching item."""
        return self.search(query, gamma, mode="full_speech", direction=direction)

    def bruteforce(self, query: np.ndarray, gamma: float | None = None, mode: str = "keyword",
                   direction: str | None = None) -> list[KeywordHit]:
        g = self.gamma if gamma is None else float(gamma)
        seqs = [self.words[self.offsets[i] : self.offsets[i + 1]] for i in range(len(self))]
        return keyword_search_bruteforce(seqs, self.item_ids, query, g, mode, self.bits,
                                         self.direction if direction is None else direction)


def _running_means(short: np.ndarray, long: np.ndarray, bits: int) -> np.ndarray:
    """(n, len(short)) running means of ``short`` at every start in ``long`` (numpy cumsum)."""
    windows = np.lib.stride_tricks.sliding_window_view(long, len(short))  # (n, q)
    d = np.bitwise_count(np.bitwise_xor(windows, short[None, :])).astype(np.int64) / bits
    return np.cumsum(d, axis=1) / np.arange(1, len(short) + 1)


def keyword_search_bruteforce(sequences: Sequence[np.ndarray], ids: Sequence[int], query: np.ndarray,
                              gamma: float, mode: str = "keyword", bits: int = GROUP_BITS,
                              direction: str = DEFAULT_DIRECTION) -> list[KeywordHit]:
    """Numpy reference: every item, every start with ≥ q groups left, running means by cumsum;
    ``mode="full_speech", direction="symmetric"``: an item shorter than the query is slid over
    the query (its hit spans the whole item)."""
    check_direction(direction)
    qw = as_words(query).astype(np.uint32)
    q = len(qw)
    items, means, starts, ends = [], [], [], []
    if q:
        for item_id, seq in zip(ids, sequences):
            w = as_words(seq).astype(np.uint32)
            if len(w) >= q:
                running = _running_means(qw, w, bits)
                for s in np.flatnonzero((running <= gamma).all(axis=1)):
                    items.append(int(item_id))
                    means.append(running[s, -1])
                    starts.append(int(s))
                    ends.append(int(s) + q)
            elif len(w) and mode == "full_speech" and direction == "symmetric":
                running = _running_means(w, qw, bits)
                ok = np.flatnonzero((running <= gamma).all(axis=1))
                if len(ok):
                    items.append(int(item_id))
                    means.append(running[ok, -1].min())
                    starts.append(0)
                    ends.append(len(w))
    return _finish_hits(np.asarray(items, np.int64), np.asarray(means, np.float64),
                        np.asarray(starts, np.int64), q, mode, np.asarray(ends, np.int64))


__all__ = [
    "KeywordHit",
    "KeywordMatcher",
    "ThresholdMatcher",
    "TwoStageMatcher",
    "category_of",
    "keyword_search_bruteforce",
    "max_hamming_below",
    "threshold_search",
    "threshold_search_bruteforce",
    "topk_search",
    "topk_search_bruteforce",
    "two_stage_bruteforce",
]

"""Paper C (002) §4.4 grouped 27-bit sliding search (keyword and full-speech query by example).

The FAISS-backed :class:`KeywordMatcher` proposes candidate starts with a d = 32 binary index of
every stored group and verifies them with the running-mean kernel of
:mod:`speechret.hashing.sliding` (the one the evaluation's decision distance uses), so its
full-speech hit set equals :func:`speechret.hashing.sliding.sliding_decisions` at γ;
:func:`keyword_search_bruteforce` is the numpy reference the tests compare with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from speechret.hashing.sliding import (
    DEFAULT_DIRECTION,
    GROUP_BITS,
    as_words,
    check_direction,
    verify_items_in_query,
    verify_starts,
)
from speechret.search import index as ix
from speechret.search.matchers import max_hamming_below

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
    start, the one :func:`speechret.hashing.sliding.sliding_match` reports. The procedure is the
    same; only the reporting differs.

    ``direction`` (full-speech only; keyword search always slides the query over the item):
    ``"query_in_item"`` (default, paper C §4.4 step 2 — an item with fewer groups than the query
    never matches) or ``"symmetric"`` (an item shorter than the query is slid over the query
    instead; its hit spans the whole item). Either way the full-speech hit set is exactly
    :func:`speechret.hashing.sliding.sliding_decisions` at γ — the evaluation's decision.

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

    def save(self, directory: str | Path) -> Path:
        """Write the group index (``groups.faissbin``) and the stored sequences
        (``sequences.npz``: item ids, lengths, words) into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ix.save_index(self.index, directory / "groups.faissbin")
        np.savez(directory / "sequences.npz", item_ids=self.item_ids,
                 lengths=np.asarray(self._lengths, np.int64), words=self.words)
        return directory

    @classmethod
    def load(cls, directory: str | Path, **kwargs: Any) -> KeywordMatcher:
        """The matcher :meth:`save` wrote into ``directory`` (arguments as the constructor's):
        the parallel arrays are rebuilt exactly as :meth:`add` builds them."""
        directory = Path(directory)
        m = cls(**kwargs)
        z = np.load(directory / "sequences.npz")
        lengths, words = z["lengths"].astype(np.int64), z["words"].astype(np.uint32)
        offs = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        m._item_ids = [int(i) for i in z["item_ids"]]
        m._lengths = lengths.tolist()
        m.item_ids = np.asarray(m._item_ids, dtype=np.int64)
        m.words, m.offsets = words, offs
        m.row_item = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        m.row_pos = np.arange(len(words), dtype=np.int64) - np.repeat(offs[:-1], lengths)
        m.index = ix.load_index(directory / "groups.faissbin")
        return m

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


__all__ = ["KeywordHit", "KeywordMatcher", "keyword_search_bruteforce"]

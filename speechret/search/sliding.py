"""Grouped 27-bit sliding matching — paper C (002) §4.4, retrieval steps 1–7.

A paper-C code is a variable-length sequence of 27-bit groups, one per pronunciation segment
(:func:`speechret.hashing.hash_paper_c`), stored as ``uint32`` words (bit δ of the word = bit δ of
the group).  Matching a query ``H_s`` (q groups) against a stored ``H_x`` (k groups):

1. group both sequences by 27 bits;
2. slide the query's first group over ``H_x``: ``d_i`` = normalized Hamming distance (BER, i.e.
   Hamming distance / 27) between ``h_s1`` and ``h_xi``; stop when fewer than q groups remain;
3. if ``d_i > γ`` slide on (the paper's text states the comparison the other way round in step 3,
   which would make every low-distance start fail; we follow the evident intent: a start is
   *kept* when its distance is within the threshold);
4.–6. extend the match group by group, ``d̄`` = running mean of the distances of the groups
   matched so far; when ``d̄ > γ`` the start fails and sliding resumes (step 2);
7. when all q groups are matched with every running mean ``≤ γ``, ``H_x`` matches at span
   ``[i, i + q)``.

Distances are normalized (BER) so that γ reads like the other papers' thresholds; ``γ`` is a
fraction of 27 bits.  For ranking (mAP) the *sliding distance* is the smallest final mean
``d̄`` over all starts — the value step 7 compares with γ — without the prefix condition.
When the stored sequence is shorter than the query, the paper's procedure never matches; with
``symmetric=True`` the shorter sequence is slid over the longer instead (used for whole-utterance
ranking where two renditions of the same content may segment into different counts).
An empty sequence is at distance 1 from everything.

The *decision distance* (``statistic="minimax"``) is the exact threshold-free form of steps 1–7:
for each start the largest running mean ``max_j d̄_j`` (the smallest γ for which that start
survives every check of steps 3–6), minimised over starts.  ``H_x`` matches the query at
threshold γ iff its decision distance is ``≤ γ``, so ranking and thresholding by it reproduce
the paper's matcher; the evaluation protocols use it.

The kernels are numba-compiled loops over packed words (popcount of XOR): the verification step
of the FAISS-backed search and the validation mAP of the CTC models both call them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

GROUP_BITS = 27


@numba.njit(cache=True)
def _popcount32(x: np.uint32) -> int:
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return int(((x * 0x01010101) & 0xFFFFFFFF) >> 24)


@numba.njit(cache=True)
def _slide(query: np.ndarray, item: np.ndarray, gamma: float, bits: int) -> tuple[float, int, float, int]:
    """(best mean distance, its start, best *matching* mean distance ≤ γ with prefix rule, its start)."""
    q, k = query.shape[0], item.shape[0]
    best, best_i = 1.0, -1
    match, match_i = 2.0, -1
    if q == 0 or k < q:
        return best, best_i, match, match_i
    for i in range(k - q + 1):
        total = 0.0
        ok = True
        for j in range(q):
            total += _popcount32(np.uint32(query[j] ^ item[i + j])) / bits
            if total / (j + 1) > gamma:
                ok = False
        mean = total / q
        if mean < best:
            best, best_i = mean, i
        if ok and mean < match:
            match, match_i = mean, i
    return best, best_i, match, match_i


@numba.njit(cache=True)
def _slide_minimax(query: np.ndarray, item: np.ndarray, bits: int) -> float:
    """min over starts of max over prefixes of the running mean (the decision distance)."""
    q, k = query.shape[0], item.shape[0]
    best = 1.0
    if q == 0 or k < q:
        return best
    for i in range(k - q + 1):
        total = 0.0
        worst = 0.0
        for j in range(q):
            total += _popcount32(np.uint32(query[j] ^ item[i + j])) / bits
            m = total / (j + 1)
            if m > worst:
                worst = m
            if worst >= best:
                break
        if worst < best:
            best = worst
    return best


@numba.njit(cache=True)
def _pair(qa, db, symmetric, bits, minimax):
    if symmetric and db.shape[0] < qa.shape[0]:
        qa, db = db, qa
    if minimax:
        return _slide_minimax(qa, db, bits)
    return _slide(qa, db, 1.0, bits)[0]


@numba.njit(cache=True, parallel=True)
def _pairwise(qwords, qoff, dwords, doff, symmetric, bits, minimax):
    nq, nd = qoff.shape[0] - 1, doff.shape[0] - 1
    out = np.ones((nq, nd), dtype=np.float64)
    for p in numba.prange(nq * nd):
        a, b = p // nd, p % nd
        out[a, b] = _pair(qwords[qoff[a] : qoff[a + 1]], dwords[doff[b] : doff[b + 1]], symmetric, bits, minimax)
    return out


def as_words(groups: np.ndarray) -> np.ndarray:
    """(S, 27) bool/0-1 groups → (S,) uint32 words (bit δ = group bit δ); uint32 input passes."""
    g = np.asarray(groups)
    if g.dtype == np.uint32 and g.ndim == 1:
        return g
    if g.ndim != 2:
        raise ValueError(f"expected (S, {GROUP_BITS}) groups or (S,) uint32 words, got shape {g.shape}")
    weights = (np.uint32(1) << np.arange(g.shape[1], dtype=np.uint32)).astype(np.uint32)
    return (g.astype(np.uint32) * weights).sum(axis=1, dtype=np.uint64).astype(np.uint32)


def _concat(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    words = [as_words(s) for s in seqs]
    off = np.zeros(len(words) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(w) for w in words])
    flat = np.concatenate(words) if words and off[-1] > 0 else np.zeros(0, dtype=np.uint32)
    return flat.astype(np.uint32), off


def sliding_match(query, item, gamma: float, bits: int = GROUP_BITS) -> tuple[bool, float, tuple[int, int] | None]:
    """Steps 1–7 for one pair: (matched, mean distance of the match, span ``(start, end)``)."""
    qw, iw = as_words(query), as_words(item)
    _, _, mean, start = _slide(qw, iw, float(gamma), bits)
    if start < 0:
        return False, float("nan"), None
    return True, float(mean), (int(start), int(start) + len(qw))


def sliding_distance(query, item, symmetric: bool = False, bits: int = GROUP_BITS) -> tuple[float, int]:
    """Smallest mean BER over alignments and its start (−1 when none is possible)."""
    qw, iw = as_words(query), as_words(item)
    if symmetric and len(iw) < len(qw):
        d, start, _, _ = _slide(iw, qw, 1.0, bits)
        return float(d), int(start)
    d, start, _, _ = _slide(qw, iw, 1.0, bits)
    return float(d), int(start)


def pairwise_sliding_distance(
    queries: Sequence[np.ndarray], database: Sequence[np.ndarray], symmetric: bool = True,
    bits: int = GROUP_BITS, statistic: str = "mean",
) -> np.ndarray:
    """(Q, N) matrix of sliding distances between variable-length group sequences.

    ``statistic="mean"``: smallest final mean over starts (ranking of the validation mAP);
    ``"minimax"``: the decision distance (matches at γ iff ``≤ γ``, see the module docstring).
    """
    if statistic not in ("mean", "minimax"):
        raise ValueError(f"statistic must be 'mean' or 'minimax', not {statistic!r}")
    qw, qoff = _concat(queries)
    dw, doff = _concat(database)
    return _pairwise(qw, qoff, dw, doff, symmetric, bits, statistic == "minimax")

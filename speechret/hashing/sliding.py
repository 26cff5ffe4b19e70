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
An empty sequence is at distance 1 from everything.

The decision — one rule for evaluation and ``search.py``
-------------------------------------------------------
The *decision distance* (``statistic="minimax"``) is the exact threshold-free form of steps 1–7:
for each start the largest running mean ``max_j d̄_j`` (the smallest γ for which that start
survives every check of steps 3–6), minimised over starts.  A pair *matches at γ* iff an
alignment exists and its decision distance is ``≤ γ`` in float64 (step 6 fails only when
``d̄ > γ``): :func:`sliding_decisions`.  The evaluation's distance matrix
(:class:`speechret.evaluate.systems.HashSystem`) and the candidate verification of the FAISS-backed
:class:`speechret.search.keyword.KeywordMatcher` compute the running means with the one kernel
:func:`_start_worst` (``total += popcount / 27``, ``d̄_j = total / (j + 1)``; the numpy brute force
repeats the same float64 operations), so they give bit-identical values and the same hit set at
every γ, including pairs exactly on the boundary.  Keep these distances float64: rounding to
float32 moves pairs across γ.

**Direction** (``direction=``, :data:`DIRECTIONS`):

* ``"query_in_item"`` — the default, and paper C §4.4 as written: "Let H_s and H_x be the hash
  sequence of query speech and the one needing to match"; step 2 slides the query's first group
  over ``H_x`` and "end[s] matching when the number of groups in H_x that have not been compared
  is less than q".  The paper uses this one procedure for keyword search *and* full-speech
  retrieval (§5.2 Tables 1–4, §5.5 Table 5 with γ = 0.31), so a stored item with fewer groups
  than the query never matches.
* ``"symmetric"`` — speechret's extension for full-speech retrieval only: when the stored sequence
  is shorter than the query, the item is slid over the query instead (two renditions of the same
  sentence may segment into different counts).  The paper never describes this; it is opt-in.

Keyword search is always ``query_in_item`` (containment is directional).

The kernels are numba-compiled loops over packed words (popcount of XOR): the verification step
of the FAISS-backed search and the validation mAP of the CTC models both call them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

GROUP_BITS = 27
#: full-speech matching directions (see the module docstring).
DIRECTIONS = ("query_in_item", "symmetric")
#: paper C §4.4 step 2: the query slides over the stored sequence.
DEFAULT_DIRECTION = "query_in_item"
#: distance of a pair with no possible alignment (an empty sequence, or — query_in_item — an
#: item shorter than the query): finite, so ranking and threshold choice still work; such a pair
#: never matches (:func:`sliding_decisions`), whatever γ.
NO_ALIGNMENT = 1.0


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    return direction


@numba.njit(cache=True)
def _popcount32(x: np.uint32) -> int:
    x = x - ((x >> 1) & 0x55555555)
    x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
    x = (x + (x >> 4)) & 0x0F0F0F0F
    return int(((x * 0x01010101) & 0xFFFFFFFF) >> 24)


@numba.njit(cache=True)
def _start_worst(query: np.ndarray, item: np.ndarray, start: int, bits: int, cutoff: float) -> tuple[float, float]:
    """Steps 4–6 from one start: the running means ``d̄_j`` of the q groups aligned at ``start``.

    Returns ``(max_j d̄_j, d̄_q)``; stops as soon as a running mean exceeds ``cutoff`` and then
    returns ``(that mean, -1.0)``.  The one place the running mean is computed: the matcher's
    verification and every distance below call it, so their float64 values agree exactly."""
    q = query.shape[0]
    total = 0.0
    worst = 0.0
    for j in range(q):
        total += _popcount32(np.uint32(query[j] ^ item[start + j])) / bits
        m = total / (j + 1)
        if m > worst:
            worst = m
        if worst > cutoff:
            return worst, -1.0
    return worst, total / q


@numba.njit(cache=True)
def _slide(query: np.ndarray, item: np.ndarray, gamma: float, bits: int) -> tuple[float, int, float, int]:
    """(best mean distance, its start, best *matching* mean distance ≤ γ with prefix rule, its start)."""
    q, k = query.shape[0], item.shape[0]
    best, best_i = NO_ALIGNMENT, -1
    match, match_i = 2.0, -1
    if q == 0 or k < q:
        return best, best_i, match, match_i
    for i in range(k - q + 1):
        worst, mean = _start_worst(query, item, i, bits, np.inf)
        if mean < best:
            best, best_i = mean, i
        if worst <= gamma and mean < match:
            match, match_i = mean, i
    return best, best_i, match, match_i


@numba.njit(cache=True)
def _slide_minimax(query: np.ndarray, item: np.ndarray, bits: int) -> float:
    """min over starts of max over prefixes of the running mean (the decision distance)."""
    q, k = query.shape[0], item.shape[0]
    best = NO_ALIGNMENT
    if q == 0 or k < q:
        return best
    for i in range(k - q + 1):
        worst, mean = _start_worst(query, item, i, bits, best)
        if mean >= 0.0 and worst < best:
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


@numba.njit(cache=True)
def verify_starts(query, words, offsets, cand_item, cand_pos, gamma, bits):
    """Steps 4–7 from given candidate starts (item slot, position) of concatenated sequences
    ``words`` / ``offsets``: the final mean ``d̄_q`` of each start whose every running mean is
    ``≤ γ``, −1 otherwise (also when fewer than q groups are left, step 2)."""
    q = query.shape[0]
    out = np.full(cand_item.shape[0], -1.0)
    for c in range(cand_item.shape[0]):
        it, s = cand_item[c], cand_pos[c]
        base = offsets[it]
        if s + q > offsets[it + 1] - base:
            continue
        _, mean = _start_worst(query, words[base : offsets[it + 1]], s, bits, gamma)
        out[c] = mean
    return out


@numba.njit(cache=True)
def verify_items_in_query(query, words, offsets, slots, gamma, bits):
    """``direction="symmetric"`` for stored items shorter than the query: slide each item (slot)
    over the query (steps 2–7 with the roles swapped).  Returns per slot the smallest final mean
    of a start whose running means are all ``≤ γ`` (−1 when none) and that start in the query."""
    q = query.shape[0]
    means = np.full(slots.shape[0], -1.0)
    starts = np.full(slots.shape[0], -1, dtype=np.int64)
    for c in range(slots.shape[0]):
        item = words[offsets[slots[c]] : offsets[slots[c] + 1]]
        k = item.shape[0]
        if k == 0 or k > q:
            continue
        for i in range(q - k + 1):
            _, mean = _start_worst(item, query, i, bits, gamma)
            if mean >= 0.0 and (means[c] < 0.0 or mean < means[c]):
                means[c], starts[c] = mean, i
    return means, starts


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
    """Steps 1–7 for one pair (query in item): (matched, mean distance of the match, span
    ``(start, end)``)."""
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
    """(Q, N) float64 matrix of sliding distances between variable-length group sequences.

    ``statistic="mean"``: smallest final mean over starts (ranking of the validation mAP);
    ``"minimax"``: the decision distance (matches at γ iff ``≤ γ``, see the module docstring).
    ``symmetric``: slide the shorter sequence over the longer (``direction="symmetric"``);
    False slides every query over the item (``"query_in_item"``).
    """
    if statistic not in ("mean", "minimax"):
        raise ValueError(f"statistic must be 'mean' or 'minimax', not {statistic!r}")
    qw, qoff = _concat(queries)
    dw, doff = _concat(database)
    return _pairwise(qw, qoff, dw, doff, symmetric, bits, statistic == "minimax")


def decision_distances(queries: Sequence[np.ndarray], database: Sequence[np.ndarray],
                       direction: str = DEFAULT_DIRECTION, bits: int = GROUP_BITS) -> np.ndarray:
    """(Q, N) float64 decision distances (paper C §4.4 steps 1–7 in threshold-free form) in the
    given ``direction``; :data:`NO_ALIGNMENT` where no alignment exists."""
    symmetric = check_direction(direction) == "symmetric"
    return pairwise_sliding_distance(queries, database, symmetric=symmetric, bits=bits, statistic="minimax")


def aligned_pairs(queries: Sequence[np.ndarray], database: Sequence[np.ndarray],
                  direction: str = DEFAULT_DIRECTION) -> np.ndarray:
    """(Q, N) bool: an alignment exists — both sequences non-empty and, for ``query_in_item``,
    the item has at least as many groups as the query (step 2)."""
    check_direction(direction)
    ql = np.array([len(as_words(s)) for s in queries], dtype=np.int64)[:, None]
    dl = np.array([len(as_words(s)) for s in database], dtype=np.int64)[None, :]
    ok = (ql > 0) & (dl > 0)
    return ok & (dl >= ql) if direction == "query_in_item" else ok


def sliding_decisions(queries: Sequence[np.ndarray], database: Sequence[np.ndarray], gamma: float,
                      direction: str = DEFAULT_DIRECTION, distances: np.ndarray | None = None,
                      bits: int = GROUP_BITS) -> np.ndarray:
    """THE paper-C decision: (Q, N) bool, item n matches query q at threshold γ.

    ``aligned & (decision distance ≤ γ)`` in float64 — step 6 fails only when ``d̄ > γ``, so a
    pair exactly on the boundary matches.  ``distances``: the float64 :func:`decision_distances`
    of the same pairs and direction, when already computed.  The evaluation
    (:meth:`speechret.evaluate.systems.HashSystem.retrieved`) and ``search.py``
    (:meth:`speechret.search.keyword.KeywordMatcher.full_speech`) return exactly this set."""
    d = decision_distances(queries, database, direction, bits) if distances is None else np.asarray(distances)
    if d.dtype != np.float64:
        raise ValueError(f"decision distances must be float64 (float32 moves pairs across γ), got {d.dtype}")
    return aligned_pairs(queries, database, direction) & (d <= float(gamma))

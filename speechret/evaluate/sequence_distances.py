"""Sequence distances of the classic query-by-example baselines (:mod:`speechret.evaluate.baselines`).

DTW over feature sequences ``(frames, dims)`` — :func:`dtw_distance`, :func:`subsequence_dtw_distance`,
:func:`pairwise_dtw` — and edit distances over label sequences — :func:`levenshtein`,
:func:`substring_edit_distance`, :func:`pairwise_edit_distance`.  ``mode="full"`` compares whole
sequences; ``mode="keyword"`` the best match of the whole query against any stretch of the item.

DTW frame distance: cosine distance ``1 − cos`` (clipped at 0; a frame of zero norm is at distance
1 from everything) by default, Euclidean with ``metric="euclidean"`` (unbounded, but comparable
across pairs).

* full mode: classic symmetric DTW (Sakoe & Chiba's *symmetric* step pattern: steps
  ``(i−1, j)`` and ``(i, j−1)`` weigh the local cost once, the diagonal ``(i−1, j−1)`` twice,
  the first cell twice).  Every path then carries total weight ``n + m``, so the accumulated
  cost divided by ``n + m`` is a weighted *average* of frame distances along the best path
  (0 for identical or merely time-warped sequences, ≈ 1 for unrelated ones with the cosine
  metric) — comparable between pairs of any lengths, and exactly symmetric.  Optional
  Sakoe–Chiba band ``band`` (fraction of the longer length): cells with
  ``|i − j| > max(ceil(band · max(n, m)), |n − m|)`` are forbidden (widened to ``|n − m|`` so
  a path always exists).
* keyword mode: subsequence DTW — the query must be matched entirely, start and end in the
  item are free (first row = local cost of every item frame, answer = best cell of the last
  row).  Steps ``(i−1, j−1)``, ``(i−1, j)``, ``(i, j−1)`` with unit weights; the score is
  normalized by the *path length* (number of matched cell pairs), with the predecessor of each
  cell chosen by the normalized score (local decision; Anguera & Ferrarons 2013, the
  usual QbE-STD S-DTW of the MediaEval evaluations).  The result is the average frame distance
  along the chosen path, so a query embedded in, or time-stretched inside, the item scores ≈ 0
  whatever its length.  (Normalizing by the query length instead would penalize slower
  renditions; path-length normalization is the standard choice for spoken term detection.)

Edit distances over label sequences:

* full mode: Levenshtein distance / ``max(len a, len b)`` (in [0, 1]);
* keyword mode: approximate substring matching (Sellers 1980: the smallest edit distance
  between the query and *any* substring of the item, i.e. free start and end in the item)
  / ``len(query)`` — in [0, 1] without clipping, since the empty substring costs ``len(query)``.

Empty sequences (no frames / no recognised label) are at distance **1.0** from everything (the
"unrelated" end of the cosine-DTW and normalized edit-distance scales), finite so that thresholds
and ranking still work.

All kernels are ``numba.njit(cache=True)`` loops; the pairwise drivers run over the flattened
``Q × N`` pairs with ``numba.prange`` on concatenated arrays with offsets (the style of
:mod:`speechret.hashing.sliding`).  DTW never materializes a cost matrix (two rows per pair).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

__all__ = [
    "dtw_distance",
    "subsequence_dtw_distance",
    "pairwise_dtw",
    "levenshtein",
    "substring_edit_distance",
    "pairwise_edit_distance",
]

_METRICS = {"cosine": 0, "euclidean": 1}
_MODES = {"full": 0, "keyword": 1}
_EMPTY = 1.0  # distance of/to an empty sequence


def _mode_code(mode: str) -> int:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {sorted(_MODES)}, not {mode!r}")
    return _MODES[mode]


def _metric_code(metric: str) -> int:
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {sorted(_METRICS)}, not {metric!r}")
    return _METRICS[metric]


# ----------------------------------------------------------------------------------------------
# DTW kernels
# ----------------------------------------------------------------------------------------------


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _local(x, i, y, j, metric):
    """Frame distance between rows ``x[i]`` and ``y[j]`` of float64 arrays prepared by
    :func:`_prepare` (cosine: unit rows, so ``1 − x·y``, clipped at 0; a zero row gives 1)."""
    acc = 0.0
    if metric == 0:
        for k in range(x.shape[1]):
            acc += x[i, k] * y[j, k]
        d = 1.0 - acc
        return d if d > 0.0 else 0.0
    for k in range(x.shape[1]):
        t = x[i, k] - y[j, k]
        acc += t * t
    return math.sqrt(acc)


@numba.njit(cache=True)
def _prepare(x, metric):
    """float64 copy of a float32 ``(frames, dims)`` slice; rows scaled to unit norm for cosine
    (a zero row stays zero: cosine distance 1 to everything)."""
    n, dim = x.shape
    out = np.empty((n, dim), dtype=np.float64)
    for i in range(n):
        ss = 0.0
        for k in range(dim):
            v = np.float64(x[i, k])
            out[i, k] = v
            ss += v * v
        if metric == 0:
            inv = 1.0 / math.sqrt(ss) if ss > 0.0 else 0.0
            for k in range(dim):
                out[i, k] *= inv
    return out


@numba.njit(cache=True)
def _dtw_full(x, y, metric, band):
    """Symmetric DTW (diagonal weight 2) normalized by n + m; ``band < 0``: no band."""
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return 1.0
    inf = np.inf
    if band < 0.0:
        w = n + m
    else:
        w = max(int(math.ceil(band * max(n, m))), abs(n - m))
    prev = np.full(m, inf)
    cur = np.full(m, inf)
    # row 0: only horizontal steps from the first cell (weight 2)
    hi = min(m - 1, w)
    prev[0] = 2.0 * _local(x, 0, y, 0, metric)
    for j in range(1, hi + 1):
        prev[j] = prev[j - 1] + _local(x, 0, y, j, metric)
    for i in range(1, n):
        lo = max(0, i - w)
        hi = min(m - 1, i + w)
        if lo > 0:
            cur[lo - 1] = inf  # left of the band: read as cur[j - 1] (stale cells further left are never read)
        if lo == 0:
            cur[0] = prev[0] + _local(x, i, y, 0, metric)  # first column: vertical steps only
            lo = 1
        for j in range(lo, hi + 1):
            d = _local(x, i, y, j, metric)
            best = prev[j - 1] + 2.0 * d
            v = prev[j] + d
            if v < best:
                best = v
            v = cur[j - 1] + d
            if v < best:
                best = v
            cur[j] = best
        if hi + 1 < m:
            cur[hi + 1] = inf  # right of the band: read as prev[hi + 1] by the next row
        prev, cur = cur, prev
    return prev[m - 1] / (n + m)


@numba.njit(cache=True)
def _dtw_sub(x, y, metric):
    """Subsequence DTW of query ``x`` in item ``y``: mean frame distance along the best path
    (free start/end in ``y``, predecessor chosen by the length-normalized score)."""
    n, m = x.shape[0], y.shape[0]
    if n == 0 or m == 0:
        return 1.0
    pc = np.empty(m)
    pl = np.empty(m)
    cc = np.empty(m)
    cl = np.empty(m)
    for j in range(m):
        pc[j] = _local(x, 0, y, j, metric)
        pl[j] = 1.0
    for i in range(1, n):
        for j in range(m):
            d = _local(x, i, y, j, metric)
            # vertical (i-1, j) always exists
            bc = pc[j] + d
            bl = pl[j] + 1.0
            if j > 0:
                c = pc[j - 1] + d  # diagonal
                ln = pl[j - 1] + 1.0
                if c / ln < bc / bl:
                    bc, bl = c, ln
                c = cc[j - 1] + d  # horizontal
                ln = cl[j - 1] + 1.0
                if c / ln < bc / bl:
                    bc, bl = c, ln
            cc[j] = bc
            cl[j] = bl
        pc, cc = cc, pc
        pl, cl = cl, pl
    best = np.inf
    for j in range(m):
        v = pc[j] / pl[j]
        if v < best:
            best = v
    return best


@numba.njit(cache=True, parallel=True)
def _pairwise_dtw(qf, qoff, df, doff, mode, metric, band):
    nq, nd = qoff.shape[0] - 1, doff.shape[0] - 1
    out = np.empty((nq, nd), dtype=np.float64)
    for p in numba.prange(nq * nd):
        a = p // nd
        b = p - a * nd
        x = _prepare(qf[qoff[a] : qoff[a + 1]], metric)
        y = _prepare(df[doff[b] : doff[b + 1]], metric)
        if mode == 0:
            out[a, b] = _dtw_full(x, y, metric, band)
        else:
            out[a, b] = _dtw_sub(x, y, metric)
    return out


def _as_frames(x: Any, dim: int | None = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1 and a.size == 0:
        a = a.reshape(0, dim or 0)
    if a.ndim != 2:
        raise ValueError(f"expected a (frames, dims) feature array, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _concat_frames(seqs: Sequence[Any], dim: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated float32 frames ``(sum of lengths, dims)`` and offsets ``(len + 1,)``; empty
    sequences take the common width (or ``dim`` when all are empty)."""
    arrs = [_as_frames(s) for s in seqs]
    dims = {a.shape[1] for a in arrs if a.shape[0] > 0}
    if len(dims) > 1:
        raise ValueError(f"feature sequences have different dimensions: {sorted(dims)}")
    width = dims.pop() if dims else (dim or 1)
    arrs = [a if a.shape[0] > 0 else np.zeros((0, width), np.float32) for a in arrs]
    off = np.zeros(len(arrs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([a.shape[0] for a in arrs])
    flat = np.concatenate(arrs) if arrs else np.zeros((0, width), np.float32)
    return np.ascontiguousarray(flat, dtype=np.float32), off


def _two_sides(a: Sequence[Any], b: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    af, aoff = _concat_frames(a)
    bf, boff = _concat_frames(b, dim=af.shape[1] if af.shape[0] else None)
    if af.shape[0] == 0 and bf.shape[1] != af.shape[1]:
        af = np.zeros((0, bf.shape[1]), np.float32)
    if af.shape[1] != bf.shape[1]:
        raise ValueError(f"feature dimensions differ: {af.shape[1]} vs {bf.shape[1]}")
    return af, aoff, bf, boff


def _band(band: float | None) -> float:
    if band is None:
        return -1.0
    if band < 0:
        raise ValueError(f"band must be a non-negative fraction or None, not {band}")
    return float(band)


def dtw_distance(x: Any, y: Any, metric: str = "cosine", band: float | None = None) -> float:
    """Full symmetric DTW between two ``(frames, dims)`` sequences, normalized by ``n + m``."""
    k = _metric_code(metric)
    xf, _, yf, _ = _two_sides([x], [y])
    return float(_dtw_full(_prepare(xf, k), _prepare(yf, k), k, _band(band)))


def subsequence_dtw_distance(query: Any, item: Any, metric: str = "cosine") -> float:
    """Subsequence DTW: the whole ``query`` against its best-matching stretch of ``item``
    (mean frame distance along the path)."""
    k = _metric_code(metric)
    xf, _, yf, _ = _two_sides([query], [item])
    return float(_dtw_sub(_prepare(xf, k), _prepare(yf, k), k))


def pairwise_dtw(
    queries: Sequence[Any], database: Sequence[Any], mode: str = "full", metric: str = "cosine",
    band: float | None = None,
) -> np.ndarray:
    """(Q, N) DTW distances (``mode="full"``: :func:`dtw_distance`; ``"keyword"``:
    :func:`subsequence_dtw_distance`), parallel over pairs."""
    m, k = _mode_code(mode), _metric_code(metric)
    qf, qoff, df, doff = _two_sides(queries, database)
    return _pairwise_dtw(qf, qoff, df, doff, m, k, _band(band))


# ----------------------------------------------------------------------------------------------
# edit-distance kernels
# ----------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _edit(q, s, free):
    """Levenshtein DP of ``q`` against ``s``; ``free``: Sellers' variant — the match may start and
    end anywhere in ``s`` (row 0 all zeros, answer = min of the last row) = min over substrings."""
    n, m = q.shape[0], s.shape[0]
    prev = np.zeros(m + 1, dtype=np.int64) if free else np.arange(m + 1).astype(np.int64)
    cur = np.empty(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        cur[0] = i
        for j in range(1, m + 1):
            v = prev[j - 1] + (0 if q[i - 1] == s[j - 1] else 1)
            if prev[j] + 1 < v:
                v = prev[j] + 1
            if cur[j - 1] + 1 < v:
                v = cur[j - 1] + 1
            cur[j] = v
        prev, cur = cur, prev
    if not free:
        return prev[m]
    return prev.min()


@numba.njit(cache=True)
def _levenshtein(a, b):
    return _edit(a, b, False)


@numba.njit(cache=True)
def _sellers(q, s):
    """min over substrings t of s of lev(q, t) (free start and end in s)."""
    return _edit(q, s, True)


@numba.njit(cache=True, inline="always")
def _edit_pair(a, b, mode):
    n, m = a.shape[0], b.shape[0]
    if mode == 0:
        if n == 0 or m == 0:
            return 1.0
        return _levenshtein(a, b) / max(n, m)
    if n == 0:
        return 1.0
    return _sellers(a, b) / n


@numba.njit(cache=True, parallel=True)
def _pairwise_edit(ql, qoff, dl, doff, mode):
    nq, nd = qoff.shape[0] - 1, doff.shape[0] - 1
    out = np.empty((nq, nd), dtype=np.float64)
    for p in numba.prange(nq * nd):
        a = p // nd
        b = p - a * nd
        out[a, b] = _edit_pair(ql[qoff[a] : qoff[a + 1]], dl[doff[b] : doff[b + 1]], mode)
    return out


def _as_labels(x: Any) -> np.ndarray:
    a = np.asarray(list(x) if not isinstance(x, np.ndarray) else x).astype(np.int64).ravel()
    return np.ascontiguousarray(a)


def _concat_labels(seqs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    arrs = [_as_labels(s) for s in seqs]
    off = np.zeros(len(arrs) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(a) for a in arrs])
    flat = np.concatenate(arrs) if arrs else np.zeros(0, np.int64)
    return np.ascontiguousarray(flat, dtype=np.int64), off


def levenshtein(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance (unit insertion, deletion and substitution costs)."""
    return int(_levenshtein(_as_labels(a), _as_labels(b)))


def substring_edit_distance(query: Sequence[int], item: Sequence[int]) -> int:
    """Sellers' approximate substring matching: min over substrings ``t`` of ``item`` of
    ``levenshtein(query, t)`` (0 when ``query`` occurs in ``item``)."""
    return int(_sellers(_as_labels(query), _as_labels(item)))


def pairwise_edit_distance(queries: Sequence[Sequence[int]], database: Sequence[Sequence[int]],
                           mode: str = "full") -> np.ndarray:
    """(Q, N) normalized edit distances: ``"full"``: Levenshtein / max length; ``"keyword"``:
    Sellers' substring distance / query length; 1.0 for empty sequences."""
    m = _mode_code(mode)
    ql, qoff = _concat_labels(queries)
    dl, doff = _concat_labels(database)
    return _pairwise_edit(ql, qoff, dl, doff, m)

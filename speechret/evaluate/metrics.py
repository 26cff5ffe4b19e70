"""Retrieval metrics.

mAP over a Hamming ranking — paper B (001) §V-C, eq. (17)–(18)::

    AP(q) = Σ_k P(k)·rel(k) / m,      MAP = Σ_q AP(q) / Q

with n database items ranked by ascending distance, ``m`` the number of relevant items, ``P(k)``
the precision of the top k.  Ties: the ranking is a *stable* sort by distance, so items at equal
distance keep database order.  That makes AP depend on the order of tied items; with
``ties="mean"`` (the default) AP is instead the expectation over all orderings of each tie group,
computed exactly (the standard "tie-aware" AP of McSherry & Najork, 2008), so a code with many
collisions is not rewarded or punished by the database order.  Queries with no relevant item are
left out of the mean (and counted in ``n_queries_without_relevant``).
"""

from __future__ import annotations

import numpy as np


def average_precision(distances: np.ndarray, relevant: np.ndarray, ties: str = "mean") -> float:
    """AP of one query (eq. 17) over ``distances`` (n,) with boolean ``relevant`` (n,).

    ``ties="stable"``: ties keep database order; ``ties="mean"``: exact expected AP over random
    orderings within each group of equal distance.
    """
    distances = np.asarray(distances, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    m = int(relevant.sum())
    if m == 0:
        return float("nan")
    order = np.argsort(distances, kind="stable")
    d, r = distances[order], relevant[order]
    if ties == "stable":
        ranks = np.flatnonzero(r) + 1
        return float(np.mean(np.arange(1, m + 1) / ranks))
    if ties != "mean":
        raise ValueError(f"ties must be 'mean' or 'stable', not {ties!r}")
    # Tie-aware AP: for a tie group covering ranks (a+1 .. a+g) with t relevant items and c
    # relevant items ranked before it, the expected contribution is
    #   Σ_{i=1..t} E[(c+i)/rank_i] computed by the closed form of McSherry & Najork.
    _, starts, counts = np.unique(d, return_index=True, return_counts=True)
    total = 0.0
    c = 0
    for a, g in zip(starts, counts):
        t = int(r[a : a + g].sum())
        if t == 0:
            continue
        # E[ Σ_{j in group, relevant} prec@rank_j ], ranks uniformly placed among g slots.
        # = Σ_{k=1..g} P(slot k relevant) * E[(c + #relevant in slots 1..k) / (a+k) | slot k relevant]
        k = np.arange(1, g + 1)
        exp_rel_before = (k - 1) * (t - 1) / (g - 1) if g > 1 else np.zeros_like(k, dtype=float)
        total += float(np.sum((t / g) * (c + 1 + exp_rel_before) / (a + k)))
        c += t
    return total / m


def mean_average_precision(
    distances: np.ndarray,
    relevant: np.ndarray,
    ties: str = "mean",
    exclude: np.ndarray | None = None,
) -> dict[str, float]:
    """mAP (eq. 18) for a (Q, n) distance matrix and (Q, n) relevance matrix.

    ``exclude`` (Q, n) boolean marks pairs that are not ranked at all (e.g. the query itself when
    queries are drawn from the database).
    """
    distances = np.asarray(distances, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if distances.shape != relevant.shape:
        raise ValueError(f"distances {distances.shape} and relevance {relevant.shape} differ")
    aps = []
    for q in range(distances.shape[0]):
        keep = slice(None) if exclude is None else ~np.asarray(exclude[q], dtype=bool)
        aps.append(average_precision(distances[q][keep], relevant[q][keep], ties=ties))
    aps_arr = np.array(aps, dtype=np.float64)
    valid = ~np.isnan(aps_arr)
    return {
        "map": float(aps_arr[valid].mean()) if valid.any() else float("nan"),
        "n_queries": int(valid.sum()),
        "n_queries_without_relevant": int((~valid).sum()),
    }


def label_relevance(query_labels: np.ndarray, db_labels: np.ndarray) -> np.ndarray:
    """Relevance = same content label (labels < 0 are never relevant)."""
    q = np.asarray(query_labels)[:, None]
    d = np.asarray(db_labels)[None, :]
    return (q == d) & (q >= 0)


def edit_distance(a, b) -> int:
    """Levenshtein distance between two label sequences (for the pronunciation error rate)."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]

"""Retrieval metrics, each citing the equation it implements.

* mAP over a distance ranking — paper B eq. (17)–(18), paper A eq. (11)–(12) (below).
* Precision, recall, F1 at a distance threshold — paper A eq. (14)–(15), paper B eq. (19)–(21):
  :func:`precision_recall_f1`, :func:`pr_curve`, :func:`choose_threshold`.
* FAR of the normal fit of inter-class BER — paper A eq. (13): :func:`far_normal`,
  :func:`ber_statistics` (with the De Moivre–Laplace theory N(p, sqrt(p(1−p)/N)) of §5.2).

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

import math
from collections.abc import Sequence

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


def average_precisions(
    distances: np.ndarray,
    relevant: np.ndarray,
    ties: str = "mean",
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Per-query AP (eq. 17), NaN for a query without relevant item; ``exclude`` as below."""
    distances = np.asarray(distances, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if distances.shape != relevant.shape:
        raise ValueError(f"distances {distances.shape} and relevance {relevant.shape} differ")
    aps = []
    for q in range(distances.shape[0]):
        keep = slice(None) if exclude is None else ~np.asarray(exclude[q], dtype=bool)
        aps.append(average_precision(distances[q][keep], relevant[q][keep], ties=ties))
    return np.array(aps, dtype=np.float64)


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
    aps_arr = average_precisions(distances, relevant, ties=ties, exclude=exclude)
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


def cross_speaker_relevance(query_labels: np.ndarray, db_labels: np.ndarray, query_speakers: np.ndarray,
                            db_speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``cross_speaker`` rule (paper C Tables 1, 2, 5): ``(relevant, same_speaker, same_label)``
    with relevant = same content label by another speaker; ``same_speaker`` pairs are the ones the
    protocol leaves out of the ranking."""
    same_lab = label_relevance(query_labels, db_labels)
    same_spk = np.asarray(query_speakers)[:, None] == np.asarray(db_speakers)[None, :]
    return same_lab & ~same_spk, same_spk, same_lab


def nearest_shares(distances: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """``(Q, n)`` weights of each query's nearest items: ``1/m`` for each of the ``m`` items at the
    query's smallest distance, 0 elsewhere -- the expected count of a random tie-break, so that a
    confusion read off the nearest neighbour does not depend on database order (the same concern as
    ``ties="mean"`` above: codes trained toward hash centres often sit *exactly* on them, and then
    a first-index ``argmin`` names whichever tied item comes first).  ``exclude`` ``(Q, n)`` marks
    pairs never counted; a query with every pair excluded gets a zero row."""
    d = np.asarray(distances, dtype=np.float64)
    if exclude is not None:
        if np.shape(exclude) != d.shape:
            raise ValueError(f"exclude {np.shape(exclude)} and distances {d.shape} differ")
        d = np.where(np.asarray(exclude, dtype=bool), np.inf, d)
    with np.errstate(invalid="ignore"):
        at_min = (d == d.min(axis=1, keepdims=True)) & np.isfinite(d)
    return at_min / np.maximum(at_min.sum(axis=1, keepdims=True), 1)


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


# --------------------------------------------------------------------------------------------
# threshold retrieval: precision, recall, F1 (paper A eq. 14–15, paper B eq. 19–21)
# --------------------------------------------------------------------------------------------


def _valid_mask(shape: tuple[int, ...], exclude: np.ndarray | None) -> np.ndarray:
    return np.ones(shape, dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)


def retrieval_counts(distances: np.ndarray, relevant: np.ndarray, threshold: float,
                     exclude: np.ndarray | None = None, strict: bool = True) -> dict[str, np.ndarray]:
    """Per-query counts of threshold retrieval: an item is *retrieved* iff ``d < T``
    (``strict``, paper A §5.3 "D(hx, hq) < T", paper B §IV-F "less than the set threshold τ")
    or ``d ≤ T`` (paper C §4.4 step 3: a match fails when ``d̄ > γ``).

    Returns ``tp``, ``fp``, ``fn`` arrays of shape (Q,): f_T, f_F, f_L of paper A eq. (14)–(15)
    and TP, FP, FN of paper B eq. (19)–(20).  Excluded pairs count nowhere.
    """
    d = np.asarray(distances, dtype=np.float64)
    r = np.asarray(relevant, dtype=bool)
    if d.shape != r.shape:
        raise ValueError(f"distances {d.shape} and relevance {r.shape} differ")
    valid = _valid_mask(d.shape, exclude)
    got = (d < threshold) if strict else (d <= threshold)
    got &= valid
    rv = r & valid
    return {
        "tp": (got & rv).sum(axis=1),
        "fp": (got & ~rv).sum(axis=1),
        "fn": (~got & rv).sum(axis=1),
    }


def prf_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 from per-query counts.

    * ``precision`` / ``recall`` are *pooled* (micro) over all queries: P = ΣTP / (ΣTP + ΣFP),
      R = ΣTP / (ΣTP + ΣFN) — paper C counts this way (§5.2: "TP + FN is 13,351").
    * ``f1`` = 2PR / (P + R) of these (paper B eq. 21).
    * ``macro_precision`` = mean over queries that retrieved anything of TP / (TP + FP): paper C's
      "Ap, the average precision of all retrieval" (Tables 1–5);  ``macro_recall`` = mean over
      queries with a relevant item of TP / (TP + FN).

    Undefined ratios (nothing retrieved, nothing relevant) are NaN, never silently 0 or 1.
    """
    tp, fp, fn = (np.asarray(x, dtype=np.int64) for x in (tp, fp, fn))
    stp, sfp, sfn = int(tp.sum()), int(fp.sum()), int(fn.sum())
    p = stp / (stp + sfp) if stp + sfp else float("nan")
    r = stp / (stp + sfn) if stp + sfn else float("nan")
    f1 = 2 * p * r / (p + r) if (p + r) > 0 else (0.0 if stp + sfp and stp + sfn else float("nan"))
    ret, rel = tp + fp, tp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        qp = np.where(ret > 0, tp / np.maximum(ret, 1), np.nan)
        qr = np.where(rel > 0, tp / np.maximum(rel, 1), np.nan)
    return {
        "precision": float(p), "recall": float(r), "f1": float(f1),
        "macro_precision": float(np.nanmean(qp)) if np.isfinite(qp).any() else float("nan"),
        "macro_recall": float(np.nanmean(qr)) if np.isfinite(qr).any() else float("nan"),
        "tp": stp, "fp": sfp, "fn": sfn,
        "queries_retrieving": int((ret > 0).sum()),
    }


def precision_recall_f1(distances: np.ndarray, relevant: np.ndarray, threshold: float,
                        exclude: np.ndarray | None = None, strict: bool = True) -> dict[str, float]:
    """P (eq. 15 / 20), R (eq. 14 / 19) and F1 (eq. 21) of threshold retrieval; see
    :func:`retrieval_counts` and :func:`prf_from_counts`."""
    c = retrieval_counts(distances, relevant, threshold, exclude, strict)
    return prf_from_counts(c["tp"], c["fp"], c["fn"])


def _sorted_pairs(distances: np.ndarray, relevant: np.ndarray,
                  exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(distances, dtype=np.float64)
    r = np.asarray(relevant, dtype=bool)
    valid = _valid_mask(d.shape, exclude)
    d, r = d[valid], r[valid]
    order = np.argsort(d, kind="stable")
    return d[order], r[order]


def pr_curve(distances: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
             thresholds: Sequence[float] | np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Pooled precision–recall curve over thresholds (paper A Fig. 8), retrieval ``d < T``.

    ``thresholds=None``: one point per distinct distance (the cut just above it), i.e. every
    operating point the data allows.  Returns ``threshold``, ``precision``, ``recall``, ``f1``.
    """
    d, r = _sorted_pairs(distances, relevant, exclude)
    n_rel = int(r.sum())
    ctp = np.concatenate([[0], np.cumsum(r)])
    if thresholds is None:
        ends = np.flatnonzero(np.r_[d[1:] != d[:-1], True]) + 1  # retrieve d[:end]
        t = (np.r_[(d[ends[:-1] - 1] + d[ends[:-1]]) / 2, np.nextafter(d[-1], np.inf)]
             if len(d) else np.zeros(0))
    else:
        t = np.asarray(thresholds, dtype=np.float64)
        ends = np.searchsorted(d, t, side="left")  # number of pairs with d < T
    tp = ctp[ends].astype(np.float64)
    n = np.asarray(ends, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n > 0, tp / np.maximum(n, 1), np.nan)
        recall = tp / n_rel if n_rel else np.full_like(tp, np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {"threshold": np.asarray(t, dtype=np.float64), "precision": precision, "recall": recall, "f1": f1}


def choose_threshold(distances: np.ndarray, relevant: np.ndarray, exclude: np.ndarray | None = None,
                     criterion: str = "f1", max_threshold: float | None = None,
                     min_precision: float = 0.95) -> dict[str, float]:
    """Threshold that maximises pooled F1 (``criterion="f1"``) on the given (validation) pairs.

    Candidates are the midpoints between consecutive distinct distances (plus one above the
    largest), so the choice does not depend on whether retrieval is ``<`` or ``≤``; ties in F1
    go to the smallest threshold (fewest false accepts).  ``criterion="eer"`` instead balances
    precision and recall.  ``criterion="precision"`` is an operating point with a precision floor:
    the threshold of the highest recall whose pooled precision is at least ``min_precision`` (ties
    to the smallest threshold), as a target such as "recall at precision ≥ 0.95" asks; when no
    candidate reaches the floor, the one of the highest precision (then highest recall), and
    ``met`` is 0.  ``max_threshold`` bounds the candidates (papers A and B: the BER
    threshold lies in (0, 0.5), paper A §5.3, paper B §IV-F; for paper B's two-stage distance it
    also keeps retrieval inside the query's category).  Never call this on the evaluation set
    (issue: thresholds come from the validation split of the training data).
    """
    c = pr_curve(distances, relevant, exclude)
    if not len(c["threshold"]) or not np.isfinite(c["recall"]).any():
        raise ValueError("cannot choose a threshold: no relevant pair in the selection data")
    if max_threshold is not None:  # the candidates within the bound, and the bound itself
        t = np.r_[c["threshold"][c["threshold"] <= max_threshold], max_threshold]
        c = pr_curve(distances, relevant, exclude, thresholds=np.unique(t))
    if criterion == "f1":
        k = int(np.nanargmax(c["f1"]))
    elif criterion == "eer":
        k = int(np.nanargmin(np.abs(c["precision"] - c["recall"])))
    elif criterion == "precision":
        if not 0.0 < min_precision <= 1.0:
            raise ValueError(f"min_precision must lie in (0, 1], got {min_precision}")
        prec = np.nan_to_num(c["precision"], nan=-1.0)
        rec = np.nan_to_num(c["recall"], nan=-1.0)
        ok = prec >= min_precision
        pool = np.flatnonzero(ok) if ok.any() else np.flatnonzero(prec == prec.max())
        k = int(pool[np.argmax(rec[pool])])  # candidates ascend: argmax's first is the smallest threshold
    else:
        raise ValueError(f"criterion must be 'f1', 'eer' or 'precision', not {criterion!r}")
    out = {"threshold": float(c["threshold"][k]), "precision": float(c["precision"][k]),
           "recall": float(c["recall"][k]), "f1": float(c["f1"][k]), "n_pairs": int(len(_sorted_pairs(
               distances, relevant, exclude)[0]))}
    if criterion == "precision":
        out["met"] = float(ok.any())
    return out


# --------------------------------------------------------------------------------------------
# BER statistics and FAR (paper A §5.2, eq. 13, Fig. 7, Table 3)
# --------------------------------------------------------------------------------------------


def far_normal(tau: float | Sequence[float], mu: float, sigma: float) -> np.ndarray:
    """False accept rate of paper A eq. (13): the probability that the BER of two *different*
    speeches, modelled as N(μ, σ²), falls below the threshold τ::

        FAR(τ) = ∫_{−∞}^{τ} 1/(σ√(2π)) · exp(−(x − μ)² / (2σ²)) dx = ½ · erfc((μ − τ) / (σ√2))

    computed with ``math.erfc`` so the far tail (1e-40 and below) keeps full relative precision.
    """
    if not (sigma > 0 and math.isfinite(sigma) and math.isfinite(mu)):
        raise ValueError(f"FAR needs a finite μ and σ > 0, got μ={mu}, σ={sigma}")
    taus = np.atleast_1d(np.asarray(tau, dtype=np.float64))
    return np.array([0.5 * math.erfc((mu - t) / (sigma * math.sqrt(2.0))) for t in taus])


def theoretical_ber_normal(n_bits: int, p: float = 0.5) -> tuple[float, float]:
    """De Moivre–Laplace approximation of paper A §5.2: BER ~ N(μ = p, σ = sqrt(p(1 − p)/N))
    for N-bit codes whose bits are independent with P(1) = p (N = 384 → σ = 0.0255)."""
    return float(p), float(math.sqrt(p * (1 - p) / n_bits))


class RunningMoments:
    """Streaming count / mean / variance / min / max and a fixed-bin histogram of values in
    [0, ``upper``] (BER statistics of millions of pairs without keeping them)."""

    def __init__(self, bins: int = 200, upper: float = 1.0) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.min, self.max = math.inf, -math.inf
        self.edges = np.linspace(0.0, upper, bins + 1)
        self.hist = np.zeros(bins, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if not v.size:
            return
        n_b, mean_b = v.size, float(v.mean())
        m2_b = float(((v - mean_b) ** 2).sum())
        delta = mean_b - self.mean
        tot = self.n + n_b
        self.mean += delta * n_b / tot
        self.m2 += m2_b + delta * delta * self.n * n_b / tot
        self.n = tot
        self.min, self.max = min(self.min, float(v.min())), max(self.max, float(v.max()))
        self.hist += np.histogram(np.clip(v, self.edges[0], self.edges[-1]), self.edges)[0]

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else float("nan")

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean if self.n else float("nan"), "std": self.std,
                "min": self.min if self.n else float("nan"), "max": self.max if self.n else float("nan")}


def ber_statistics(values: np.ndarray | RunningMoments, n_bits: int | None = None,
                   taus: Sequence[float] = (0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.14, 0.16)) -> dict[str, float]:
    """Mean / std / min / max of inter-class BER, its normal fit and ``far@τ`` (eq. 13) for the
    τ of paper A Table 3, plus the theoretical N(0.5, sqrt(0.25/N)) when ``n_bits`` is given."""
    mom = values if isinstance(values, RunningMoments) else RunningMoments()
    if not isinstance(values, RunningMoments):
        mom.update(values)
    out = {f"inter_ber_{k}": v for k, v in mom.as_dict().items()}
    if mom.n > 1 and mom.std > 0:
        for t, f in zip(taus, far_normal(taus, mom.mean, mom.std)):
            out[f"far@{t:.2f}"] = float(f)
    if n_bits:
        mu0, s0 = theoretical_ber_normal(n_bits)
        out["theory_ber_mean"], out["theory_ber_std"] = mu0, s0
    return out

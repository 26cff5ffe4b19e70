"""Evaluation metrics against hand-computed cases (paper A eq. 13–15, paper B eq. 17–21)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from speechret import metrics as M
from speechret.hashing.sliding import pairwise_sliding_distance, sliding_match


def test_ap_of_a_known_ranking():
    # ranks 1 and 3 relevant out of 4: AP = (1/1 + 2/3) / 2
    d = np.array([0.1, 0.2, 0.3, 0.4])
    r = np.array([1, 0, 1, 0], bool)
    assert M.average_precision(d, r) == pytest.approx((1 + 2 / 3) / 2)
    # eq. 18: mAP is the mean over queries; a query without relevant item is left out
    D = np.stack([d, d, d])
    R = np.stack([r, ~r, np.zeros(4, bool)])
    out = M.mean_average_precision(D, R)
    ap2 = (1 / 2 + 2 / 4) / 2
    assert out["map"] == pytest.approx(((1 + 2 / 3) / 2 + ap2) / 2)
    assert out["n_queries"] == 2 and out["n_queries_without_relevant"] == 1


def test_tie_aware_ap_is_the_mean_over_orderings():
    rng = np.random.default_rng(0)
    for _ in range(20):
        d = rng.integers(0, 3, 6).astype(float)
        r = rng.random(6) < 0.4
        if not r.any():
            continue
        # brute force: every ordering of each tie group, equally likely
        groups = [np.flatnonzero(d == v) for v in np.unique(d)]
        aps = []
        for perm in itertools.product(*[list(itertools.permutations(g)) for g in groups]):
            order = np.concatenate([np.array(p) for p in perm])
            ranks = np.flatnonzero(r[order]) + 1
            aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        assert M.average_precision(d, r, ties="mean") == pytest.approx(np.mean(aps))


def test_nearest_shares_split_ties_evenly_and_match_random_tie_breaks():
    """Each of the items tied at a query's smallest distance gets 1/m (the mean over every order of
    the tied items of a first-index argmin); excluded pairs never count."""
    d = np.array([[0.0, 0.0, 0.5, 0.0],
                  [0.2, 0.1, 0.1, 0.3],
                  [0.4, 0.4, 0.4, 0.4]])
    exclude = np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool)
    w = M.nearest_shares(d, exclude)
    np.testing.assert_allclose(w, [[0, 0.5, 0, 0.5], [0, 0.5, 0.5, 0], [0, 0, 0, 0]])
    rng = np.random.default_rng(0)
    d = rng.integers(0, 3, (5, 7)).astype(float)  # many ties
    mean_argmin = np.zeros_like(d)
    for perm in itertools.permutations(range(7)):
        p = np.array(perm)
        mean_argmin[np.arange(5), p[d[:, p].argmin(1)]] += 1
    np.testing.assert_allclose(M.nearest_shares(d), mean_argmin / math.factorial(7))
    with pytest.raises(ValueError, match="exclude"):
        M.nearest_shares(d, exclude[:, :2])


def test_precision_recall_f1_of_a_known_confusion():
    # query 0: retrieves 3 relevant + 1 irrelevant, misses 1; query 1: retrieves nothing, misses 1
    d = np.array([[0.1, 0.1, 0.1, 0.1, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9, 0.9, 0.9]])
    r = np.array([[1, 1, 1, 0, 1, 0], [1, 0, 0, 0, 0, 0]], bool)
    out = M.precision_recall_f1(d, r, threshold=0.5)
    assert (out["tp"], out["fp"], out["fn"]) == (3, 1, 2)
    p, rec = 3 / 4, 3 / 5
    assert out["precision"] == pytest.approx(p) and out["recall"] == pytest.approx(rec)
    assert out["f1"] == pytest.approx(2 * p * rec / (p + rec))
    # paper C's Ap: mean precision over the queries that retrieved something (only query 0)
    assert out["macro_precision"] == pytest.approx(0.75)
    assert out["queries_retrieving"] == 1
    # strict "<" vs "<=" at a distance equal to the threshold
    assert M.precision_recall_f1(d, r, 0.1)["tp"] == 0
    assert M.precision_recall_f1(d, r, 0.1, strict=False)["tp"] == 3
    # excluded pairs count nowhere
    exc = np.zeros_like(r)
    exc[0, 3] = True
    assert M.precision_recall_f1(d, r, 0.5, exclude=exc)["fp"] == 0


def test_far_of_paper_a_table_3_and_of_a_standard_normal():
    # paper A §5.2: Log-Mel BER mu=0.4963, sigma=0.0364 -> Table 3 FAR(0.02)=2.00e-39, FAR(0.16)=1.24e-20
    far = M.far_normal([0.02, 0.16], 0.4963, 0.0364)
    assert far[0] == pytest.approx(2.00e-39, rel=5e-3)
    assert far[1] == pytest.approx(1.24e-20, rel=5e-3)
    # MFCC column: mu=0.4977, sigma=0.0339 -> 2.14e-45 at 0.02
    assert M.far_normal(0.02, 0.4977, 0.0339)[0] == pytest.approx(2.14e-45, rel=1e-2)
    assert M.far_normal(0.3, 0.3, 0.05)[0] == pytest.approx(0.5)
    assert M.far_normal(0.25, 0.3, 0.05)[0] == pytest.approx(0.5 * math.erfc(1 / math.sqrt(2)))  # Phi(-1)
    with pytest.raises(ValueError):
        M.far_normal(0.1, 0.5, 0.0)


def test_theoretical_sigma_of_paper_a():
    assert M.theoretical_ber_normal(384)[1] == pytest.approx(0.0255, abs=1e-4)


def test_running_moments_match_numpy_over_chunks():
    rng = np.random.default_rng(1)
    x = rng.normal(0.45, 0.03, 10_001)
    mom = M.RunningMoments()
    for chunk in np.array_split(x, 7):
        mom.update(chunk)
    d = mom.as_dict()
    assert d["n"] == x.size and d["mean"] == pytest.approx(x.mean()) and d["std"] == pytest.approx(x.std(ddof=1))
    assert mom.hist.sum() == x.size
    stats = M.ber_statistics(x, n_bits=384)
    assert stats["inter_ber_mean"] == pytest.approx(x.mean())
    assert stats["far@0.10"] == pytest.approx(M.far_normal(0.10, x.mean(), x.std(ddof=1))[0])


def test_pr_curve_and_threshold_choice_match_brute_force():
    rng = np.random.default_rng(2)
    d = rng.integers(0, 20, (8, 30)) / 20
    r = rng.random((8, 30)) < 0.3
    exc = rng.random((8, 30)) < 0.1
    c = M.pr_curve(d, r, exc)
    for t, p, rec in zip(c["threshold"], c["precision"], c["recall"]):
        ref = M.precision_recall_f1(d, r, t, exc)
        assert p == pytest.approx(ref["precision"], nan_ok=True) and rec == pytest.approx(ref["recall"])
    best = M.choose_threshold(d, r, exc)
    f1s = [M.precision_recall_f1(d, r, t, exc)["f1"] for t in np.linspace(0, 1.05, 400)]
    assert best["f1"] == pytest.approx(np.nanmax(f1s))
    # a midpoint: no distance sits exactly on the chosen threshold
    assert not np.any(np.isclose(d, best["threshold"]))
    with pytest.raises(ValueError):
        M.choose_threshold(d, np.zeros_like(r))


def test_precision_floor_threshold_is_the_best_recall_at_that_precision():
    # brute force over a fine grid: the chosen threshold's recall is the best any threshold reaches
    # with pooled precision >= the floor, and its own precision clears the floor
    rng = np.random.default_rng(5)
    r = rng.random((10, 40)) < 0.3
    d = np.round(np.where(r, rng.uniform(0.0, 0.6, r.shape), rng.uniform(0.2, 1.0, r.shape)) * 40) / 40
    grid = np.linspace(0, 1.05, 800)
    pts = [M.precision_recall_f1(d, r, t) for t in grid]
    for floor in (0.6, 0.8, 0.95):
        c = M.choose_threshold(d, r, criterion="precision", min_precision=floor)
        ok = [p["recall"] for p in pts if np.isfinite(p["precision"]) and p["precision"] >= floor]
        assert c["met"] == 1.0 and c["precision"] >= floor
        assert c["recall"] == pytest.approx(max(ok))
        ref = M.precision_recall_f1(d, r, c["threshold"])
        assert ref["precision"] == pytest.approx(c["precision"]) and ref["recall"] == pytest.approx(c["recall"])
    # the max-F1 point has a lower precision here than the 0.95 floor's, and a higher recall
    f1 = M.choose_threshold(d, r)
    hi = M.choose_threshold(d, r, criterion="precision", min_precision=0.95)
    assert f1["precision"] < 0.95 <= hi["precision"] and f1["recall"] > hi["recall"]
    # no threshold reaches the floor: the most precise one, flagged
    bad = np.ones_like(r)
    bad[:, 0] = False
    dd = np.tile(np.linspace(0, 1, 40), (10, 1))  # the only irrelevant item is the nearest
    c = M.choose_threshold(dd, bad, criterion="precision", min_precision=0.99)
    assert c["met"] == 0.0 and c["precision"] == pytest.approx(np.nanmax(M.pr_curve(dd, bad)["precision"]))
    with pytest.raises(ValueError, match="min_precision"):
        M.choose_threshold(d, r, criterion="precision", min_precision=0.0)


def test_minimax_sliding_distance_is_the_paper_c_decision():
    rng = np.random.default_rng(3)
    qs = [rng.integers(0, 2, (int(rng.integers(1, 4)), 27)) for _ in range(12)]
    ds = [rng.integers(0, 2, (int(rng.integers(2, 9)), 27)) for _ in range(15)]
    D = pairwise_sliding_distance(qs, ds, symmetric=False, statistic="minimax")
    for a, q in enumerate(qs):
        for b, x in enumerate(ds):
            for gamma in np.linspace(0.2, 0.6, 9):
                assert sliding_match(q, x, gamma)[0] == (D[a, b] <= gamma + 1e-12)


def test_threshold_choice_respects_the_papers_bound():
    # the best F1 needs T = 0.7, but papers A/B put T in (0, 0.5): the bounded choice stays below
    d = np.array([[0.1, 0.6, 0.8], [0.2, 0.65, 0.9]])
    r = np.array([[1, 1, 0], [1, 1, 0]], bool)
    assert M.choose_threshold(d, r)["threshold"] == pytest.approx(0.7, abs=0.03)
    bounded = M.choose_threshold(d, r, max_threshold=0.5)
    assert bounded["threshold"] <= 0.5 and bounded["recall"] == pytest.approx(0.5)
    # nothing below the bound (e.g. a degenerate model at distance 1 everywhere): the bound, recall 0
    none = M.choose_threshold(d + 1, r, max_threshold=0.5)
    assert none["threshold"] == 0.5 and none["recall"] == 0.0

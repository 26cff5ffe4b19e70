"""Matchers equal their brute-force numpy references (threshold, top-k, two-stage, keyword)."""

from __future__ import annotations

import numpy as np
import pytest

from speechret.hashing import hamming, pack_bits, pack_groups_27
from speechret.search import index as ix
from speechret.search.keyword import KeywordMatcher, keyword_search_bruteforce
from speechret.search.matchers import (
    ThresholdMatcher,
    TwoStageMatcher,
    max_hamming_below,
    threshold_search,
    threshold_search_bruteforce,
    topk_search,
    topk_search_bruteforce,
    two_stage_bruteforce,
)
from speechret.hashing.sliding import as_words, sliding_match

RNG = np.random.default_rng(1234)


def _codes(n: int, d_bits: int, rng=RNG) -> np.ndarray:
    return pack_bits(rng.random((n, d_bits)) < 0.5)


def _near(db: np.ndarray, n: int, flips: int, d_bits: int, rng=RNG) -> np.ndarray:
    """Queries: copies of random library codes with ``flips`` bits flipped (so hits exist)."""
    bits = np.unpackbits(db[rng.choice(len(db), n)], axis=1, bitorder="little")[:, :d_bits].astype(bool)
    for row in bits:
        row[rng.choice(d_bits, flips, replace=False)] ^= True
    return pack_bits(bits)


def _assert_threshold_equal(got, want):
    assert len(got) == len(want)
    for (gi, gb), (wi, wb) in zip(got, want):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_array_equal(gb, wb)


# --------------------------------------------------------------------------------- index basics
def test_max_hamming_below_is_strict():
    assert max_hamming_below(64, 0.25) == 15  # 16/64 == 0.25 is not < 0.25
    assert max_hamming_below(64, 0.25, strict=False) == 16
    assert max_hamming_below(10, 0.3) == 2  # 3/10 == 0.3 (float: 0.3), not < 0.3
    assert max_hamming_below(64, 0.0) == -1
    assert max_hamming_below(27, 0.25, strict=False) == 6


def test_faiss_range_search_radius_is_strict():
    db = _codes(300, 64)
    index = ix.make_index("flat", db)
    lims, dist, _ = ix.range_search(index, db[:5], 20)
    assert dist.max() < 20
    assert (hamming(db[:5], db) < 20).sum() == lims[-1]


def test_unknown_kind_and_params_raise():
    with pytest.raises(ValueError):
        ix.build_binary_index("lsh", 64)
    with pytest.raises(ValueError):
        ix.build_binary_index("flat", 64, nlist=3)
    with pytest.raises(ValueError):
        ix.build_binary_index("flat", 60)


# ------------------------------------------------------------------------ threshold / top-k
@pytest.mark.parametrize("d_bits", [64, 128, 256])
@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_threshold_and_topk_exact(kind, d_bits):
    n = 3000
    db = _codes(n, d_bits)
    ids = RNG.permutation(10 * n)[:n].astype(np.int64)  # non-contiguous ids
    params = {"nlist": 16, "nprobe": 16} if kind == "ivf" else {}
    index = ix.make_index(kind, db, ids, **params)
    queries = np.concatenate([_near(db, 20, d_bits // 10, d_bits), _codes(5, d_bits)])
    t = 0.42  # random codes: BER ~ 0.5 ± 0.06 at 64 bits -> some true hits among strangers too
    got = threshold_search(index, queries, d_bits, t)
    want = threshold_search_bruteforce(db, ids, queries, d_bits, t)
    _assert_threshold_equal(got, want)
    assert sum(len(g[0]) for g in got) > 20
    for g_ids, g_ber in got:
        assert (g_ber < t).all()

    # top-k: distances always equal; with exact_ties the ids equal the (distance, id) order too
    k = 10
    g_ids, g_ber = topk_search(index, queries, k)
    w_ids, w_ber = topk_search_bruteforce(db, ids, queries, k)
    np.testing.assert_array_equal(g_ber, w_ber)
    for i in range(len(queries)):
        kth = w_ber[i, -1]
        inner = w_ber[i] < kth
        np.testing.assert_array_equal(g_ids[i][inner], w_ids[i][inner])
        tied = set(ids[hamming(queries[i : i + 1], db)[0] == round(kth * d_bits)])
        assert set(g_ids[i][~inner]) <= tied
    e_ids, e_ber = topk_search(index, queries, k, exact_ties=True)
    np.testing.assert_array_equal(e_ids, w_ids)
    np.testing.assert_array_equal(e_ber, w_ber)


@pytest.mark.parametrize("kind", ["flat", "ivf"])
@pytest.mark.parametrize("tie_margin", [0, 3, 16, 200])
def test_topk_exact_ties_beyond_and_within_the_margin(kind, tie_margin):
    """Many codes tied at the k-th distance (more than the margin: the range-search fallback;
    fewer: answered from the one wide search) give the brute force's (distance, id) order."""
    d_bits = 64
    rng = np.random.default_rng(7)
    base = _codes(1, d_bits)
    near = np.unpackbits(base, axis=1).astype(bool).repeat(40, axis=0)
    near[np.arange(40), rng.integers(0, d_bits, 40)] ^= True  # 40 codes at distance 1 (or fewer duplicates)
    db = np.concatenate([pack_bits(near), base.repeat(5, axis=0), _codes(300, d_bits)])
    ids = rng.permutation(10 * len(db))[: len(db)].astype(np.int64)
    params = {"nlist": 4, "nprobe": 4} if kind == "ivf" else {}
    index = ix.make_index(kind, db, ids, **params)
    queries = np.concatenate([base, _codes(3, d_bits)])
    for k in (3, 10, 30):
        got = topk_search(index, queries, k, exact_ties=True, tie_margin=tie_margin)
        want = topk_search_bruteforce(db, ids, queries, k)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_threshold_ties_at_boundary_and_padding():
    # codes at exactly the threshold distance are excluded (strict <), ties sorted by id
    d = 64
    base = np.zeros((1, d), bool)
    rows = []
    for h in [0, 3, 3, 15, 16, 16, 17]:
        r = base.copy()
        r[0, :h] = True
        rows.append(r)
    db = pack_bits(np.concatenate(rows))
    ids = np.array([9, 5, 2, 7, 1, 3, 4], dtype=np.int64)
    index = ix.make_index("flat", db, ids)
    (g_ids, g_ber), = threshold_search(index, pack_bits(base), d, 0.25)
    np.testing.assert_array_equal(g_ids, [9, 2, 5, 7])
    np.testing.assert_array_equal(g_ber, np.array([0, 3, 3, 15]) / d)
    t_ids, t_ber = topk_search(index, pack_bits(base), 10, exact_ties=True)
    np.testing.assert_array_equal(t_ids[0], [9, 2, 5, 7, 1, 3, 4, -1, -1, -1])
    assert np.isinf(t_ber[0, 7:]).all()


def test_non_byte_multiple_code_length():
    d_bits = 100  # padded to 104 bits in the index; BER normalised by 100
    bits = RNG.random((500, d_bits)) < 0.5
    m = ThresholdMatcher(d_bits, ber_threshold=0.4).add_bits(bits)
    q = pack_bits(bits[:7])
    _assert_threshold_equal(m.search(q), threshold_search_bruteforce(pack_bits(bits), np.arange(500), q, d_bits, 0.4))


def test_hnsw_recall():
    d_bits, n = 128, 5000
    db = _codes(n, d_bits)
    ids = np.arange(n, dtype=np.int64)
    index = ix.make_index("hnsw", db, ids, M=16, efConstruction=64, efSearch=128)
    queries = _near(db, 50, 20, d_bits)
    k = 10
    g_ids, g_ber = topk_search(index, queries, k)
    w_ids, w_ber = topk_search_bruteforce(db, ids, queries, k)
    # recall by distance (tie-insensitive): found codes whose distance <= the true k-th distance
    hit = sum(int((g_ber[i] <= w_ber[i, -1]).sum()) for i in range(len(queries)))
    assert hit / (k * len(queries)) >= 0.95
    # threshold via the search-then-filter fallback
    t = 0.3
    got = threshold_search(index, queries, d_bits, t)
    want = threshold_search_bruteforce(db, ids, queries, d_bits, t)
    found = sum(len(np.intersect1d(g[0], w[0])) for g, w in zip(got, want))
    total = sum(len(w[0]) for w in want)
    assert total >= len(queries) and found / total >= 0.95
    for g, w in zip(got, want):
        assert set(g[0]) <= set(w[0])  # no false hits


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_roundtrip(kind, tmp_path):
    d_bits = 64
    db = _codes(2000, d_bits)
    params = {"ivf": {"nlist": 8, "nprobe": 3}, "hnsw": {"efSearch": 32}}.get(kind, {})
    m = ThresholdMatcher(d_bits, 0.4, kind, **params).add(db, np.arange(2000) * 2 + 1)
    queries = _near(db, 10, 6, d_bits)
    before = m.search(queries), m.topk(queries, 5)
    path = m.save(tmp_path / "sub" / f"{kind}.faissb")
    assert path.is_file() and not list(path.parent.glob("*.tmp"))
    m2 = ThresholdMatcher.load(path, d_bits, 0.4)
    assert m2.kind == kind and m2.index.ntotal == 2000
    after = m2.search(queries), m2.topk(queries, 5)
    _assert_threshold_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1][0], before[1][0])
    np.testing.assert_array_equal(after[1][1], before[1][1])


def test_ivf_trains_with_fewer_codes_than_nlist():
    db = _codes(50, 64)
    index = ix.make_index("ivf", db, nlist=256, nprobe=256)
    _assert_threshold_equal(threshold_search(index, db[:3], 64, 0.45),
                            threshold_search_bruteforce(db, np.arange(50), db[:3], 64, 0.45))


# --------------------------------------------------------------------------- paper B two-stage
def _paper_b_codes(n, n_classes, k_bits, rng=RNG):
    cat = rng.integers(0, n_classes, n)
    h1 = np.zeros((n, n_classes), bool)
    h1[np.arange(n), cat] = True
    return np.concatenate([h1, rng.random((n, k_bits)) < 0.5], axis=1), cat


@pytest.mark.parametrize("k_bits", [64, 60])
def test_two_stage_equals_category_restricted_bruteforce(k_bits):
    n_classes, n = 7, 2000
    db, cat = _paper_b_codes(n, n_classes, k_bits)
    ids = np.arange(n, dtype=np.int64) * 3
    m = TwoStageMatcher(n_classes, ber_threshold=0.4).add(db, ids)
    q = db[RNG.choice(n, 15)].copy()
    q[:, n_classes:] ^= RNG.random((15, k_bits)) < 0.1
    q[:3, :n_classes] = np.roll(q[:3, :n_classes], 1, axis=1)  # category changed -> other candidates
    got = m.search(q)
    want = two_stage_bruteforce(db, ids, q, n_classes, ber_threshold=0.4)
    _assert_threshold_equal(got, want)
    qcat = q[:, :n_classes].argmax(1)
    for (g_ids, _), c in zip(got, qcat):
        assert (cat[g_ids // 3] == c).all()
    assert sum(len(g[0]) for g in got) >= 12
    g_ids, g_ber = m.topk(q, 8)
    w_ids, w_ber = two_stage_bruteforce(db, ids, q, n_classes, k=8)
    np.testing.assert_array_equal(g_ids, w_ids)
    np.testing.assert_array_equal(g_ber, w_ber)


def test_two_stage_empty_category():
    db, _ = _paper_b_codes(100, 4, 32)
    db[:, :4] = [True, False, False, False]
    m = TwoStageMatcher(4).add(db)
    q = db[:1].copy()
    q[0, :4] = [False, False, True, False]
    (ids, ber), = m.search(q)
    assert len(ids) == 0
    t_ids, _ = m.topk(q, 3)
    assert (t_ids == -1).all()


# ------------------------------------------------------------------------------ paper C keyword
def _groups(n, rng=RNG):
    return rng.random((n, 27)) < 0.5


def _keyword_library(rng, n_items=150, q=5, plant_every=10, flips=1):
    query = _groups(q, rng)
    items, planted = [], {}
    for i in range(n_items):
        seq = _groups(int(rng.integers(0, 40)), rng)
        if i % plant_every == 0 and len(seq) >= q:
            s = int(rng.integers(0, len(seq) - q + 1))
            noisy = query.copy()
            for row in noisy:
                row[rng.choice(27, flips, replace=False)] ^= True
            seq[s : s + q] = noisy
            planted[i] = s
        items.append(seq)
    return query, items, planted


def test_group_rows_match_pack_groups_27():
    from speechret.search.keyword import _words_to_rows

    g = _groups(20)
    np.testing.assert_array_equal(_words_to_rows(as_words(g)), pack_groups_27(g))


@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.35])
def test_keyword_matcher_equals_bruteforce(gamma):
    rng = np.random.default_rng(7)
    query, items, planted = _keyword_library(rng)
    ids = np.arange(len(items)) + 1000
    m = KeywordMatcher(gamma=gamma).add(items[:70], ids[:70]).add(items[70:], ids[70:])  # two batches
    for mode in ("keyword", "full_speech"):
        got = m.search(query, mode=mode)
        want = keyword_search_bruteforce(items, ids, query, gamma, mode)
        assert [(h.item, h.start, h.end) for h in got] == [(h.item, h.start, h.end) for h in want]
        np.testing.assert_allclose([h.ber for h in got], [h.ber for h in want], rtol=0, atol=1e-12)
        assert got == m.bruteforce(query, mode=mode)
    # planted occurrences (1 flipped bit per group: BER 1/27 < gamma) are found with the right span
    hits = {(h.item, h.start): h for h in m.search(query, mode="keyword")}
    for i, s in planted.items():
        h = hits[(int(ids[i]), s)]
        assert h.end == s + len(query)
        assert abs(h.ber - 1 / 27) < 1e-12
    # full-speech mode agrees with the per-item reference sliding_match
    full = {h.item: h for h in m.full_speech(query)}
    for i, seq in enumerate(items):
        ok, mean, span = sliding_match(query, seq, gamma)
        assert ok == (int(ids[i]) in full)
        if ok:
            h = full[int(ids[i])]
            assert (h.start, h.end) == span and abs(h.ber - mean) < 1e-12
    hit_bers = [h.ber for h in m.search(query)]
    assert hit_bers == sorted(hit_bers)


def test_keyword_prefix_rule_rejects_bad_start():
    # first group exact, second group all wrong: running mean after 2 groups = 0.5 > gamma even
    # though the mean over all q groups would be <= gamma with enough exact groups after it.
    query = _groups(6)
    seq = query.copy()
    seq[1] ^= True  # 27 flips -> d = 1
    # final mean = 1/6 ≈ 0.167 <= 0.2, but prefix mean (0 + 1) / 2 = 0.5 > 0.2
    m = KeywordMatcher(gamma=0.2).add([seq])
    assert m.search(query) == [] == keyword_search_bruteforce([seq], [0], query, 0.2)
    ok, _, _ = sliding_match(query, seq, 0.2)
    assert not ok


def test_keyword_edge_cases():
    m = KeywordMatcher(gamma=0.3)
    assert m.search(_groups(3)) == []
    m.add([_groups(2), np.zeros((0, 27), bool)])
    assert m.search(_groups(3)) == []  # stored item shorter than the query
    assert m.search(np.zeros((0, 27), bool)) == []
    # uint32 words are accepted
    g = _groups(4)
    m.add([g], [77])
    hits = m.search(as_words(g[1:3]))
    assert hits[0].item == 77 and (hits[0].start, hits[0].end, hits[0].ber) == (1, 3, 0.0)

"""Classic QbE baselines: MFCC + DTW and recognise-then-edit-distance (speechret.evaluate.baselines)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechret.evaluate.baselines import (
    ASRSystem,
    DTWSystem,
    dtw_distance,
    levenshtein,
    pairwise_dtw,
    pairwise_edit_distance,
    subsequence_dtw_distance,
    substring_edit_distance,
)

SR = 16000


# ----------------------------------------------------------------------------------------------
# plain-python references
# ----------------------------------------------------------------------------------------------


def ref_local(x, y, metric):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if metric == "euclidean":
        return float(np.sqrt(np.sum((x - y) ** 2)))
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return 1.0
    return max(0.0, 1.0 - float(x @ y) / (nx * ny))


def ref_dtw(x, y, metric="cosine", band=None):
    n, m = len(x), len(y)
    if n == 0 or m == 0:
        return 1.0
    w = n + m if band is None else max(math.ceil(band * max(n, m)), abs(n - m))
    D = np.full((n, m), np.inf)
    for i in range(n):
        for j in range(m):
            if abs(i - j) > w:
                continue
            d = ref_local(x[i], y[j], metric)
            if i == 0 and j == 0:
                D[i, j] = 2 * d
                continue
            cands = []
            if i > 0 and j > 0:
                cands.append(D[i - 1, j - 1] + 2 * d)
            if i > 0:
                cands.append(D[i - 1, j] + d)
            if j > 0:
                cands.append(D[i, j - 1] + d)
            D[i, j] = min(cands)
    return D[n - 1, m - 1] / (n + m)


def ref_sdtw(q, s, metric="cosine"):
    """Subsequence DTW, unit steps, predecessor chosen by (cost + d) / (length + 1)."""
    n, m = len(q), len(s)
    if n == 0 or m == 0:
        return 1.0
    C = np.zeros((n, m))
    L = np.zeros((n, m))
    for j in range(m):
        C[0, j], L[0, j] = ref_local(q[0], s[j], metric), 1
    for i in range(1, n):
        for j in range(m):
            d = ref_local(q[i], s[j], metric)
            bc, bl = C[i - 1, j] + d, L[i - 1, j] + 1  # vertical
            if j > 0:
                for pc, pl in ((C[i - 1, j - 1], L[i - 1, j - 1]), (C[i, j - 1], L[i, j - 1])):
                    if (pc + d) / (pl + 1) < bc / bl:
                        bc, bl = pc + d, pl + 1
            C[i, j], L[i, j] = bc, bl
    return float(np.min(C[n - 1] / L[n - 1]))


def ref_lev(a, b):
    a, b = list(a), list(b)
    D = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        D[i][0] = i
    for j in range(len(b) + 1):
        D[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            D[i][j] = min(D[i - 1][j] + 1, D[i][j - 1] + 1, D[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return D[len(a)][len(b)]


def ref_substring(q, s):
    """Brute force: min over all substrings (empty included) of s."""
    s = list(s)
    return min(ref_lev(q, s[i:j]) for i in range(len(s) + 1) for j in range(i, len(s) + 1))


def rand_seq(rng, n, dim=6):
    return rng.standard_normal((n, dim)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# DTW kernels
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_dtw_identity_symmetry_and_time_warp(metric):
    rng = np.random.default_rng(0)
    x, y = rand_seq(rng, 40, 13), rand_seq(rng, 33, 13)
    assert dtw_distance(x, x, metric) == pytest.approx(0.0, abs=1e-9)
    assert dtw_distance(x, y, metric) == dtw_distance(y, x, metric)  # exactly symmetric
    stretched = np.repeat(x, 2, axis=0)
    assert dtw_distance(x, stretched, metric) == pytest.approx(0.0, abs=1e-9)
    assert dtw_distance(stretched, x, metric) == pytest.approx(0.0, abs=1e-9)
    different = dtw_distance(x, y, metric)
    assert different > 0.5
    assert dtw_distance(x, x + 0.05 * rand_seq(rng, 40, 13), metric) < 0.3 * different


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("band", [None, 0.0, 0.2])
def test_dtw_matches_python_reference(metric, band):
    rng = np.random.default_rng(1)
    for _ in range(6):
        n, m = rng.integers(1, 14, size=2)
        x, y = rand_seq(rng, n), rand_seq(rng, m)
        assert dtw_distance(x, y, metric, band) == pytest.approx(ref_dtw(x, y, metric, band), abs=1e-9)


def test_dtw_band_constrains_the_path():
    rng = np.random.default_rng(2)
    x = rand_seq(rng, 20)
    y = np.concatenate([x[:1].repeat(8, axis=0), x])  # x delayed by 8 frames: needs a wide warp
    y = y[: len(x)]  # same length, so band=0 forces the diagonal
    diag = np.mean([ref_local(a, b, "cosine") for a, b in zip(x, y)])
    assert dtw_distance(x, y, band=0.0) == pytest.approx(diag, abs=1e-9)
    assert dtw_distance(x, y) < dtw_distance(x, y, band=0.0) - 0.1  # the free warp does better


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_subsequence_dtw(metric):
    rng = np.random.default_rng(3)
    q = rand_seq(rng, 12, 13)
    item = np.concatenate([rand_seq(rng, 30, 13), q, rand_seq(rng, 25, 13)])
    slow = np.concatenate([rand_seq(rng, 20, 13), np.repeat(q, 2, axis=0), rand_seq(rng, 10, 13)])
    other = rand_seq(rng, 70, 13)
    assert subsequence_dtw_distance(q, item, metric) == pytest.approx(0.0, abs=1e-9)
    assert subsequence_dtw_distance(q, slow, metric) == pytest.approx(0.0, abs=1e-9)
    assert subsequence_dtw_distance(q, other, metric) > 0.3
    # the whole item is no subsequence of the query: full DTW of q vs item is clearly worse
    assert dtw_distance(q, item, metric) > 0.3


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_subsequence_dtw_matches_python_reference(metric):
    rng = np.random.default_rng(4)
    for _ in range(8):
        n, m = rng.integers(1, 10), rng.integers(1, 16)
        q, s = rand_seq(rng, n), rand_seq(rng, m)
        assert subsequence_dtw_distance(q, s, metric) == pytest.approx(ref_sdtw(q, s, metric), abs=1e-9)


def test_dtw_empty_and_zero_frames():
    x = rand_seq(np.random.default_rng(5), 5)
    empty = np.zeros((0, 6), np.float32)
    assert dtw_distance(x, empty) == 1.0 and dtw_distance(empty, x) == 1.0
    assert subsequence_dtw_distance(empty, x) == 1.0 and subsequence_dtw_distance(x, empty) == 1.0
    zeros = np.zeros((4, 6), np.float32)  # zero-norm frames: cosine distance 1 to everything
    assert dtw_distance(x, zeros) == pytest.approx(1.0)


@pytest.mark.parametrize("mode", ["full", "keyword"])
def test_pairwise_dtw_equals_single_pairs(mode):
    rng = np.random.default_rng(6)
    qs = [rand_seq(rng, int(n)) for n in rng.integers(1, 15, size=4)] + [np.zeros((0, 6), np.float32)]
    ds = [rand_seq(rng, int(n)) for n in rng.integers(1, 25, size=6)] + [np.zeros((0, 6), np.float32)]
    ds.append(np.concatenate([rand_seq(rng, 3), qs[0], rand_seq(rng, 4)]))
    D = pairwise_dtw(qs, ds, mode=mode, band=None)
    assert D.shape == (5, 8) and D.dtype == np.float64
    single = dtw_distance if mode == "full" else subsequence_dtw_distance
    expected = np.array([[single(q, d) for d in ds] for q in qs])
    np.testing.assert_array_equal(D, expected)
    assert (D[4] == 1.0).all() and (D[:, 6] == 1.0).all()
    if mode == "keyword":
        assert D[0, 7] == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        pairwise_dtw(qs, ds, mode="bogus")


def test_pairwise_dtw_rejects_mixed_dimensions():
    rng = np.random.default_rng(7)
    with pytest.raises(ValueError):
        pairwise_dtw([rand_seq(rng, 4, 6)], [rand_seq(rng, 4, 5)])


# ----------------------------------------------------------------------------------------------
# edit distances
# ----------------------------------------------------------------------------------------------


def test_levenshtein_matches_reference():
    rng = np.random.default_rng(8)
    for _ in range(60):
        a = rng.integers(0, 4, size=rng.integers(0, 9)).tolist()
        b = rng.integers(0, 4, size=rng.integers(0, 9)).tolist()
        assert levenshtein(a, b) == ref_lev(a, b)
    assert levenshtein([ord(c) for c in "kitten"], [ord(c) for c in "sitting"]) == 3


def test_sellers_substring_distance():
    assert substring_edit_distance([2, 3, 4], [1, 2, 3, 4, 5]) == 0
    assert substring_edit_distance([2, 9, 4], [1, 2, 3, 4, 5]) == 1  # one substitution
    assert substring_edit_distance([2, 4], [1, 2, 3, 4, 5]) == 1  # one insertion in the item
    assert substring_edit_distance([1, 2], []) == 2
    rng = np.random.default_rng(9)
    for _ in range(40):
        q = rng.integers(0, 3, size=rng.integers(0, 6)).tolist()
        s = rng.integers(0, 3, size=rng.integers(0, 9)).tolist()
        assert substring_edit_distance(q, s) == ref_substring(q, s)


def test_pairwise_edit_distance_normalization():
    qs = [[1, 2, 3], [7], []]
    ds = [[1, 2, 3], [0, 1, 2, 3, 0], [1, 5, 3], [], [8, 8, 8, 8]]
    full = pairwise_edit_distance(qs, ds, "full")
    kw = pairwise_edit_distance(qs, ds, "keyword")
    assert full.shape == kw.shape == (3, 5)
    np.testing.assert_allclose(full[0], [0.0, 2 / 5, 1 / 3, 1.0, 1.0])
    np.testing.assert_allclose(kw[0], [0.0, 0.0, 1 / 3, 1.0, 1.0])
    np.testing.assert_allclose(kw[1], [1.0, 1.0, 1.0, 1.0, 1.0])
    assert (full[2] == 1.0).all() and (kw[2] == 1.0).all()
    assert ((full >= 0) & (full <= 1)).all() and ((kw >= 0) & (kw <= 1)).all()
    rng = np.random.default_rng(10)
    a = [rng.integers(0, 5, size=rng.integers(0, 8)).tolist() for _ in range(6)]
    b = [rng.integers(0, 5, size=rng.integers(0, 12)).tolist() for _ in range(7)]
    F, K = pairwise_edit_distance(a, b, "full"), pairwise_edit_distance(a, b, "keyword")
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            assert F[i, j] == (1.0 if not x or not y else ref_lev(x, y) / max(len(x), len(y)))
            assert K[i, j] == (1.0 if not x else ref_substring(x, y) / len(x))


# ----------------------------------------------------------------------------------------------
# systems
# ----------------------------------------------------------------------------------------------


def _chirp(f0, f1, dur):
    f = np.linspace(f0, f1, int(dur * SR))
    return np.sin(2 * np.pi * np.cumsum(f) / SR)


def _word(k):
    parts = {
        0: [_chirp(300, 1500, 0.2), _chirp(2500, 2500, 0.2)],
        1: [_chirp(3000, 800, 0.25), _chirp(500, 500, 0.15)],
        2: [_chirp(1000, 1000, 0.1) + _chirp(3500, 3500, 0.1), _chirp(1800, 400, 0.3)],
    }[k]
    w = np.concatenate(parts)
    return (0.3 * w * np.hanning(len(w)) ** 0.3).astype(np.float32)


def _resample(w, factor):
    n = int(round(len(w) * factor))
    return np.interp(np.linspace(0, len(w) - 1, n), np.arange(len(w)), w).astype(np.float32)


@pytest.fixture(scope="module")
def dtw_system():
    return DTWSystem(batch_size=2)


def test_dtw_system_full_and_keyword(dtw_system):
    rng = np.random.default_rng(11)

    def sil(d):
        return (1e-3 * rng.standard_normal(int(d * SR))).astype(np.float32)

    words = [_word(k) for k in range(3)]
    q = dtw_system.encode(words)
    assert [a.shape for a in q] == [(41, 39)] * 3 and all(a.dtype == np.float32 for a in q)
    # batching with zero padding does not change an item's features
    np.testing.assert_allclose(dtw_system.encode([words[1]])[0], q[1], atol=1e-4)

    slower = dtw_system.encode([_resample(w, 1.1) for w in words])
    D = dtw_system.distances(q, slower, mode="full")
    assert D.shape == (3, 3)
    for k in range(3):
        assert D[k, k] < 0.3
        assert D[k, k] < np.delete(D[k], k).min() - 0.1

    # keyword: which utterances contain each word (silences between words, one stretched copy)
    utts = [
        np.concatenate([sil(0.2), words[1], sil(0.15), words[0], sil(0.1), words[2], sil(0.2)]),
        np.concatenate([sil(0.2), words[1], sil(0.15), words[2], sil(0.2)]),
        np.concatenate([sil(0.2), _resample(words[0], 0.9), sil(0.15), words[1], sil(0.2)]),
        np.concatenate([sil(0.1), words[2], sil(0.3), words[0], sil(0.1)]),
    ]
    contains = np.array([[1, 0, 1, 1], [1, 1, 1, 0], [1, 1, 0, 1]], dtype=bool)
    K = dtw_system.distances(q, dtw_system.encode(utts), mode="keyword")
    assert K.shape == (3, 4)
    for k in range(3):
        assert K[k][contains[k]].max() < K[k][~contains[k]].min() - 0.1


def test_dtw_system_empty_wave_and_options(dtw_system):
    reps = dtw_system.encode([np.zeros(0, np.float32), _word(0)])
    assert reps[0].shape[0] == 0 and reps[1].shape == (41, 39)
    D = dtw_system.distances(reps, reps)
    assert D[0, 0] == 1.0 and D[0, 1] == 1.0 and D[1, 1] == pytest.approx(0.0, abs=1e-9)
    assert dtw_system.name == "mfcc_dtw"
    with pytest.raises(ValueError):
        DTWSystem(metric="manhattan")
    small = DTWSystem(n_mfcc=10, deltas=0)
    assert small.encode([_word(2)])[0].shape == (41, 10)


class _FakeCTCModule:
    """Stands in for CTCHashModule: decode() returns the 'recognised' label lists."""

    def __init__(self, transcripts):
        self.hparams = {"blank": 27, "other_index": 26}
        self.transcripts = transcripts

    def decode(self, out):
        return [self.transcripts[i] for i in out]


class _FakeHasher:
    batch_size = 2

    def __init__(self, transcripts):
        self.module = _FakeCTCModule(transcripts)
        self.calls = []

    def outputs(self, waves):
        self.calls.append(len(waves))
        return [int(round(float(w[0]))) for w in waves]  # each wave encodes its transcript index


def test_asr_system_distances_on_labels():
    asr = ASRSystem(hasher=None)
    assert asr.name == "asr_edit"
    utts = [[3, 1, 4, 1, 5], [3, 1, 4, 1, 6], [9, 2, 6], []]
    keywords = [[4, 1], [2, 7], [1, 5, 9]]
    full = asr.distances(utts, utts, mode="full")
    assert full.shape == (4, 4)
    np.testing.assert_allclose(np.diag(full), [0, 0, 0, 1])
    assert full[0, 1] == pytest.approx(1 / 5) and full[0, 1] == full[1, 0]
    kw = asr.distances(keywords, utts, mode="keyword")
    np.testing.assert_allclose(kw, [[0, 0, 1, 1], [1, 1, 1 / 2, 1], [1 / 3, 2 / 3, 2 / 3, 1]])
    with pytest.raises(ValueError):
        asr.encode([np.zeros(10, np.float32)])


def test_asr_system_encode_batches_and_drops_other_and_blank():
    transcripts = [[5, 26, 7], [27, 1, 2, 3], [], [0, 25], [26]]
    hasher = _FakeHasher(transcripts)
    asr = ASRSystem(hasher)
    waves = [np.full(100, i, np.float32) for i in range(5)]
    reps = asr.encode(waves)
    assert hasher.calls == [2, 2, 1]
    assert [r.tolist() for r in reps] == [[5, 7], [1, 2, 3], [], [0, 25], []]
    D = asr.distances(reps[:2], reps, mode="keyword")
    assert D[0, 0] == 0.0 and D[1, 1] == 0.0 and D[0, 2] == 1.0

"""Paper C: the evaluation's relevant set is exactly what search.py returns (issue: one decision).

Evaluation (:meth:`HashSystem.retrieved` / the float64 decision distances) and search
(:class:`KeywordMatcher`, :func:`speechret.library.query.search_codes` over a library) are run on the
same codes at thresholds γ that sit exactly on pair distances, for both full-speech directions.
"""

from __future__ import annotations

import numpy as np
import pytest

from speechret.crypto import build_cipher
from speechret.evaluate.systems import HashSystem
from speechret.library import SpeechLibrary
from speechret.search.keyword import KeywordMatcher, keyword_search_bruteforce
from speechret.library.query import search_codes
from speechret.hashing.sliding import (
    DEFAULT_DIRECTION,
    NO_ALIGNMENT,
    aligned_pairs,
    decision_distances,
    sliding_decisions,
    sliding_match,
)


class _FakeHasher:
    """Stands in for a Hasher: fixed paper-C codes per waveform (index = first sample)."""

    method, n_classes, config = "paper_c", 0, {}

    def __init__(self, codes):
        self.codes = codes

    def codes_of_waves(self, waves):
        return [self.codes[int(w[0])] for w in waves]


def _codes(seed: int = 5, n_base: int = 6, n: int = 40) -> list[np.ndarray]:
    """Sequences of 0–9 groups, many of them noisy sub-/super-sequences of a few bases, so that
    many pairs have small decision distances and lengths differ in both directions."""
    rng = np.random.default_rng(seed)
    bases = [rng.random((int(rng.integers(4, 9)), 27)) < 0.5 for _ in range(n_base)]
    out = [np.zeros((0, 27), bool)]
    while len(out) < n:
        b = bases[int(rng.integers(n_base))]
        a = int(rng.integers(0, len(b)))
        seq = b[a : a + int(rng.integers(1, len(b) - a + 1))].copy()
        if rng.random() < 0.4:  # pad with unrelated groups on either side
            seq = np.concatenate([rng.random((int(rng.integers(0, 3)), 27)) < 0.5, seq,
                                  rng.random((int(rng.integers(0, 3)), 27)) < 0.5])
        seq ^= rng.random(seq.shape) < rng.choice([0.0, 0.03, 0.1])
        out.append(seq)
    return out


def _gammas(D: np.ndarray, n: int = 8) -> list[float]:
    """Thresholds exactly on pair distances (the boundary) and between them."""
    d = np.unique(D[(D > 0) & (D < 0.4)])
    on = [float(x) for x in d[:: max(1, len(d) // n)]]
    return [0.0] + on + [float((a + b) / 2) for a, b in zip(d[:-1:8], d[1::8])]


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


@pytest.mark.parametrize("direction", ["query_in_item", "symmetric"])
def test_evaluation_relevant_set_equals_matcher_hits(direction):
    codes = _codes()
    system = HashSystem(_FakeHasher(codes), direction=direction)
    enc = system.encode([np.full(2, i, np.float32) for i in range(len(codes))])
    D = system.distances(enc, enc, mode="full")
    assert D.dtype == np.float64 and not system.threshold_strict
    np.testing.assert_array_equal(D, decision_distances(codes, codes, direction))
    m = KeywordMatcher().add(codes)
    kw = KeywordMatcher().add(codes)
    n_boundary = 0
    for i, g in enumerate(_gammas(D)):
        evaluated = system.retrieved(enc, enc, g, mode="full")
        np.testing.assert_array_equal(evaluated, system.retrieved(enc, enc, g, mode="full", distances=D))
        searched = np.zeros_like(evaluated)
        for qi, q in enumerate(codes):
            hits = m.full_speech(q, g, direction=direction)
            if i % 3 == 1:  # the numpy reference agrees (spans and d̄ too)
                assert hits == keyword_search_bruteforce(codes, range(len(codes)), q, g, "full_speech",
                                                         direction=direction)
            searched[qi, [h.item for h in hits]] = True
        np.testing.assert_array_equal(evaluated, searched)
        boundary = evaluated & (D == g)  # pairs exactly at γ are retrieved by both (≤ γ)
        n_boundary += int(boundary.sum())
        assert not (evaluated & ~aligned_pairs(codes, codes, direction)).any()
        # keyword mode: the query always slides over the item, in evaluation and in search
        ek = system.retrieved(enc, enc, g, mode="keyword")
        sk = np.zeros_like(ek)
        for qi, q in enumerate(codes):
            sk[qi, [h.item for h in kw.search(q, g, mode="keyword")]] = True
        np.testing.assert_array_equal(ek, sk)
    assert n_boundary > 10  # the check did exercise the boundary


def test_directions_differ_only_on_items_shorter_than_the_query():
    codes = _codes(seed=11)
    qi = decision_distances(codes, codes, "query_in_item")
    sy = decision_distances(codes, codes, "symmetric")
    lens = np.array([len(c) for c in codes])
    longer_item = lens[None, :] >= lens[:, None]
    np.testing.assert_array_equal(qi[longer_item], sy[longer_item])
    shorter = ~longer_item & (lens[None, :] > 0)
    assert (qi[shorter] == NO_ALIGNMENT).all() and (sy[shorter] < NO_ALIGNMENT).any()
    assert np.array_equal(sy, sy.T)
    # the paper's direction is the default everywhere
    assert DEFAULT_DIRECTION == "query_in_item" == KeywordMatcher().direction
    assert HashSystem(_FakeHasher(codes)).direction == "query_in_item"


def test_boundary_pair_is_a_match_in_float64_and_float32_is_refused():
    # query of 3 groups; item = the query with 1, 1 and 2 bits flipped: running means 1/27, 1/27,
    # 4/81, so the decision distance is exactly 4/81 computed as ((1/27 + 1/27) + 2/27) / 3
    rng = np.random.default_rng(0)
    q = rng.random((3, 27)) < 0.5
    x = q.copy()
    x[0, 0] ^= True
    x[1, 1] ^= True
    x[2, 2:4] ^= True
    d = decision_distances([q], [x])[0, 0]
    g = ((1 / 27 + 1 / 27) + 2 / 27) / 3
    assert d == g
    assert sliding_decisions([q], [x], g)[0, 0] and sliding_match(q, x, g)[0]
    assert [h.item for h in KeywordMatcher().add([x]).full_speech(q, g)] == [0]
    assert not sliding_decisions([q], [x], np.nextafter(g, 0))[0, 0]
    assert not KeywordMatcher().add([x]).full_speech(q, np.nextafter(g, 0))
    with pytest.raises(ValueError, match="float64"):
        sliding_decisions([q], [x], g, distances=np.float32([[d]]))


def _paper_c_library(tmp_path, codes):
    cipher = build_cipher("aes_gcm", bytes(range(32)))
    manifest = {"hash_method": "paper_c", "code_bits": 27, "model": {"name": "test"}, "hash": {},
                "index": {"kind": "flat", "params": {}}}
    lib = SpeechLibrary.create(tmp_path / "lib", manifest, cipher)
    rng = np.random.default_rng(0)
    items = [{"item_id": f"utt-{i:03d}", "source": f"/data/{i}.wav", "sample_rate": 16000,
              "pcm": rng.integers(-3000, 3000, 160, dtype=np.int16), "speaker": "s", "label": i, "text": ""}
             for i in range(len(codes))]
    lib.add_batch(items, codes)
    return lib, [it["item_id"] for it in items]


@pytest.mark.parametrize("direction", ["query_in_item", "symmetric"])
def test_search_py_query_function_returns_the_evaluated_set(tmp_path, direction):
    codes = _codes(seed=3, n=30)
    lib, names = _paper_c_library(tmp_path, codes)
    system = HashSystem(_FakeHasher(codes), direction=direction)
    D = system.distances(codes, codes, "full")
    for g in _gammas(D, 4):
        evaluated = system.retrieved(codes, codes, g, mode="full", distances=D)
        rows = search_codes(lib, codes, mode="full_speech", k=0, gamma=g, direction=direction)
        for qi, hits in enumerate(rows):
            assert {h["item_id"] for h in hits} == {names[j] for j in np.flatnonzero(evaluated[qi])}
            assert all(h["ber"] <= g for h in hits)
    lib.close()

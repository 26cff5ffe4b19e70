"""bench/code_distances.py's rankings (the measurements themselves are benchmarks, not tests)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from code_distances import alpha_query_expansion, rankings  # noqa: E402


def test_query_expansion_is_a_weighted_vote_of_other_speakers_neighbours():
    """α-QE: two neighbours by other voices that agree on a bit outvote the query's own bit; one
    neighbour (weight < 1) never does; a neighbour by the query's own speaker never votes, however close."""
    q = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    near = q.copy()
    near[0] = False                     # 7 of 8 bits shared: similarity 0.75
    codes = np.stack([q, near, near, q ^ True])
    speakers = np.array(["a", "b", "c", "d"])
    expanded = alpha_query_expansion(codes, speakers, k=2, alpha=0.0)
    assert not expanded[0, 0] and np.array_equal(expanded[0, 1:], q[1:])
    assert np.array_equal(alpha_query_expansion(codes, speakers, k=1, alpha=0.0), codes)
    same_voice = np.array(["a", "a", "a", "d"])     # the two close codes are the query's own voice
    assert np.array_equal(alpha_query_expansion(codes, same_voice, k=2, alpha=0.0)[0], q)


def test_asymmetric_distance_of_saturated_codes_ranks_as_hamming():
    """A relaxed code at ±1 is its bits: the asymmetric distance is then an affine map of the Hamming distance
    (-<u, b> = 2 K BER - K), so both rank the library alike; a bit the query is unsure of weighs less."""
    rng = np.random.default_rng(0)
    codes = rng.random((12, 32)) > 0.5
    u = codes * 2.0 - 1
    d = rankings(codes, u, np.arange(12).astype(str), qe=[])
    assert np.allclose(d["asymmetric"], 2 * 32 * d["hamming"] - 32)
    unsure = u.copy()
    unsure[0, 0] *= 0.1                 # the query's first bit barely positive / negative
    flipped = codes.copy()
    flipped[1] = codes[0]
    flipped[1, 0] ^= True               # item 1: the query's code but for its unsure bit
    flipped[2] = codes[0]
    flipped[2, 5] ^= True               # item 2: the query's code but for a sure bit
    d = rankings(flipped, unsure, np.arange(12).astype(str), qe=[])
    assert d["hamming"][0, 1] == d["hamming"][0, 2]
    assert d["asymmetric"][0, 1] < d["asymmetric"][0, 2]

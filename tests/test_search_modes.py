"""search.py modes: range_k reaches the approximate indexes (with a warning when they may drop
candidates) and paper B's two-stage search takes a threshold τ as well as top-k."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from speechret.crypto import build_cipher
from speechret.hashing import pack_bits
from speechret.library import SpeechLibrary
from speechret.search import index as ix
from speechret.search.index import ApproximateSearchWarning
from speechret.search.keyword import KeywordMatcher
from speechret.search.matchers import ThresholdMatcher, TwoStageMatcher, two_stage_bruteforce
from speechret.library.query import search_codes


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


# ------------------------------------------------------------------------------ range_k
def _keyword_items(n_items=60, q=3, seed=0):
    """Every item contains the query verbatim once, so the query's first group has ≥ n_items
    exact neighbours in the d = 32 group index."""
    rng = np.random.default_rng(seed)
    query = rng.random((q, 27)) < 0.5
    items = []
    for _ in range(n_items):
        seq = rng.random((int(rng.integers(q, q + 6)), 27)) < 0.5
        s = int(rng.integers(0, len(seq) - q + 1))
        seq[s : s + q] = query
        items.append(seq)
    return query, items


def test_keyword_matcher_passes_range_k_and_warns_when_hnsw_caps_candidates():
    query, items = _keyword_items()
    exact = {h.item for h in KeywordMatcher(gamma=0.1).add(items).search(query)}
    assert exact == set(range(len(items)))
    capped = KeywordMatcher(gamma=0.1, index_kind="hnsw", range_k=8).add(items)
    with pytest.warns(ApproximateSearchWarning, match="range_k=8"):
        hits = capped.search(query)
    assert {h.item for h in hits} < exact and len(hits) <= 8  # the cap did drop candidates
    # range_k from the index parameters (how a library's conf/index/hnsw.yaml reaches it)
    from_params = KeywordMatcher(gamma=0.1, index_kind="hnsw", index_params={"range_k": 8, "efSearch": 64})
    assert from_params.range_k == 8
    with pytest.warns(ApproximateSearchWarning):
        from_params.add(items).full_speech(query)
    # a range_k above the candidate count: no cap, no warning (HNSW itself stays approximate)
    wide = KeywordMatcher(gamma=0.1, index_kind="hnsw", range_k=4096).add(items)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximateSearchWarning)
        found = {h.item for h in wide.search(query)}
    assert found <= exact and len(found) > 8


def test_threshold_and_two_stage_matchers_warn_on_approximate_indexes():
    rng = np.random.default_rng(1)
    bits = np.repeat(rng.random((1, 64)) < 0.5, 40, axis=0)  # 40 identical codes
    m = ThresholdMatcher(64, 0.1, "hnsw", range_k=5).add_bits(bits)
    with pytest.warns(ApproximateSearchWarning, match="range_k=5"):
        (ids, _), = m.search(pack_bits(bits[:1]))
    assert len(ids) == 5
    codes = np.concatenate([np.repeat(np.eye(2, dtype=bool)[:1], 40, 0), bits], axis=1)
    ts = TwoStageMatcher(2, 0.1, "hnsw", range_k=5).add(codes)
    assert ts.range_k == 5
    with pytest.warns(ApproximateSearchWarning):
        ts.search(codes[:1])
    # IVF probing part of its lists may miss rows; probing all of them is exact and silent
    many = pack_bits(rng.random((300, 64)) < 0.5)
    partial = ix.make_index("ivf", many, nlist=8, nprobe=2)
    with pytest.warns(ApproximateSearchWarning, match="probes 2 of 8"):
        ix.range_search(partial, many[:2], 20)
    full = ix.make_index("ivf", many, nlist=8, nprobe=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ApproximateSearchWarning)
        ix.range_search(full, many[:2], 20)


# ------------------------------------------------------------------------- two-stage threshold
C, K = 4, 44


def _paper_b_library(tmp_path, n=60):
    rng = np.random.default_rng(2)
    cat = rng.integers(0, C, n)
    codes = np.concatenate([np.eye(C, dtype=bool)[cat], rng.random((n, K)) < 0.5], axis=1)
    codes[1:6, C:] = codes[0, C:] ^ (rng.random((5, K)) < 0.08)  # near neighbours of item 0 ...
    codes[1:6, :C] = codes[0, :C]                                # ... in its category
    codes[6, :] = codes[0, :]
    codes[6, :C] = np.roll(codes[0, :C], 1)                      # same h2, other category
    manifest = {"hash_method": "paper_b", "code_bits": C + K, "n_classes": C, "model": {"name": "test"},
                "hash": {}, "index": {"kind": "flat", "params": {}}}
    lib = SpeechLibrary.create(tmp_path / "lib", manifest, build_cipher("aes_gcm", bytes(range(32))))
    items = [{"item_id": f"utt-{i:03d}", "sample_rate": 16000, "pcm": np.zeros(160, np.int16), "label": int(cat[i])}
             for i in range(n)]
    lib.add_batch(items, codes)
    return lib, codes


def test_two_stage_search_with_a_threshold(tmp_path):
    lib, codes = _paper_b_library(tmp_path)
    queries = codes[[0, 10, 20]]
    tau = 0.2
    got = search_codes(lib, queries, mode="two_stage", stage2="threshold", threshold=tau, k=2)
    want = two_stage_bruteforce(codes, np.arange(len(codes)), queries, C, ber_threshold=tau)
    for hits, (ids, bers) in zip(got, want):
        assert [h["item_id"] for h in hits] == [f"utt-{i:03d}" for i in ids]  # not capped by k
        assert [h["ber"] for h in hits] == bers.tolist() and all(b < tau for b in bers)
    first = {h["item_id"] for h in got[0]}
    assert {"utt-000", "utt-001", "utt-006"} & first == {"utt-000", "utt-001"}  # stage 1 excludes 6
    assert len(first) > 2
    # top-k stays the default stage 2, and a different threshold gives a different answer
    topk = search_codes(lib, queries, mode="two_stage", k=2)
    assert [len(h) for h in topk] == [2, 2, 2]
    assert search_codes(lib, queries, mode="two_stage", stage2="threshold", threshold=0.0)[0] == []
    with pytest.raises(ValueError, match="stage2"):
        search_codes(lib, queries, mode="two_stage", stage2="both")
    lib.close()


def test_search_config_exposes_stage2_and_direction():
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(Path(__file__).resolve().parents[1] / "conf")):
        cfg = compose("search", overrides=["queries=x.wav", "mode=two_stage", "stage2=threshold", "threshold=0.2"])
    assert (cfg.mode, cfg.stage2, cfg.threshold, cfg.direction) == ("two_stage", "threshold", 0.2, "query_in_item")

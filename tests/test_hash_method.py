"""The hash-method object: a new method is one class, and the library, search and evaluation
work with it without knowing its name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from speechret.crypto import build_cipher
from speechret.errors import ConfigError
from speechret.evaluate.systems import HashSystem
from speechret.hashing import HashMethod, get_hash_method, hash_method_names, pack_bits
from speechret.hashing.bits import ber_matrix, field
from speechret.library import LibraryError, SpeechLibrary
from speechret.library.query import search_codes
from speechret.search.matchers import topk_search_bruteforce


@pytest.fixture
def mean_threshold_method():
    """A toy method, registered for one test only: bit i = 1 when unit i exceeds the row mean."""

    class MeanThresholdHash(HashMethod):
        name = "test_mean_threshold"
        reference = "test only"
        mode_matcher = {"topk": "main", "threshold": "main"}

        def codes(self, output: Any, **options: Any) -> np.ndarray:
            h = field(output, "hash_features")
            return (h > h.mean(dim=1, keepdim=True)).cpu().numpy()

    yield MeanThresholdHash
    HashMethod._registry.pop(MeanThresholdHash.name, None)


def test_a_new_method_registers_by_subclassing(mean_threshold_method):
    assert "test_mean_threshold" in hash_method_names()
    m = get_hash_method("test_mean_threshold", code_bits=16)
    assert isinstance(m, mean_threshold_method) and m.code_bits == 16 and m.search_modes == ("topk", "threshold")
    with pytest.raises(ConfigError, match="unknown hash method 'nope'"):
        get_hash_method("nope")


def test_library_search_and_evaluation_use_the_method_object(tmp_path, mean_threshold_method):
    """A library of the new method stores, indexes and searches its codes exactly (FAISS top-k ==
    brute force), refuses the modes the method lacks, and HashSystem ranks by its distances."""
    d, n = 16, 40
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, d, generator=g)
    codes = mean_threshold_method().codes({"hash_features": feats})
    cipher = build_cipher("aes_gcm", bytes(range(32)))
    lib = SpeechLibrary.create(tmp_path / "lib", {"hash_method": "test_mean_threshold", "code_bits": d,
                                                  "index": {"kind": "flat", "params": {}}}, cipher)
    items = [{"item_id": f"u{i:03d}", "pcm": np.full(100, i, np.int16), "sample_rate": 16000} for i in range(n)]
    lib.add_batch(items, codes)
    hits = search_codes(lib, codes[:5], mode="topk", k=4)
    ids, _ = topk_search_bruteforce(pack_bits(codes), np.arange(n), pack_bits(codes[:5]), 4)
    assert [[h["row"] for h in hs] for hs in hits] == ids.tolist()
    with pytest.raises(ValueError, match="not a search mode"):
        search_codes(lib, codes[:1], mode="two_stage")
    with pytest.raises(LibraryError, match="needs a paper_b library"):
        lib.search_two_stage(codes[:1], k=1)

    class _Hasher:
        method, n_classes, config = "test_mean_threshold", 0, {}

    system = HashSystem(_Hasher())
    np.testing.assert_allclose(system.distances(codes, codes), ber_matrix(codes, codes))
    assert system.threshold_strict and system.n_bits(codes) == d

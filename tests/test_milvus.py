"""The Milvus index backend (speechret.search.milvus) on milvus-lite, the embedded Milvus that pip
installs: results equal FAISS flat on the same codes -- top-k (with FAISS's exact tie order),
``BER < T`` range search, paper B two-stage, and paper C's d = 32 group index (keyword and
full-speech) -- through the matchers and through a whole library (``conf/index/milvus.yaml``),
saved, reloaded and fsck-clean.

milvus-lite 3.x has no BINARY_VECTOR field: the tests use the ``float01`` layout (0/1 float
vectors, squared L2 = Hamming, exact) and check that a ``binary`` collection is refused with
milvus-lite's own message, so the day milvus-lite gains binary vectors this test says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from speechret.crypto import build_cipher
from speechret.hashing.bits import pack_bits
from speechret.library import SpeechLibrary
from speechret.library.query import search_codes
from speechret.search import index as ix
from speechret.search.keyword import KeywordMatcher
from speechret.search.matchers import ThresholdMatcher, TwoStageMatcher
from speechret.search.milvus import MilvusBinaryIndex, _client, close_clients, collections_in

from test_library import CODES, _items, _manifest


@pytest.fixture(scope="module", autouse=True)
def _release_milvus_lite():
    """Stop the embedded servers while pytest still owns the log streams (milvus-lite's own atexit
    hook would log to a stream pytest has closed)."""
    yield
    close_clients()
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_all()  # files opened under a test's working directory too


@pytest.fixture
def uri(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # milvus-lite files are relative to the working directory
    return f"m{np.random.default_rng().integers(1 << 30)}.db"


def test_milvus_lite_has_no_binary_vectors(uri):
    """What is missing, exactly: milvus-lite refuses a BINARY_VECTOR field (so no HAMMING, no
    BIN_FLAT / BIN_IVF_FLAT) -- the ``binary`` layout needs a Milvus server. The collection is
    created with the first rows, so that is where the refusal comes."""
    from pymilvus.exceptions import MilvusException

    index = MilvusBinaryIndex(384, uri=uri, vector="binary")
    with pytest.raises(MilvusException, match="BinaryVector which MilvusLite does not support"):
        index.add_with_ids(np.zeros((1, 48), np.uint8), np.array([0]))


@pytest.mark.parametrize("bits", [384, 48])
def test_topk_and_threshold_equal_faiss_flat(uri, bits):
    rng = np.random.default_rng(bits)
    db = pack_bits(rng.random((300, bits)) < 0.5)
    db[50:60] = db[5]  # ties at distance 0 and at the k-th distance
    q = np.concatenate([db[[5, 7, 123]], pack_bits(rng.random((3, bits)) < 0.5)])
    ids = np.arange(1000, 1300, dtype=np.int64)[rng.permutation(300)]
    faiss_m = ThresholdMatcher(bits, kind="flat").add(db, ids)
    milvus_m = ThresholdMatcher(bits, kind="milvus", uri=uri, vector="float01").add(db, ids)
    assert ix.index_kind(milvus_m.index) == "milvus" and milvus_m.index.ntotal == 300
    for k in (1, 4, 12):
        a, b = faiss_m.topk(q, k, exact_ties=True), milvus_m.topk(q, k, exact_ties=True)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), k
    for t in (0.0, 0.3, 0.45, 0.5):
        for (ia, da), (ib, dbb) in zip(faiss_m.search(q, t), milvus_m.search(q, t)):
            assert np.array_equal(ia, ib) and np.array_equal(da, dbb), t
    assert any(len(i) for i, _ in milvus_m.search(q, 0.45))
    assert np.array_equal(milvus_m.index.reconstruct(int(ids[17])), db[17])


def test_two_stage_and_paper_c_groups_equal_faiss(uri):
    rng = np.random.default_rng(2)
    codes = CODES["paper_b"](120, 4)
    a = TwoStageMatcher(n_classes=4, d_bits=48, kind="flat")
    b = TwoStageMatcher(n_classes=4, d_bits=48, kind="milvus", uri=uri, vector="float01")
    a.add(codes, np.arange(120))
    b.add(codes, np.arange(120))
    q = codes[:8]
    ta, tb = a.topk(q, 5, exact_ties=True), b.topk(q, 5, exact_ties=True)
    assert np.array_equal(ta[0], tb[0]) and np.array_equal(ta[1], tb[1])
    for (ia, da), (ib, dbb) in zip(a.search(q, 0.5), b.search(q, 0.5)):
        assert np.array_equal(ia, ib) and np.array_equal(da, dbb)
    seqs = CODES["paper_c"](60, 5)
    seqs[3] = np.concatenate([seqs[3], seqs[10][2:5]])  # a shared keyword
    ka = KeywordMatcher(index_kind="flat").add(seqs)
    kb = KeywordMatcher(index_kind="milvus", index_params={"uri": uri, "vector": "float01"}).add(seqs)
    for qs in (seqs[10][2:5], seqs[7], rng.random((4, 27)) < 0.5):
        for mode in ("keyword", "full_speech"):
            assert ka.search(qs, 0.3, mode=mode) == kb.search(qs, 0.3, mode=mode)
    assert kb.search(seqs[10][2:5], 0.0, mode="keyword")


@pytest.mark.parametrize("method", ["paper_a", "paper_c"])
def test_a_library_on_milvus_equals_one_on_faiss(tmp_path, uri, method):
    cipher = build_cipher("aes_gcm", bytes(range(32)))
    index = {"kind": "milvus", "params": {"uri": uri, "vector": "float01"}}
    libs = {"faiss": SpeechLibrary.create(tmp_path / "faiss", _manifest(method), cipher),
            "milvus": SpeechLibrary.create(tmp_path / "milvus", _manifest(method, index=index), cipher)}
    items, codes = _items(0, 40, 7), CODES[method](40, 7)
    for lib in libs.values():
        lib.add_batch(items[:25], codes[:25] if method != "paper_c" else codes[:25])
        lib.sync_index()
        lib.add_batch(items[25:], codes[25:])
    params = ({"mode": "topk", "k": 5}, {"mode": "threshold", "threshold": 0.45}) if method == "paper_a" else \
        ({"mode": "keyword", "gamma": 0.3, "k": 0}, {"mode": "full_speech", "gamma": 0.35, "k": 0})
    queries = codes[:6]
    for p in params:
        got = {name: search_codes(lib, queries, **p) for name, lib in libs.items()}
        assert got["faiss"] == got["milvus"], p
    libs["milvus"].remove(["utt-0003"])
    libs["faiss"].remove(["utt-0003"])
    for lib in libs.values():
        lib.close()
    with SpeechLibrary.open(tmp_path / "milvus", cipher) as lib:  # reopened: the saved descriptor reconnects
        assert lib.fsck()["ok"]
        # the removal re-derived the index into new collections: only the current generation's remain
        current = {name for _, name, _ in collections_in(lib.generations.current()[1])}
        assert current and set(_client(uri).list_collections()) == current
        with SpeechLibrary.open(tmp_path / "faiss", cipher) as ref:
            for p in params:
                assert search_codes(lib, queries, **p) == search_codes(ref, queries, **p)


def test_the_milvus_index_config(uri):
    """conf/index/milvus.yaml selects this backend (a Milvus server URI by default; here the same
    config pointed at milvus-lite with the float01 layout)."""
    from omegaconf import OmegaConf

    from speechret.api import _index_config

    node = _index_config("milvus", {"uri": uri, "vector": "float01", "index_type": "FLAT"})
    raw = OmegaConf.load(ix.__file__.rsplit("/speechret/", 1)[0] + "/conf/index/milvus.yaml")
    assert raw.kind == node["kind"] == ix.MILVUS and raw.params.vector == "binary"
    assert raw.params.index_type == "BIN_FLAT" and raw.params.uri.startswith("http")
    index = ix.build_binary_index(node["kind"], 32, **node["params"])
    assert ix.index_kind(index) == "milvus" and index.metric == "L2"
    with pytest.raises(Exception, match="index_type"):
        ix.build_binary_index("milvus", 32, uri=uri, vector="float01", index_type="BIN_FLAT")

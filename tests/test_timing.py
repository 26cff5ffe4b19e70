"""speechret.evaluate.timing: paper B Table 4 (traversal vs two-stage retrieval time) and the
end-to-end per-query time of paper B Table 5 / paper A Table 6, at small sizes."""

from __future__ import annotations

import math
from pathlib import Path

import faiss
import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speechret.evaluate import timing
from speechret.evaluate.timing import (
    TABLE_COLUMNS,
    HitSetMismatch,
    _check_same_hits,
    _Methods,
    end_to_end_time,
    format_markdown,
    retrieval_time_table,
    synthetic_paper_b_codes,
)
from speechret.search.matchers import two_stage_bruteforce

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(n_items=2000, n_classes=10, hash_lengths=(64, 128), n_queries=10, repeats=1, n_traversal_queries=5)
TIME_KEYS = ("traversal_ms", "traversal_numpy_ms", "two_stage_category_ms", "two_stage_semantic_ms",
             "two_stage_ms", "faiss_flat_ms", "faiss_two_stage_ms")


@pytest.fixture(scope="module")
def rows():
    return retrieval_time_table(**SMALL)


def test_rows_have_all_keys_and_positive_finite_times(rows):
    assert [r["bits"] for r in rows] == [64, 128]
    for r in rows:
        assert tuple(r) == TABLE_COLUMNS
        assert r["n_items"] == 2000 and r["n_queries"] == 10 and r["n_traversal_queries"] == 5
        for k in TIME_KEYS:
            assert math.isfinite(r[k]) and r[k] > 0, (k, r[k])
        assert r["two_stage_ms"] == pytest.approx(r["two_stage_category_ms"] + r["two_stage_semantic_ms"])
        assert r["speedup_two_stage_vs_traversal"] == pytest.approx(r["traversal_ms"] / r["two_stage_ms"])
        # every query finds (at least) its source item
        assert r["mean_hits"] >= 1 and r["source_recall"] == 1.0
        # stage 2 only sees the query's category: n_items / n_classes candidates
        assert r["mean_candidates"] == pytest.approx(2000 / 10, rel=0.05)
        assert r["cross_category_hits"] >= 0


def test_faiss_threads_restored():
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(3)
    try:
        retrieval_time_table(n_items=200, n_classes=4, hash_lengths=(64,), n_queries=3, repeats=1,
                             faiss_threads=1, n_traversal_queries=2)
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(before)


def test_synthetic_database_is_seeded_balanced_and_one_hot():
    a = synthetic_paper_b_codes(1000, 10, 64, 20, seed=1)
    b = synthetic_paper_b_codes(1000, 10, 64, 20, seed=1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert a["codes"].shape == (1000, 74) and a["codes"].dtype == bool
    assert np.bincount(a["cats"]).tolist() == [100] * 10
    np.testing.assert_array_equal(a["codes"][:, :10].sum(1), 1)
    np.testing.assert_array_equal(a["codes"][:, :10].argmax(1), a["cats"])
    np.testing.assert_array_equal(a["queries"][:, :10], a["codes"][a["sources"], :10])
    # queries are their source with a few % of the h2 bits flipped
    flips = (a["queries"][:, 10:] ^ a["codes"][a["sources"], 10:]).mean()
    assert 0 < flips < 0.1
    # same-category codes are clustered: closer than codes of other categories
    h2, cats = a["codes"][:, 10:], a["cats"]
    same = (h2[cats == 0][:50, None] ^ h2[cats == 0][None, :50]).mean()
    other = (h2[cats == 0][:50, None] ^ h2[cats == 1][None, :50]).mean()
    assert same < 0.35 < 0.4 < other


def _methods(n_items=1000, n_classes=5, bits=64, n_queries=6):
    data = synthetic_paper_b_codes(n_items, n_classes, bits, n_queries, seed=3)
    return data, _Methods(data, n_classes, 0.26)


def test_methods_agree_with_bruteforce_reference_and_count_candidates():
    data, m = _methods()
    ref = two_stage_bruteforce(data["codes"], np.arange(1000), data["queries"], 5, ber_threshold=0.26)
    for i in range(6):
        hits, t_cat, t_sem, n_cand = m.two_stage_numpy(i)
        assert t_cat > 0 and t_sem > 0
        assert n_cand == int((data["cats"] == data["query_cats"][i]).sum()) == 200
        for got in (hits, m.traversal(i), m.traversal_numpy(i), m.faiss_flat(i), m.faiss_two_stage(i)):
            np.testing.assert_array_equal(got[0], ref[i][0])
            np.testing.assert_array_equal(got[1], ref[i][1])
        assert data["sources"][i] in set(hits[0].tolist())


def test_check_same_hits_catches_a_corrupted_method():
    _, m = _methods()
    good = [m.two_stage_numpy(i)[0] for i in range(6)]
    _check_same_hits({"a": good, "b": [m.faiss_flat(i) for i in range(6)], "c": list(good)})
    dropped = [(ids[:-1], ber[:-1]) for ids, ber in good]
    with pytest.raises(HitSetMismatch, match="missing from b"):
        _check_same_hits({"a": good, "b": dropped}, "bits=64: ")
    extra = [(np.append(ids, 999), np.append(ber, 0.1)) for ids, ber in good]
    with pytest.raises(HitSetMismatch, match="extra in b"):
        _check_same_hits({"a": good, "b": extra})
    shifted = [(ids, ber + 1 / 64) for ids, ber in good]
    with pytest.raises(HitSetMismatch, match="BER"):
        _check_same_hits({"a": good, "b": shifted})
    with pytest.raises(HitSetMismatch, match="answered"):
        _check_same_hits({"a": good, "b": good[:3]})


def test_retrieval_time_table_raises_on_a_wrong_method(monkeypatch):
    real = _Methods.faiss_two_stage

    def lossy(self, i):
        ids, ber = real(self, i)
        return ids[:-1], ber[:-1]

    monkeypatch.setattr(timing._Methods, "faiss_two_stage", lossy)
    with pytest.raises(HitSetMismatch, match="faiss_two_stage"):
        retrieval_time_table(n_items=500, n_classes=5, hash_lengths=(64,), n_queries=4, repeats=1,
                             n_traversal_queries=2)


def test_format_markdown(rows):
    md = format_markdown(rows)
    lines = md.splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[0].startswith("| bits | n_items | traversal_ms")
    assert set(lines[1]) <= {"|", "-", ":"}
    assert all(line.count("|") == len(TABLE_COLUMNS) + 1 for line in lines)
    one = format_markdown({"a": 1, "b": 0.5, "c": "x"}).splitlines()
    assert one[0] == "| a | b   | c |" and one[2] == "| 1 | 0.5 | x |"


# --------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def tiny_hasher():
    """An untrained, small paper-B CNN hasher (no checkpoint): 4 classes, 64-bit h2."""
    from speechret.hashing.hasher import Hasher

    with initialize_config_dir(version_base="1.3", config_dir=str(REPO / "conf")):
        cfg = compose("train", overrides=["experiment=cnn_hash", "model.num_classes=4", "model.hash_bits=64",
                                          "model.net.filters=[4,4,8,8,8,8]", "features.image_size=64",
                                          "model.net.image_size=64"])
    small = OmegaConf.create({"features": OmegaConf.to_container(cfg.features, resolve=True),
                              "model": OmegaConf.to_container(cfg.model, resolve=True),
                              "data": {"sample_rate": 16000}})
    return Hasher.from_config(small)


def _waves(n, seed):
    rng = np.random.default_rng(seed)
    return [(0.1 * rng.standard_normal(16000)).astype(np.float32) for _ in range(n)]


def test_end_to_end_time(tiny_hasher):
    assert tiny_hasher.method == "paper_b" and tiny_hasher.n_classes == 4
    db = tiny_hasher.codes_of_waves(_waves(8, 0))
    assert db.shape == (8, 4 + 64)
    queries = _waves(3, 1)
    keys = ("e2e_mean_s", "e2e_p50_s", "hash_mean_s", "match_mean_s", "audio_seconds_mean", "x_realtime")
    for matcher, expected in (("auto", "two_stage"), ("threshold", "threshold")):
        res = end_to_end_time(tiny_hasher, queries, db, matcher=matcher, ber_threshold=0.26, repeats=1)
        for k in keys:
            assert math.isfinite(res[k]) and res[k] > 0, (k, res[k])
        assert res["matcher"] == expected and res["n_queries"] == 3 and res["n_database"] == 8
        assert res["audio_seconds_mean"] == pytest.approx(1.0)
        assert res["e2e_mean_s"] == pytest.approx(res["hash_mean_s"] + res["match_mean_s"])
        assert res["x_realtime"] == pytest.approx(1.0 / res["e2e_mean_s"])
    with pytest.raises(ValueError, match="unknown matcher"):
        end_to_end_time(tiny_hasher, queries, db, matcher="nope")
    with pytest.raises(ValueError, match="bits"):
        end_to_end_time(tiny_hasher, queries, db[:, :-8], matcher="threshold")

"""speechret.search.index.build_binary_index: FAISS factory strings, the legacy family names, the
runtime parameters a factory string cannot express, and ConfigError on bad index configs."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest
from omegaconf import OmegaConf

from speechret.errors import ConfigError
from speechret.search import index as ix

CONF = Path(__file__).resolve().parents[1] / "conf" / "index"


@pytest.mark.parametrize("kind, params, family, nlist", [
    ("BFlat", {}, "flat", None),
    ("BIVF32", {"nprobe": 4}, "ivf", 32),
    ("BHNSW8", {"efSearch": 10}, "hnsw", None),
    ("BIVF16_HNSW8", {}, "ivf", 16),
    ("flat", {}, "flat", None),
    ("ivf", {"nlist": 16, "nprobe": 3}, "ivf", 16),
    ("hnsw", {"M": 8, "efConstruction": 20}, "hnsw", None),
])
def test_factory_strings_and_legacy_names(kind, params, family, nlist):
    index = ix.build_binary_index(kind, 64, train_size=10, range_k=5, **params)
    assert isinstance(index, faiss.IndexBinaryIDMap2) and index.d == 64 and index.ntotal == 0
    inner = ix._inner(index)
    assert ix.index_kind(index) == family
    if family == "ivf":
        assert inner.nlist == nlist and inner.nprobe == params.get("nprobe", 8)
    if family == "hnsw":
        assert inner.hnsw.efSearch == params.get("efSearch", 64)
        assert inner.hnsw.efConstruction == params.get("efConstruction", 40)
    codes = np.random.default_rng(0).integers(0, 256, (300, 8), dtype=np.uint8)
    ix.add_codes(index, codes, train_size=300)
    dist, _ = index.search(codes[:3], 1)
    assert index.ntotal == 300 and (dist[:, 0] == 0).all()


def test_legacy_names_map_to_factory_strings():
    assert ix.KINDS == tuple(ix.LEGACY_KINDS) == ("flat", "ivf", "hnsw")
    params = {"nlist": 64, "nprobe": 2}
    assert ix._factory_string("ivf", params) == "BIVF64" and params == {"nprobe": 2}
    assert ix._factory_string("hnsw", {}) == "BHNSW16" and ix._factory_string("BIVF8", {}) == "BIVF8"


@pytest.mark.parametrize("kind, d_bits, params, key", [
    ("lsh", 64, {}, "index.kind"),
    ("BIVF0", 64, {}, "index.kind"),
    ("BFlat", 60, {}, "d_bits"),
    ("flat", 64, {"nlist": 3}, "index.params"),
    ("BIVF256", 64, {"nlist": 3}, "index.params"),
    ("BHNSW16", 64, {"nprobe": 3}, "index.params"),
    ("ivf", 64, {"nlist": "many"}, "index.params.nlist"),
    ("BHNSW16", 64, {"efSearch": "x"}, "index.params.efSearch"),
])
def test_bad_index_config_raises_config_error(kind, d_bits, params, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ix.build_binary_index(kind, d_bits, **params)


#: conf/index/milvus.yaml names a Milvus collection, not a FAISS factory string (tests/test_milvus.py)
FAISS_CONFIGS = sorted(p for p in CONF.glob("*.yaml") if p.stem != "milvus")


@pytest.mark.parametrize("path", FAISS_CONFIGS, ids=lambda p: p.stem)
def test_index_configs_carry_factory_strings(path):
    cfg = OmegaConf.load(path)
    assert cfg.kind.startswith("B")  # a factory string, not a legacy name
    index = ix.build_binary_index(cfg.kind, 32, **cfg.params)
    assert ix.index_kind(index) == path.stem


def test_set_search_params():
    ivf, hnsw = ix.build_binary_index("BIVF8", 64), ix.build_binary_index("BHNSW16", 64)
    ix.set_search_params(ivf, nprobe=5, efSearch=7)
    ix.set_search_params(hnsw, nprobe=5, efSearch=7)
    assert ix._inner(ivf).nprobe == 5 and ix._inner(hnsw).hnsw.efSearch == 7

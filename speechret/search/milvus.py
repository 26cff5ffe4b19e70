"""A Milvus collection behind the interface of a FAISS binary index: the scale-out backend.

:func:`speechret.search.index.build_binary_index` returns a :class:`MilvusBinaryIndex` for
``kind: milvus`` (``conf/index/milvus.yaml``), so every matcher the library keeps -- the
fixed-length :class:`~speechret.search.matchers.ThresholdMatcher` (top-k and ``BER < T``), paper
B's per-category :class:`~speechret.search.matchers.TwoStageMatcher` and paper C's d = 32 group
index inside :class:`~speechret.search.keyword.KeywordMatcher` -- runs on Milvus unchanged. The
facade implements what those call on a FAISS index: ``d``, ``ntotal``, ``is_trained``,
``add_with_ids``, ``search`` (k nearest), ``range_search`` (Hamming distance ``< radius``, FAISS's
strict convention) and ``reconstruct``; :func:`speechret.search.index.save_index` writes a small
JSON descriptor (URI, collection, layout) instead of a FAISS file, and ``load_index`` reconnects.

Two vector layouts (``vector``):

* ``binary`` (default; Milvus standalone / distributed, pymilvus >= 2.4): a ``BINARY_VECTOR``
  field of ``d`` bits, metric ``HAMMING``, index ``BIN_FLAT`` (exact) or ``BIN_IVF_FLAT``
  (``nlist``; ``nprobe`` at search time). The Milvus documentation: "Binary Vector",
  "Metric Types" (HAMMING), "Range Search" (``radius`` / ``range_filter``; for HAMMING a hit has
  ``range_filter <= distance < radius``).
* ``float01``: the same codes as 0/1 ``FLOAT_VECTOR`` components, metric ``L2``, index
  ``FLAT``. For 0/1 vectors the squared L2 distance Milvus reports *is* the Hamming distance
  (``sum (a_i - b_i)^2 = #{i : a_i != b_i}``), so results are exact; it costs 32x the memory of
  packed bits. It exists because **milvus-lite 3.x (the embedded, pip-installed Milvus used by
  the tests) has no BINARY_VECTOR field** -- its ``create_collection`` answers "field ... uses
  Milvus type BinaryVector which MilvusLite does not support" -- so binary collections need a
  Milvus server (or milvus-lite 2.5, the older embedded build of the server).

Row ids are the library's row numbers (INT64 primary key). Adds are ``upsert``s, so two
library handles syncing the same rows into one collection never duplicate them; ``ntotal`` counts
the rows this handle added or loaded (what the library checks against SQLite). A ``limit`` caps
a range search (Milvus's top-k limit, 16384 by default): reaching it emits
:class:`~speechret.search.index.ApproximateSearchWarning`. Each new index (a new library
generation, a rebuild) gets its own collection ``<prefix>_<uuid>``; when a library generation
replaces an older one, :func:`drop_unreferenced` drops the collections only the older one used.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from speechret.errors import ConfigError
from speechret.hashing.bits import unpack_bits

__all__ = ["DESCRIPTOR", "MilvusBinaryIndex", "build_milvus_index", "close_clients", "collections_in",
           "drop_collection", "drop_scratch", "drop_unreferenced", "is_descriptor"]

DESCRIPTOR = "speechret-milvus-index"
VECTORS = ("binary", "float01")
MAX_LIMIT = 16384
_CLIENTS: dict[str, Any] = {}


def _client(uri: str, token_env: str | None = None) -> Any:
    """One MilvusClient per URI and process (milvus-lite opens its file once). ``token_env``: the
    name of an environment variable holding a Milvus server token (never the token itself)."""
    key = f"{uri}\0{token_env or ''}"
    if key not in _CLIENTS:
        from pymilvus import MilvusClient

        token = os.environ.get(token_env, "") if token_env else ""
        _CLIENTS[key] = MilvusClient(uri=uri, token=token) if token else MilvusClient(uri=uri)
    return _CLIENTS[key]


def close_clients() -> None:
    """Close this process's Milvus connections (milvus-lite: one process may hold a file at a time)."""
    while _CLIENTS:
        key, client = _CLIENTS.popitem()
        client.close()
        uri = key.split("\0")[0]
        if uri.endswith(".db"):  # the embedded server keeps the file open until released
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_server(uri)


class MilvusBinaryIndex:
    """A FAISS-binary-index-like facade over one Milvus collection (see the module docstring).

    ``d``: bits per code (a multiple of 8); ``uri``: a Milvus URI (``http://host:19530``) or a
    milvus-lite file (``*.db``; relative paths are taken from the working directory);
    ``vector``: ``binary`` | ``float01``; ``index_type``: ``BIN_FLAT`` / ``BIN_IVF_FLAT``
    (binary) or ``FLAT`` (float01); ``nlist`` / ``nprobe``: IVF settings; ``limit``: the most hits
    one range search may return; ``collection``: an existing collection (load) or None (a new
    one named ``<prefix>_<uuid>``)."""

    def __init__(self, d: int, uri: str = "milvus.db", vector: str = "binary", index_type: str | None = None,
                 nlist: int = 1024, nprobe: int = 16, limit: int = MAX_LIMIT, prefix: str = "speechret",
                 token_env: str | None = None, collection: str | None = None, ids: Any = None):
        if vector not in VECTORS:
            raise ConfigError(f"index.params.vector: one of {VECTORS}, got {vector!r}")
        if int(d) <= 0 or int(d) % 8:
            raise ConfigError(f"d_bits: a positive multiple of 8 bits, got {d}")
        self.d, self.uri, self.vector = int(d), str(uri), vector
        self.index_type = index_type or ("BIN_FLAT" if vector == "binary" else "FLAT")
        allowed = ("BIN_FLAT", "BIN_IVF_FLAT") if vector == "binary" else ("FLAT",)
        if self.index_type not in allowed:
            raise ConfigError(f"index.params.index_type: {self.index_type!r} does not index {vector} vectors "
                              f"(choose one of {allowed})")
        self.metric = "HAMMING" if vector == "binary" else "L2"
        self.nlist, self.nprobe, self.limit = int(nlist), int(nprobe), min(int(limit), MAX_LIMIT)
        self.prefix, self.token_env = str(prefix), token_env
        self.client = _client(self.uri, token_env)
        self.is_trained = True
        self._ids: set[int] = {int(i) for i in (ids or ())}
        # the collection is created with the first rows (:meth:`add_with_ids`): an index that is
        # built and then replaced or loaded over (matchers construct one before load) leaves nothing
        self._created = False
        if collection is None:
            collection = f"{self.prefix}_{uuid.uuid4().hex}"
        elif self.client.has_collection(collection):  # another process (or a restart) may have released it
            self.client.load_collection(collection)
            self._created = True
        elif self._ids:
            raise FileNotFoundError(f"Milvus collection {collection!r} is not at {self.uri}")
        self.collection = collection

    def _create(self, name: str) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        dtype = DataType.BINARY_VECTOR if self.vector == "binary" else DataType.FLOAT_VECTOR
        schema.add_field("code", dtype, dim=self.d)
        params = self.client.prepare_index_params()
        extra = {"nlist": self.nlist} if self.index_type == "BIN_IVF_FLAT" else {}
        params.add_index("code", index_type=self.index_type, metric_type=self.metric, params=extra)
        self.client.create_collection(name, schema=schema, index_params=params)

    # ------------------------------------------------------------------ FAISS-like interface
    @property
    def ntotal(self) -> int:
        return len(self._ids)

    def _vectors(self, codes: np.ndarray) -> list[Any]:
        c = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.d // 8)
        if self.vector == "binary":
            return [row.tobytes() for row in c]
        return [row.astype(np.float32).tolist() for row in unpack_bits(c, self.d)]

    def _distance(self, value: float) -> int:
        return int(round(float(value)))  # HAMMING: an integer already; float01: squared L2 = Hamming

    def _params(self, **extra: Any) -> dict[str, Any]:
        params = {"nprobe": self.nprobe} if self.index_type == "BIN_IVF_FLAT" else {}
        return {"metric_type": self.metric, "params": {**params, **extra}}

    def add_with_ids(self, codes: np.ndarray, ids: np.ndarray) -> None:
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64)]
        if not ids:
            return
        if not self._created:
            self._create(self.collection)
            self._created = True
        vecs = self._vectors(codes)
        for s in range(0, len(ids), 2048):
            self.client.upsert(self.collection, [{"id": i, "code": v} for i, v in
                                                 zip(ids[s:s + 2048], vecs[s:s + 2048])])
        self._ids |= set(ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances int32 (nq, k), ids int64 (nq, k))``, missing neighbours -1."""
        vecs = self._vectors(queries)
        k = int(k)
        dist = np.full((len(vecs), k), np.iinfo(np.int32).max, dtype=np.int32)
        ids = np.full((len(vecs), k), -1, dtype=np.int64)
        if not vecs or not self._ids:
            return dist, ids
        res = self.client.search(self.collection, data=vecs, limit=min(k, MAX_LIMIT), anns_field="code",
                                 search_params=self._params(), output_fields=[])
        for i, hits in enumerate(res):
            for j, h in enumerate(hits[:k]):
                ids[i, j], dist[i, j] = int(h["id"]), self._distance(h["distance"])
        return dist, ids

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows with Hamming distance ``< radius``: ``(lims, distances, ids)`` as FAISS returns them."""
        from speechret.search.index import ApproximateSearchWarning

        vecs = self._vectors(queries)
        lims = np.zeros(len(vecs) + 1, dtype=np.int64)
        if not vecs or not self._ids or radius <= 0:
            return lims, np.zeros(0, np.int64), np.zeros(0, np.int64)
        bound = float(radius) - 0.5  # integer distances: d < radius  <=>  d < radius - 0.5
        limit = min(self.limit, max(1, len(self._ids)))
        res = self.client.search(self.collection, data=vecs, limit=limit, anns_field="code",
                                 search_params=self._params(radius=bound), output_fields=[])
        dists, out = [], []
        for i, hits in enumerate(res):
            got = [(self._distance(h["distance"]), int(h["id"])) for h in hits]
            got = [(dd, ii) for dd, ii in got if dd < radius]
            if len(hits) >= limit and limit < len(self._ids):
                warnings.warn(f"Milvus range search capped at limit={limit} hits: more rows may lie within the "
                              f"radius (raise index.params.limit, at most {MAX_LIMIT})", ApproximateSearchWarning,
                              stacklevel=2)
            dists += [dd for dd, _ in got]
            out += [ii for _, ii in got]
            lims[i + 1] = lims[i] + len(got)
        return lims, np.asarray(dists, np.int64), np.asarray(out, np.int64)

    def reconstruct(self, key: int) -> np.ndarray:
        rows = self.client.get(self.collection, ids=[int(key)], output_fields=["code"]) if self._created else []
        if not rows:
            raise RuntimeError(f"id {key} is not in Milvus collection {self.collection}")
        code = rows[0]["code"]
        if self.vector == "binary":
            raw = code[0] if isinstance(code, list) else code
            return np.frombuffer(bytes(raw), dtype=np.uint8).copy()
        from speechret.hashing.bits import pack_bits

        return pack_bits(np.asarray(code, dtype=np.float32)[None] > 0.5)[0]

    # ------------------------------------------------------------------ persistence
    def descriptor(self) -> dict[str, Any]:
        return {"format": DESCRIPTOR, "version": 1, "d": self.d, "uri": self.uri, "vector": self.vector,
                "index_type": self.index_type, "nlist": self.nlist, "nprobe": self.nprobe, "limit": self.limit,
                "prefix": self.prefix, "token_env": self.token_env, "collection": self.collection,
                "ids": sorted(self._ids)}

    def save(self, path: Path) -> None:
        if self._created and hasattr(self.client, "flush"):
            self.client.flush(self.collection)
        Path(path).write_text(json.dumps(self.descriptor()))

    @classmethod
    def load(cls, path: Path) -> MilvusBinaryIndex:
        desc = json.loads(Path(path).read_text())
        if desc.get("format") != DESCRIPTOR:
            raise ValueError(f"{path} is not a speechret Milvus index descriptor")
        args = {k: v for k, v in desc.items() if k not in ("format", "version")}
        return cls(**args)


def is_descriptor(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a :class:`MilvusBinaryIndex` descriptor (rather than a FAISS file)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(64).lstrip().startswith(b'{"format": "' + DESCRIPTOR.encode())
    except OSError:
        return False


def build_milvus_index(d_bits: int, **params: Any) -> MilvusBinaryIndex:
    """An empty :class:`MilvusBinaryIndex` (``params``: its keyword arguments; ``train_size`` and
    ``range_k``, which the matchers pass to every index, are accepted and unused)."""
    params = {k: v for k, v in params.items() if k not in ("train_size", "range_k")}
    try:
        return MilvusBinaryIndex(int(d_bits), **params)
    except TypeError as exc:
        raise ConfigError(f"index.params: {exc} (a Milvus index takes uri, vector, index_type, nlist, nprobe, "
                          f"limit, prefix, token_env)") from None


def drop_collection(index: MilvusBinaryIndex) -> None:
    """Remove the index's collection from Milvus (an index no generation refers to any more)."""
    if index.client.has_collection(index.collection):
        index.client.drop_collection(index.collection)


def collections_in(directory: str | os.PathLike) -> set[tuple[str, str, str | None]]:
    """``(uri, collection, token_env)`` of every Milvus descriptor saved under ``directory`` (a
    library generation); empty for FAISS-only generations."""
    out = set()
    for f in Path(directory).rglob("*"):
        if f.is_file() and is_descriptor(f):
            d = json.loads(f.read_text())
            out.add((d["uri"], d["collection"], d.get("token_env")))
    return out


def drop_unreferenced(old: str | os.PathLike, keep: str | os.PathLike) -> list[str]:
    """Drop the collections generation ``old`` refers to and generation ``keep`` does not (a
    rebuild or a removal re-derives the index into a new collection; the old one would otherwise
    stay on the Milvus server for ever). Returns the dropped names."""
    dropped = []
    for uri, name, token_env in sorted(collections_in(old) - collections_in(keep), key=str):
        client = _client(uri, token_env)
        if client.has_collection(name):
            client.drop_collection(name)
            dropped.append(name)
    return dropped


def drop_scratch(matchers: Any) -> None:
    """Drop the Milvus collections of matchers built only to be compared and thrown away (fsck's
    fresh derivation); FAISS matchers are left to the garbage collector."""
    for m in dict(matchers).values():
        parts = list(getattr(m, "indexes", {}).values()) or [getattr(m, "index", None)]
        for index in parts:
            if isinstance(index, MilvusBinaryIndex):
                drop_collection(index)

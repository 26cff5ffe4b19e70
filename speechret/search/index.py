"""FAISS binary indexes for fixed-length hash codes (and the d = 32 group index of paper C).

One construction mechanism: :func:`build_binary_index` hands its ``kind`` — a FAISS binary index
factory string (:func:`faiss.index_binary_factory`) — to FAISS and wraps the result in
``faiss.IndexBinaryIDMap2`` so every row carries an ``int64`` item id (IDMap2 also keeps the id →
row map needed by ``reconstruct``). Strings accepted by the installed FAISS (1.15) include:

* ``"BFlat"`` — ``IndexBinaryFlat``: exhaustive, exact (the default; a linear scan of popcounts is
  memory-bound and fast up to millions of codes).
* ``"BIVF<nlist>"`` (e.g. ``"BIVF256"``; ``"BIVF<nlist>_HNSW<M>"`` for an HNSW quantizer) —
  ``IndexBinaryIVF`` with ``nlist`` inverted lists, ``nprobe`` probed at search time. IVF needs
  training: :func:`add_codes` trains it on the first batch of codes added (or a random sample of at
  most ``train_size`` of them) when it is not trained yet; ``nlist`` is clamped to the number of
  training codes. With ``nprobe == nlist`` the search is exhaustive and exact.
* ``"BHNSW<M>"`` (e.g. ``"BHNSW16"``) — ``IndexBinaryHNSW`` with ``M`` neighbours per node:
  approximate. FAISS does **not** implement ``range_search`` for binary HNSW (it raises), so
  :func:`range_search` falls back to a ``search`` with ``k = range_k`` (default 1024, capped by
  ``ntotal``) followed by the distance filter; results beyond ``range_k`` neighbours — and those
  HNSW misses — are lost (documented approximation; use flat/IVF for exact thresholds).

The structure (nlist, M, quantizer) lives in the factory string; the parameters a factory string
cannot express are keyword arguments (``conf/index/*.yaml``: ``kind`` = factory string, ``params``
= these): the search-time settings of :data:`SEARCH_PARAMS` (``nprobe`` for IVF,
``efConstruction`` / ``efSearch`` for HNSW; set as attributes, FAISS's own defaults replaced by
ours), and ``train_size`` (:func:`add_codes`) / ``range_k`` (:func:`range_search`). A parameter
that does not apply to the index built raises :class:`~speechret.errors.ConfigError`.

The family names ``"flat"`` / ``"ivf"`` / ``"hnsw"`` (:data:`KINDS`) stay accepted through the one
table :data:`LEGACY_KINDS`, because library manifests written before factory strings store them
(with ``nlist`` / ``M`` among their parameters) and the matchers default to ``"flat"``.
:func:`index_kind` names the family of a built index (``"flat"`` / ``"ivf"`` / ``"hnsw"``).

Approximate range searches never drop candidates silently: :func:`range_search` emits an
:class:`ApproximateSearchWarning` when HNSW's ``range_k`` cap is reached (a query's ``range_k``
nearest neighbours all lie inside the radius, so more may exist) and when an IVF index probes
fewer inverted lists than it has (``nprobe < nlist``: rows in unprobed lists are never
candidates). Every matcher passes its ``range_k`` (index parameter, default
:data:`DEFAULT_RANGE_K`) through to :func:`range_search`.

Radii follow FAISS: binary ``range_search`` returns the rows whose Hamming distance is
**strictly less** than the radius.

:func:`save_index` / :func:`load_index` wrap ``faiss.write_index_binary`` /
``read_index_binary``; the write is atomic (a temporary file in the same directory, fsync, then
``os.replace``), so a crash never leaves a truncated index under the final name.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from speechret.errors import ConfigError
from speechret.fileio import atomic_path

#: The family names accepted besides factory strings — the ONE name table. Each maps to a factory
#: string template whose fields are structural parameters taken out of ``params`` (default here).
#: Kept for library manifests written before factory strings and for the matchers' ``"flat"``.
LEGACY_KINDS: dict[str, tuple[str, dict[str, int]]] = {
    "flat": ("BFlat", {}),
    "ivf": ("BIVF{nlist}", {"nlist": 256}),
    "hnsw": ("BHNSW{M}", {"M": 16}),
}
KINDS = tuple(LEGACY_KINDS)
#: the ``kind`` of a Milvus-backed index (``conf/index/milvus.yaml``, :mod:`speechret.search.milvus`)
MILVUS = "milvus"
#: Runtime parameters a factory string cannot express: name -> (index family, our default).
SEARCH_PARAMS: dict[str, tuple[str, int]] = {
    "nprobe": ("ivf", 8),
    "efConstruction": ("hnsw", 40),
    "efSearch": ("hnsw", 64),
}
#: Parameters consumed by :func:`add_codes` / :func:`range_search` (accepted for every index).
CALL_PARAMS = ("train_size", "range_k")
#: default neighbour count of the search-then-filter range fallback (HNSW).
DEFAULT_RANGE_K = 1024


class ApproximateSearchWarning(UserWarning):
    """A range search on an approximate index (HNSW cap, partial IVF probing) may have missed
    rows within the radius."""


def _inner(index: Any) -> Any:
    """The wrapped index of an IDMap (or the index itself)."""
    if isinstance(index, (faiss.IndexBinaryIDMap, faiss.IndexBinaryIDMap2)):
        return faiss.downcast_IndexBinary(index.index)
    return index


def index_kind(index: Any) -> str:
    """The family of a (wrapped) binary index: ``"flat"``, ``"ivf"``, ``"hnsw"``, ``"milvus"``
    (:class:`speechret.search.milvus.MilvusBinaryIndex`) or its class name."""
    inner = _inner(index)
    if type(inner).__name__ == "MilvusBinaryIndex":
        return "milvus"
    if isinstance(inner, faiss.IndexBinaryHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexBinaryIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexBinaryFlat):
        return "flat"
    return type(inner).__name__


def _set_param(inner: Any, name: str, value: Any) -> None:
    """Set one :data:`SEARCH_PARAMS` entry on a bare IVF / HNSW index."""
    if name == "nprobe":
        inner.nprobe = int(value)
    else:
        setattr(inner.hnsw, name, int(value))


def _factory_string(kind: str, params: dict[str, Any]) -> str:
    """The FAISS factory string for ``kind``: itself, or a :data:`LEGACY_KINDS` name's template
    filled with its structural parameters (popped from ``params``)."""
    if kind not in LEGACY_KINDS:
        return kind
    template, defaults = LEGACY_KINDS[kind]
    fields = {}
    for name, default in defaults.items():
        value = params.pop(name, default)
        try:
            fields[name] = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"index.params.{name}: expected an integer, got {value!r}") from None
    return template.format(**fields)


def build_binary_index(kind: str = "BFlat", d_bits: int = 64, **params: Any) -> Any:
    """An empty binary index of ``d_bits`` bits (a multiple of 8) wrapped in ``IndexBinaryIDMap2``.

    ``kind``: a FAISS binary factory string (``"BFlat"``, ``"BIVF256"``, ``"BHNSW16"``, ...) or a
    :data:`LEGACY_KINDS` name (``"ivf"`` takes ``nlist``, default 256; ``"hnsw"`` takes ``M``,
    default 16). ``params``: :data:`SEARCH_PARAMS` of the index's family (``nprobe``, default 8;
    ``efConstruction``, default 40; ``efSearch``, default 64) and :data:`CALL_PARAMS` (ignored here).
    A bad string or a parameter that does not apply raises :class:`~speechret.errors.ConfigError`.
    Add codes with :func:`add_codes` (trains IVF if needed).
    """
    if d_bits <= 0 or d_bits % 8:
        raise ConfigError(f"d_bits: a binary index width must be a positive multiple of 8 bits, got {d_bits}")
    if kind == MILVUS:  # a Milvus collection behind the same interface (speechret.search.milvus)
        from speechret.search.milvus import build_milvus_index

        return build_milvus_index(int(d_bits), **params)
    params = dict(params)
    description = _factory_string(kind, params)
    try:
        inner = faiss.index_binary_factory(int(d_bits), description)
    except (RuntimeError, TypeError):
        raise ConfigError(f"index.kind: {kind!r} is neither a FAISS binary index factory string (e.g. 'BFlat', "
                          f"'BIVF256', 'BHNSW16') nor one of {KINDS}") from None
    family = index_kind(inner)
    if family == "ivf" and inner.nlist < 1:
        raise ConfigError(f"index.kind: {description!r} has no inverted lists (nlist must be >= 1)")
    runtime = {name: default for name, (fam, default) in SEARCH_PARAMS.items() if fam == family}
    unknown = sorted(set(params) - set(runtime) - set(CALL_PARAMS))
    if unknown:
        raise ConfigError(f"index.params: {unknown} do not apply to a {description!r} index (it takes "
                          f"{sorted(runtime) + list(CALL_PARAMS)}; its structure, e.g. nlist or M, is part "
                          f"of the factory string in index.kind)")
    for name, default in runtime.items():
        try:
            _set_param(inner, name, params.get(name, default))
        except (TypeError, ValueError):
            raise ConfigError(f"index.params.{name}: expected an integer, got {params[name]!r}") from None
    index = faiss.IndexBinaryIDMap2(inner)
    index.own_fields = True
    inner.this.disown()
    return index


def set_search_params(index: Any, **params: Any) -> None:
    """Change ``nprobe`` (IVF) or ``efSearch`` (HNSW) on a built / loaded index (others ignored)."""
    inner = _inner(index)
    family = index_kind(inner)
    for name in ("nprobe", "efSearch"):
        if name in params and SEARCH_PARAMS[name][0] == family:
            _set_param(inner, name, params[name])


def _as_codes(codes: np.ndarray, index: Any) -> np.ndarray:
    c = np.ascontiguousarray(codes)
    if c.dtype != np.uint8:
        raise ValueError(f"packed codes must be uint8, got {c.dtype}")
    c = c.reshape(-1, c.shape[-1]) if c.ndim != 2 else c
    if c.shape[1] * 8 != index.d:
        raise ValueError(f"codes have {c.shape[1] * 8} bits, index has {index.d}")
    return c


def add_codes(index: Any, codes: np.ndarray, ids: np.ndarray | None = None,
              train_size: int = 100_000, seed: int = 0) -> Any:
    """Add packed codes ``uint8 (N, d/8)`` with ``int64`` ids (default ``ntotal + arange(N)``).

    An untrained IVF is trained first on these codes (a random sample of at most ``train_size``);
    its ``nlist`` is lowered to the number of training codes when there are fewer."""
    c = _as_codes(codes, index)
    if ids is None:
        ids = np.arange(index.ntotal, index.ntotal + len(c), dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.shape != (len(c),):
        raise ValueError(f"{len(ids)} ids for {len(c)} codes")
    inner = _inner(index)
    if not inner.is_trained:
        if len(c) == 0:
            raise ValueError("an IVF index needs codes to train on")
        sample = c
        if len(c) > train_size:
            sample = c[np.random.default_rng(seed).choice(len(c), train_size, replace=False)]
        if isinstance(inner, faiss.IndexBinaryIVF) and inner.nlist > len(sample):
            _shrink_nlist(inner, len(sample))
        inner.train(sample)
        index.is_trained = True
    if len(c):
        index.add_with_ids(c, ids)
    return index


def _shrink_nlist(ivf: Any, nlist: int) -> None:
    # The inverted lists are allocated in the constructor; rebuild them for the smaller nlist.
    ivf.nlist = nlist
    invlists = faiss.ArrayInvertedLists(nlist, ivf.code_size)
    ivf.replace_invlists(invlists, True)
    invlists.this.disown()


def make_index(kind: str, codes: np.ndarray, ids: np.ndarray | None = None, **params: Any) -> Any:
    """:func:`build_binary_index` + :func:`add_codes` in one call (``d_bits`` from the codes;
    ``kind``: a factory string or a :data:`LEGACY_KINDS` name)."""
    c = np.asarray(codes)
    train_size = int(params.pop("train_size", 100_000))
    index = build_binary_index(kind, c.shape[-1] * 8, **params)
    return add_codes(index, c, ids, train_size=train_size)


def range_search(index: Any, queries: np.ndarray, radius: int, range_k: int = DEFAULT_RANGE_K,
                 warn: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAISS ``range_search`` (rows with Hamming distance ``< radius``): ``(lims, D, I)``.

    For HNSW, whose binary ``range_search`` FAISS does not implement, ``search`` with
    ``k = min(range_k, ntotal)`` then keep ``D < radius`` (approximate, see module docstring).
    ``warn``: emit an :class:`ApproximateSearchWarning` when candidates may have been dropped
    (HNSW: some query has all ``k < ntotal`` neighbours inside the radius; IVF: ``nprobe < nlist``)."""
    q = _as_codes(queries, index)
    kind = index_kind(index)
    if kind != "hnsw":
        inner = _inner(index)
        if warn and kind == "ivf" and index.ntotal and inner.nprobe < inner.nlist:
            warnings.warn(f"IVF range search probes {inner.nprobe} of {inner.nlist} inverted lists: rows in "
                          "the other lists are never candidates (set nprobe = nlist, or use a flat index, "
                          "for exact results)", ApproximateSearchWarning, stacklevel=2)
        lims, dist, ids = index.range_search(q, int(radius))
        return lims.astype(np.int64), dist.astype(np.int64), ids.astype(np.int64)
    k = max(1, min(int(range_k), index.ntotal))
    if index.ntotal == 0:
        return np.zeros(len(q) + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    dist, ids = index.search(q, k)
    keep = (dist < radius) & (ids >= 0)
    capped = int((keep.sum(axis=1) >= k).sum()) if k < index.ntotal else 0
    if warn and capped:
        warnings.warn(f"HNSW range search capped at range_k={k} neighbours: for {capped} of {len(q)} "
                      f"queries all {k} lie within the radius, so further matches are dropped (raise "
                      f"range_k, or use a flat / IVF index, for exact results)", ApproximateSearchWarning,
                      stacklevel=2)
    lims = np.zeros(len(q) + 1, dtype=np.int64)
    lims[1:] = np.cumsum(keep.sum(axis=1))
    return lims, dist[keep].astype(np.int64), ids[keep].astype(np.int64)


def save_index(index: Any, path: str | os.PathLike) -> Path:
    """Atomically write a binary index (:func:`speechret.fileio.atomic_path`); a Milvus index
    writes its descriptor (URI, collection, ids) instead."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if index_kind(index) == MILVUS:
            index.save(tmp)
        else:
            faiss.write_index_binary(index, str(tmp))
    return path


def load_index(path: str | os.PathLike) -> Any:
    """Read an index written by :func:`save_index` (keeps its nprobe / efSearch; a Milvus
    descriptor reconnects to its collection)."""
    from speechret.search.milvus import MilvusBinaryIndex, is_descriptor

    if is_descriptor(path):
        return MilvusBinaryIndex.load(Path(path))
    return faiss.read_index_binary(str(path))


__all__ = [
    "DEFAULT_RANGE_K",
    "ApproximateSearchWarning",
    "CALL_PARAMS",
    "KINDS",
    "LEGACY_KINDS",
    "SEARCH_PARAMS",
    "add_codes",
    "build_binary_index",
    "index_kind",
    "load_index",
    "make_index",
    "range_search",
    "save_index",
    "set_search_params",
]

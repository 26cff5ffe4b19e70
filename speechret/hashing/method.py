"""The hash-method object: everything that differs between the papers' codes, in one place.

A :class:`HashMethod` owns, for one method (paper A, B, C or speechret's own):

* **code construction** from a model output (:meth:`HashMethod.codes`, the single path shared by
  training-time evaluation, indexing and search, so a query and the library are never hashed
  differently);
* **code width** and the library-manifest fields it needs (:meth:`HashMethod.manifest_fields`,
  :meth:`HashMethod.check_manifest`) and how a code is stored as bytes
  (:meth:`HashMethod.encode_rows` / :meth:`HashMethod.decode_rows`);
* **distances** for each comparison mode (:meth:`HashMethod.distances`,
  :meth:`HashMethod.retrieved`, :meth:`HashMethod.ranking_distances`);
* **the matchers** it needs, as Hydra nodes whose ``_target_`` names a
  :mod:`speechret.search.matchers` class (:meth:`HashMethod.matcher_nodes`; each matcher has its
  own ``add`` / ``save`` / ``load``), and the **search modes** it supports
  (:attr:`HashMethod.mode_matcher`).

The library, search, evaluation and the LightningModules ask this object and never compare method
names. Methods register themselves by subclassing (``name = "..."``); every module of
:mod:`speechret.hashing.methods` is imported on first lookup, so adding a method is one file there
plus its configs.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from speechret.errors import ConfigError
from speechret.hashing.bits import ber_matrix, pack_bits, unpack_bits

#: comparison modes of the evaluation: whole codes (``full``) or a query contained in an item
#: (``keyword``; fixed-length codes have no containment and are compared whole).
COMPARE_MODES = ("full", "keyword")


def check_compare_mode(mode: str) -> str:
    if mode not in COMPARE_MODES:
        raise ConfigError(f"mode must be one of {COMPARE_MODES}, not {mode!r}")
    return mode


def take(codes: Any, idx: Sequence[int] | np.ndarray) -> Any:
    """Rows ``idx`` of an array of codes, or elements of a list of variable-length codes."""
    if isinstance(codes, np.ndarray):
        return codes[np.asarray(idx, dtype=np.int64)]
    return [codes[int(i)] for i in idx]


class HashMethod(ABC):
    """One hash method (see the module docstring). Instances carry the per-model context
    (``code_bits``; paper B also ``n_classes``): build them with :func:`get_hash_method`.

    Class attributes a method sets: ``name`` (the key stored in checkpoints and library
    manifests), ``reference`` (paper section / equation), ``variable_length`` (codes are lists of
    ``(S, group_bits)`` arrays), ``threshold_strict`` (``d < T`` rather than ``d ≤ T``),
    ``mode_matcher`` (search mode → name of the matcher that answers it).
    """

    name: ClassVar[str]
    reference: ClassVar[str]
    variable_length: ClassVar[bool] = False
    threshold_strict: ClassVar[bool] = True
    mode_matcher: ClassVar[Mapping[str, str]] = {}
    #: the code-construction options the method takes (``model.hash_options``, read back from a
    #: library manifest by :meth:`from_context`); a method without any takes none
    options: ClassVar[tuple[str, ...]] = ()
    _registry: ClassVar[dict[str, type[HashMethod]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            if name in HashMethod._registry and HashMethod._registry[name] is not cls:
                raise TypeError(f"two hash methods are named {name!r}: {HashMethod._registry[name]} and {cls}")
            HashMethod._registry[name] = cls

    def __init__(self, code_bits: int | None = None) -> None:
        self.code_bits = None if code_bits is None else int(code_bits)

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> HashMethod:
        """An instance from a manifest / module context (keys ``code_bits``, ...)."""
        return cls(code_bits=context.get("code_bits"))

    @classmethod
    def check_options(cls, options: Mapping[str, Any] | None, param: str = "model.hash_options") -> dict[str, Any]:
        """``options`` as a plain dict, or a :class:`ConfigError` naming ``param`` and any option
        the method does not take (a misspelt or foreign option is never ignored)."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            takes = ", ".join(cls.options) if cls.options else "no options"
            raise ConfigError(f"{param}: hash method {cls.name!r} takes {takes}, not {', '.join(unknown)}")
        return options

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code_bits={self.code_bits})"

    @property
    def search_modes(self) -> tuple[str, ...]:
        return tuple(self.mode_matcher)

    # ------------------------------------------------------------------ codes
    @abstractmethod
    def codes(self, output: Any, **options: Any) -> Any:
        """Codes of one batch of model outputs: ``bool (B, n_bits)``, or a list of B
        ``bool (S_b, group_bits)`` arrays for variable-length methods."""

    def codes_of_views(self, output: Any, n_views: int, **options: Any) -> Any:
        """Codes of ``B`` items from the outputs of their ``n_views`` test-time views (``B · V``
        rows, item-major: :class:`speechret.frontend.SpeedViews`): :meth:`codes` of
        :meth:`merge_views` -- for tanh / sigmoid relaxations a soft vote of the views."""
        return self.codes(self.merge_views(output, n_views), **options)

    def merge_views(self, output: Any, n_views: int) -> Any:
        """The output of ``B`` items from that of their ``n_views`` views (``B · V`` rows,
        item-major): every tensor field (``hash_features``, ``logits``) averaged over an item's
        views, other fields kept.  One view is the output itself.  Variable-length methods
        (per-frame outputs of different lengths) have no mean and raise
        :class:`~speechret.errors.ConfigError`.  Pure tensor arithmetic, so
        :func:`speechret.export.export_hasher` traces it into an exported hasher."""
        n_views = int(n_views)
        if n_views == 1:
            return output
        if self.variable_length:
            raise ConfigError(f"{self.name} codes are variable-length sequences: test-time views cannot be "
                              "merged into one code (set views=none)")

        def mean(x: Any) -> Any:
            if x is None:
                return None
            if x.shape[0] % n_views:
                raise ValueError(f"{x.shape[0]} output rows are not a whole number of {n_views}-view items")
            return x.reshape(x.shape[0] // n_views, n_views, *x.shape[1:]).mean(1)

        if isinstance(output, Mapping):
            return {k: mean(v) if hasattr(v, "reshape") else v for k, v in output.items()}
        return output._replace(**{k: mean(v) for k, v in output._asdict().items() if hasattr(v, "reshape")})

    def concat(self, parts: Sequence[Any]) -> Any:
        """Codes of several batches, in order."""
        if not parts:
            return np.zeros((0, self.code_bits or 0), dtype=bool)
        return np.concatenate([np.asarray(p) for p in parts])

    def code_bits_of(self, codes: Any) -> int:
        """Bits of one stored code row (the manifest's ``code_bits``)."""
        return int(np.asarray(codes).shape[1])

    # ------------------------------------------------------------------ library storage
    def manifest_fields(self, probe_codes: Any) -> dict[str, Any]:
        """The library-manifest fields for codes like ``probe_codes``."""
        return {"code_bits": self.code_bits_of(probe_codes)}

    def check_manifest(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Validate (and complete) a new library's manifest; raises :class:`ConfigError`."""
        bits = manifest.get("code_bits")
        if not isinstance(bits, int) or isinstance(bits, bool) or bits <= 0:
            raise ConfigError(f"{self.name} needs a positive integer code_bits, got {bits!r}")
        return manifest

    def pack(self, codes: Any) -> np.ndarray:
        """Fixed-length codes (bool / 0-1 bits ``(N, d)`` or packed ``uint8 (N, ceil(d/8))``) →
        packed ``uint8 (N, ceil(d/8))``, checked against ``code_bits``."""
        c = np.asarray(codes)
        if c.ndim == 1:
            c = c[None]
        nbytes = (self.code_bits + 7) // 8
        if c.dtype == np.uint8 and c.shape[-1] == nbytes and c.shape[-1] != self.code_bits:
            return np.ascontiguousarray(c)
        if c.shape[-1] != self.code_bits:
            raise ConfigError(f"codes have {c.shape[-1]} columns; expected {self.code_bits} bits "
                              f"or {nbytes} packed bytes")
        if c.dtype != bool and not np.isin(c, (0, 1)).all():
            raise ConfigError("bit codes must be bool or 0/1")
        return pack_bits(c.astype(bool))

    def bits(self, codes: Any) -> np.ndarray:
        return unpack_bits(self.pack(codes), self.code_bits)

    def category(self, bits: np.ndarray) -> list[int | None]:
        """Per-item category stored beside the code (None: the method has none)."""
        return [None] * len(bits)

    def encode_rows(self, codes: Any, n: int) -> list[tuple[bytes, int | None, int | None]]:
        """Per item ``(code bytes, n_groups, category)`` for the library's SQLite rows."""
        packed = self.pack(codes)
        if len(packed) != n:
            raise ConfigError(f"{len(packed)} codes for {n} items")
        cats = self.category(unpack_bits(packed, self.code_bits))
        return [(p.tobytes(), None, c) for p, c in zip(packed, cats)]

    def decode_rows(self, blobs: Sequence[bytes]) -> Any:
        """Stored codes in the form the matchers take: packed ``uint8 (N, ceil(d/8))``."""
        nbytes = (self.code_bits + 7) // 8
        if not blobs:
            return np.zeros((0, nbytes), np.uint8)
        return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, nbytes)

    def matcher_nodes(self, index_kind: str, index_params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Hydra nodes (``_target_`` + arguments) of the matchers a library of this method keeps,
        by name; every search mode of :attr:`mode_matcher` names one of them. Default, for
        fixed-length codes: one FAISS binary index over the whole code (``main``: top-k and
        ``BER < T`` threshold search)."""
        return {"main": {"_target_": "speechret.search.matchers.ThresholdMatcher", "d_bits": self.code_bits,
                         "kind": index_kind, **dict(index_params)}}

    # ------------------------------------------------------------------ distances
    @property
    def category_bits(self) -> int:
        """Leading bits that are a category code rather than a hash (paper B's ``h1``)."""
        return 0

    def n_bits(self, codes: Any) -> int | None:
        """Bits per compared code (without category bits); None for variable-length codes."""
        c = np.asarray(codes) if isinstance(codes, np.ndarray) else None
        if c is None or c.ndim != 2:
            return None
        return int(c.shape[1]) - self.category_bits

    def distances(self, queries: Any, database: Any, mode: str = "full", direction: str | None = None,
                  chunk: int = 4096) -> np.ndarray:
        """``(Q, N)`` distances the evaluation ranks and thresholds by (``mode``: see
        :data:`COMPARE_MODES`; ``direction`` only matters to variable-length methods)."""
        check_compare_mode(mode)
        q, db = np.asarray(queries, dtype=bool), np.asarray(database, dtype=bool)
        if len(q) == 0 or len(db) == 0:
            return np.zeros((len(q), len(db)), dtype=np.float32)
        return np.concatenate([self._pair_distances(q[s : s + chunk], db)
                               for s in range(0, len(q), chunk)]).astype(np.float32)

    def _pair_distances(self, q: np.ndarray, db: np.ndarray) -> np.ndarray:
        return ber_matrix(q, db)

    def ranking_distances(self, queries: Any, database: Any) -> np.ndarray:
        """Distances of the validation mAP that selects checkpoints."""
        return self.distances(queries, database)

    def retrieved(self, queries: Any, database: Any, threshold: float, mode: str = "full",
                  direction: str | None = None, distances: np.ndarray | None = None) -> np.ndarray:
        """``(Q, N)`` bool: the items retrieved at ``threshold`` (``d < T``, or ``d ≤ T`` when
        :attr:`threshold_strict` is False)."""
        d = self.distances(queries, database, mode, direction) if distances is None else np.asarray(distances)
        return d < threshold if self.threshold_strict else d <= threshold

    def ber(self, queries: Any, database: Any) -> np.ndarray:
        """Plain BER over the hash bits (paper A eq. (8)), without any category term."""
        k = self.category_bits
        q, db = np.asarray(queries, dtype=bool), np.asarray(database, dtype=bool)
        return ber_matrix(q[:, k:], db[:, k:]).astype(np.float32)

    def describe(self, direction: str | None = None) -> dict[str, Any]:
        """Extra report fields about how this method decides a match."""
        return {}


_DISCOVERED = False


def _discover() -> None:
    """Import every module of :mod:`speechret.hashing.methods` once (each registers its method)."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    from speechret.hashing import methods

    for info in pkgutil.iter_modules(methods.__path__):
        importlib.import_module(f"{methods.__name__}.{info.name}")
    _DISCOVERED = True


def hash_method_names() -> tuple[str, ...]:
    _discover()
    return tuple(sorted(HashMethod._registry))


def hash_method_class(name: str) -> type[HashMethod]:
    _discover()
    try:
        return HashMethod._registry[name]
    except KeyError:
        raise ConfigError(f"unknown hash method {name!r}; choose one of {sorted(HashMethod._registry)}") from None


def get_hash_method(name: str | HashMethod, **context: Any) -> HashMethod:
    """The :class:`HashMethod` named ``name`` with ``context`` (``code_bits``, ``n_classes``, a
    library manifest's fields); an instance is returned unchanged."""
    if isinstance(name, HashMethod):
        return name
    return hash_method_class(name).from_context(context)


__all__ = ["COMPARE_MODES", "HashMethod", "check_compare_mode", "get_hash_method", "hash_method_class",
           "hash_method_names", "take"]

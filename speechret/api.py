"""The public Python API: ``from speechret import Hasher, Library, SearchHit, ...``.

A thin facade over the pieces ``index.py`` and ``search.py`` run (no second implementation):

* :class:`Hasher` is :class:`speechret.hashing.hasher.Hasher` itself (checkpoint -> codes through
  the training front end, features, network and code construction);
* :class:`Library` wraps :class:`speechret.library.store.SpeechLibrary`: :meth:`Library.create`
  builds the manifest with :func:`speechret.library.indexer.open_or_create`, :meth:`Library.add`
  runs :func:`speechret.library.indexer.index_items` (the audio policy, batching, encryption,
  resumable adds of ``index.py``), :meth:`Library.search` runs
  :func:`speechret.library.query.search_audio` / :func:`~speechret.library.query.search_codes`
  (the search modes, parameter checks and windowing of ``search.py``), :meth:`Library.decrypt`
  :meth:`SpeechLibrary.decrypt` and :meth:`Library.fsck` :func:`speechret.library.fsck.fsck`;
* results are frozen dataclasses (:class:`SearchHit`, :class:`SearchResult`, :class:`AddReport`,
  :class:`DecryptedItem`, :class:`FsckReport`).

Keys: ``key`` is a cipher object, or the key material :func:`speechret.crypto.build_cipher` takes
for the library's cipher (``aes_gcm``: a key-file path or 32 bytes; the chaotic ciphers: a key
object, initial values or a JSON key file). A library opened without a key answers searches with
opaque ids (what a keyless server sees); adding, decrypting, keyed codes and ``fsck(deep=True)``
need it. Errors are the package's own (:mod:`speechret.errors`): a search mode the library's hash
method lacks or a bad ``k`` / ``threshold`` is a :class:`~speechret.errors.ConfigError` naming the
parameter, a missing key or checkpoint a :class:`~speechret.library.store.LibraryError`, a
checkpoint other than the library's a :class:`~speechret.library.store.ModelMismatchError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from speechret.audio import AudioPolicy
from speechret.crypto import build_cipher, generate_key_file
from speechret.data.corpora import load_manifest_file
from speechret.data.manifest import Item
from speechret.errors import ConfigError
from speechret.hashing.hasher import Hasher
from speechret.hashing.sliding import DEFAULT_DIRECTION
from speechret.library.indexer import index_items, open_or_create
from speechret.library.query import check_search_args, search_audio, search_codes
from speechret.library.store import MANIFEST, LibraryError, SpeechLibrary, holds_data

__all__ = ["AddReport", "DecryptedItem", "FsckReport", "Hasher", "Library", "SearchHit", "SearchResult"]

#: ``conf/index/<name>.yaml``: the named index configs ``Library.create(index=...)`` accepts.
INDEX_CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "index"
#: manifest file suffixes :meth:`Library.add` reads as a manifest (else: one audio file)
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".ndjson")
#: item fields :meth:`Library.add` seals with each item (``id`` names it)
ITEM_METADATA = ("id", "speaker", "label", "text")
#: fields of :meth:`SpeechLibrary.item` that are storage details, not metadata
_STORAGE_FIELDS = ("item_id", "oid", "blob_path", "checksum", "row", "n_groups", "category", "added_at")


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class SearchHit:
    """One hit. ``item_id``: the caller's id with the key, the opaque on-disk id without it;
    ``rank``: 1-based; ``distance``: the BER the mode ranks by (``topk`` / ``threshold``: the whole
    code; ``two_stage``: ``h2`` inside the query's category; ``keyword`` / ``full_speech``: the mean
    group BER of the alignment); ``span``: ``(start, end)`` in 27-bit groups of the stored sequence
    (paper C modes only); ``metadata``: the item's decrypted metadata (with the key; else None)."""

    item_id: str
    rank: int
    distance: float
    span: tuple[int, int] | None = None
    metadata: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SearchResult:
    """The hits of one query (``query``: its path, or ``query<i>`` / ``codes<i>``), best first."""

    query: str
    hits: tuple[SearchHit, ...]
    mode: str

    @property
    def ids(self) -> list[str]:
        return [h.item_id for h in self.hits]

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __getitem__(self, i: int) -> SearchHit:
        return self.hits[i]


@dataclass(frozen=True)
class AddReport:
    """What :meth:`Library.add` did (:class:`speechret.library.indexer.IndexReport`, frozen):
    ``failed`` lists ``(path, reason)`` of the files the audio policy skipped."""

    added: int
    skipped_existing: int
    failed: tuple[tuple[str, str], ...]
    audio_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class DecryptedItem:
    """An item's audio as added (``pcm``: int16, bit-exact; ``audio``: ``pcm / 32768`` float32)
    at ``sample_rate``, and its decrypted metadata (source path, speaker, label, text, duration)."""

    item_id: str
    pcm: np.ndarray
    sample_rate: int
    metadata: Mapping[str, Any]

    @property
    def audio(self) -> np.ndarray:
        return self.pcm.astype(np.float32) / 32768.0


@dataclass(frozen=True)
class FsckReport:
    """:func:`speechret.library.fsck.fsck`'s report: ``ok``; ``problems`` maps each non-empty
    check (``missing``, ``corrupt``, ``misnamed``, ``orphans``, ``tmp``, ``manifest``, ``index``,
    ``unauthentic``) to its entries; ``unrecoverable``: ids to remove and add again; ``raw``: the
    report dict as ``index.py command=fsck`` prints it."""

    ok: bool
    items: int
    deep: bool
    problems: Mapping[str, tuple]
    unrecoverable: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    CHECKS = ("missing", "corrupt", "misnamed", "orphans", "tmp", "manifest", "index", "unauthentic")

    @classmethod
    def from_dict(cls, report: Mapping[str, Any]) -> FsckReport:
        problems = {k: tuple(report.get(k) or ()) for k in cls.CHECKS if report.get(k)}
        return cls(ok=bool(report["ok"]), items=int(report.get("items", 0)), deep=bool(report.get("deep")),
                   problems=MappingProxyType(problems), unrecoverable=tuple(report.get("unrecoverable") or ()),
                   raw=MappingProxyType(dict(report)))


# ------------------------------------------------------------------------------ helpers
def _index_config(index: str | Mapping[str, Any], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"kind", "params"}`` of ``index``: a name of ``conf/index`` (``flat``, ``hnsw``, ``ivf``),
    a FAISS binary factory string (``BFlat``, ``BHNSW32``, ``BIVF1024``) or a ``{kind, params}``
    mapping; ``params`` override the named config's."""
    if isinstance(index, Mapping):
        node = {"kind": index.get("kind"), "params": dict(index.get("params") or {})}
    elif isinstance(index, str) and (INDEX_CONF_DIR / f"{index}.yaml").is_file():
        from omegaconf import OmegaConf

        raw = OmegaConf.to_container(OmegaConf.load(INDEX_CONF_DIR / f"{index}.yaml"), resolve=True)
        node = {"kind": raw["kind"], "params": dict(raw.get("params") or {})}
    elif isinstance(index, str) and index.startswith("B"):
        node = {"kind": index, "params": {}}
    else:
        known = sorted(p.stem for p in INDEX_CONF_DIR.glob("*.yaml"))
        raise ConfigError(f"index: {index!r} is neither a named index config ({', '.join(known)}), a FAISS binary "
                          f"factory string (BFlat, BHNSW<M>, BIVF<nlist>) nor a {{kind, params}} mapping")
    if not isinstance(node["kind"], str) or not node["kind"]:
        raise ConfigError(f"index.kind: a FAISS binary factory string is needed, got {node['kind']!r}")
    node["params"].update(dict(params or {}))
    return node


def _cipher(name: str, key: Any, create_key: bool = False) -> Any:
    """A cipher object from ``key`` (a cipher object is used as it is)."""
    if key is None:
        raise LibraryError("key: this operation needs the library's key (Library.create/open(..., key=...))")
    if hasattr(key, "encrypt") and hasattr(key, "decrypt"):
        return key
    if create_key:
        if name != "aes_gcm" or not isinstance(key, (str, os.PathLike)):
            raise ConfigError("create_key: only an aes_gcm key file path can be created (key=<path>)")
        path = Path(os.path.expanduser(os.fspath(key)))
        if not path.exists():
            generate_key_file(path)
    material = os.fspath(Path(os.path.expanduser(os.fspath(key)))) if isinstance(key, (str, os.PathLike)) else key
    return build_cipher(name, material)


def _item_of(entry: Any, i: int) -> Item:
    """One :class:`Item` from an audio path, a ``(path, metadata)`` pair or an :class:`Item`."""
    if isinstance(entry, Item):
        return entry
    meta: Mapping[str, Any] = {}
    if isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[1], Mapping):
        entry, meta = entry
    if not isinstance(entry, (str, os.PathLike)):
        raise ConfigError(f"items[{i}]: expected an audio path, a (path, metadata) pair or an Item, got "
                          f"{type(entry).__name__}")
    unknown = sorted(set(meta) - set(ITEM_METADATA))
    if unknown:
        raise ConfigError(f"items[{i}]: metadata key(s) {unknown} are not stored; a library seals "
                          f"{', '.join(ITEM_METADATA)} (and the source path) with each item")
    path = Path(os.path.expanduser(os.fspath(entry))).resolve()
    label = meta.get("label", -1)
    return Item(id=str(meta.get("id", path.stem)), path=str(path), speaker=str(meta.get("speaker", "")),
                label=int(label) if label is not None else -1, text=str(meta.get("text", "")))


def _items(source: Any) -> list[Item]:
    """The items of a manifest file, an audio path, or a sequence of paths / pairs / Items."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(os.path.expanduser(os.fspath(source)))
        if p.suffix.lower() in MANIFEST_SUFFIXES:
            return list(load_manifest_file(p))
        return [_item_of(p, 0)]
    if isinstance(source, Iterable):
        items = [_item_of(e, i) for i, e in enumerate(source)]
        seen: dict[str, str] = {}
        for it in items:
            if it.id in seen and seen[it.id] != it.path:
                raise ConfigError(f"items: two files have the id {it.id!r} ({seen[it.id]} and {it.path}); give "
                                  f"distinct ids with (path, {{'id': ...}}) pairs")
            seen[it.id] = it.path
        return items
    raise ConfigError(f"items: expected a manifest path, audio paths or (path, metadata) pairs, got "
                      f"{type(source).__name__}")


def _is_single(query: Any) -> bool:
    return isinstance(query, (str, os.PathLike)) or (isinstance(query, (np.ndarray, torch.Tensor)) and query.ndim == 1)


def run_search(store: Any, hasher: Hasher | None, query: Any, codes: Any, args: Mapping[str, Any], policy: Any,
               make_result: Callable[[str, Sequence[dict]], SearchResult]) -> SearchResult | list[SearchResult]:
    """The search shared by :class:`Library` and :class:`speechret.client.RemoteLibrary` (whose
    ``store`` talks to the service): by ``codes`` (one code, or one ``(S, 27)`` group array for
    paper C, gives one result; a batch a list) through :func:`search_codes`, else by audio
    ``query`` (a path or 1-D waveform, or a list) through :func:`search_audio`, named after the
    paths (repeats get ``#i``). ``make_result(name, hit_rows)`` builds each :class:`SearchResult`."""
    if codes is not None:
        grouped = store.hashing.variable_length  # paper C: one query is one (S, 27) array
        single = isinstance(codes, np.ndarray) and codes.ndim == (2 if grouped else 1)
        batch = ([codes] if grouped else codes[None]) if single else codes
        results = [make_result(f"codes{i}", hits) for i, hits in enumerate(search_codes(store, batch, **args))]
        return results[0] if single else results
    single = _is_single(query)
    queries = [query] if single else list(query)
    names = [str(q) if isinstance(q, (str, os.PathLike)) else f"query{i}" for i, q in enumerate(queries)]
    names = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
    by_query: dict[str, list[dict]] = {n: [] for n in names}
    for r in search_audio(store, hasher, queries, names, policy=policy, **args):
        by_query[r["query"]].append(r)
    results = [make_result(n, by_query[n]) for n in names]
    return results[0] if single else results


# ------------------------------------------------------------------------------ Library
class Library:
    """An encrypted, searchable speech library (a :class:`SpeechLibrary` with its checkpoint's
    :class:`Hasher` and, optionally, its key). Build with :meth:`create` or :meth:`open`; use as a
    context manager or call :meth:`close`. The wrapped objects are :attr:`store` and
    :attr:`hasher` (None when opened without a checkpoint: then only :meth:`search` with
    ``codes=`` works)."""

    def __init__(self, store: SpeechLibrary, hasher: Hasher | None = None, cipher: Any = None,
                 policy: AudioPolicy | None = None, batch_size: int = 32) -> None:
        self.store = store
        self.hasher = hasher
        self.cipher = cipher
        self.policy = policy
        self.batch_size = int(batch_size)

    # ---------------------------------------------------------------- create / open
    @classmethod
    def create(cls, path: str | os.PathLike, checkpoint: str | os.PathLike, key: Any, *, cipher: str = "aes_gcm",
               index: str | Mapping[str, Any] = "flat", index_params: Mapping[str, Any] | None = None,
               keyed_codes: bool = False, create_key: bool = False, device: str = "cpu", batch_size: int = 32,
               policy: AudioPolicy | None = None) -> Library:
        """A new, empty library at ``path`` for the codes of ``checkpoint`` under ``key`` (see the
        module docstring; ``create_key=True`` writes a new aes_gcm key file at ``key`` when it does
        not exist). ``cipher``: a ``conf/cipher`` name (``aes_gcm``, ``hyperchaotic``,
        ``rossler``); ``index``: ``flat`` / ``hnsw`` / ``ivf`` (``conf/index``), a FAISS binary
        factory string or ``{kind, params}``; ``keyed_codes``: :mod:`speechret.hashing.keyed`. A
        directory that already holds a library or library data is refused."""
        path = Path(os.path.expanduser(os.fspath(path)))
        if (path / MANIFEST).is_file() or holds_data(path):
            raise LibraryError(f"{path} already holds a speech library (or library data): use Library.open")
        index_cfg = _index_config(index, index_params)
        ciph = _cipher(cipher, key, create_key)
        hasher = cls._hasher(checkpoint, device, batch_size)
        store = open_or_create(path, hasher, ciph, checkpoint, index_cfg, keyed_codes=keyed_codes)
        return cls(store, hasher, ciph, policy, batch_size)

    @classmethod
    def open(cls, path: str | os.PathLike, key: Any = None, checkpoint: str | os.PathLike | None = None, *,
             force: bool = False, device: str = "cpu", batch_size: int = 32,
             policy: AudioPolicy | None = None) -> Library:
        """Open the library at ``path``. ``key`` (optional): its key, as for :meth:`create` (the
        cipher is the manifest's); a wrong key raises :class:`~speechret.crypto.WrongKeyError`.
        ``checkpoint`` (optional; needed to add or to search by audio): must be the library's
        (sha256 in its manifest) unless ``force``."""
        path = Path(os.path.expanduser(os.fspath(path)))
        manifest = SpeechLibrary.read_manifest(path)
        ciph = None if key is None else _cipher(manifest["cipher"], key)
        store = SpeechLibrary.open(path, ciph)
        try:
            hasher = None
            if checkpoint is not None:
                store.check_model(checkpoint, force=force)
                hasher = cls._hasher(checkpoint, device, batch_size)
                if hasher.method != store.method:
                    raise LibraryError(f"{path}: library holds {store.method} codes, checkpoint {checkpoint} makes "
                                       f"{hasher.method}")
        except BaseException:
            store.close()
            raise
        return cls(store, hasher, ciph, policy, batch_size)

    @staticmethod
    def _hasher(checkpoint: str | os.PathLike, device: str, batch_size: int) -> Hasher:
        if checkpoint is None:
            raise LibraryError("checkpoint: creating a library needs the model checkpoint whose codes it stores")
        return Hasher.from_checkpoint(checkpoint, device=device, batch_size=batch_size)

    # ---------------------------------------------------------------- properties
    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def method(self) -> str:
        """The hash method of the stored codes (``paper_a``, ``paper_b``, ``paper_c``, ``speechret``)."""
        return self.store.method

    @property
    def search_modes(self) -> tuple[str, ...]:
        """The search modes of this library's hash method."""
        return self.store.hashing.search_modes

    @property
    def manifest(self) -> Mapping[str, Any]:
        return MappingProxyType(self.store.manifest)

    def __len__(self) -> int:
        return len(self.store)

    def __contains__(self, item_id: str) -> bool:
        return item_id in self.store

    def __repr__(self) -> str:
        key = "with key" if self.cipher is not None else "no key"
        return f"Library({str(self.path)!r}, {self.method}, {len(self)} items, {key})"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _need(self, what: str, hasher: bool = False, key: bool = False) -> None:
        missing = []
        if hasher and self.hasher is None:
            name = self.store.manifest.get("checkpoint_name") or "model.ckpt"
            missing.append(("checkpoint", f"checkpoint=<{name}>"))
        if key and self.cipher is None:
            missing.append(("key", "key=..."))
        if missing:
            raise LibraryError(f"{what} needs the library's {' and '.join(m for m, _ in missing)}: "
                               f"Library.open({str(self.path)!r}, {', '.join(a for _, a in missing)})")

    # ---------------------------------------------------------------- add
    def add(self, items: Any, *, progress: bool = False) -> AddReport:
        """Hash, encrypt and add audio (resumable: items already in the library are skipped).

        ``items``: a manifest file (CSV / TSV / JSONL, the columns of
        :class:`~speechret.data.manifest.Item`), an audio path, or a sequence of audio paths (id =
        file stem), ``(path, {"id", "speaker", "label", "text"})`` pairs or
        :class:`~speechret.data.manifest.Item` objects. Files the audio policy refuses are
        skipped and listed in :attr:`AddReport.failed`."""
        self._need("add", hasher=True, key=True)
        rep = index_items(self.store, self.hasher, _items(items), self.cipher, batch_size=self.batch_size,
                          progress=progress, policy=self.policy)
        return AddReport(rep.added, rep.skipped_existing, tuple(rep.failed), rep.audio_seconds, rep.wall_seconds)

    # ---------------------------------------------------------------- search
    def search(self, query: Any = None, *, codes: Any = None, mode: str = "topk", k: int = 10,
               threshold: float = 0.25, gamma: float = 0.25, stage2: str = "topk",
               direction: str = DEFAULT_DIRECTION, metadata: bool | None = None) -> SearchResult | list[SearchResult]:
        """Search by audio (``query``: a path or 1-D waveform at the model's rate, or a list of
        them; needs the checkpoint) or by ``codes`` (from :meth:`Hasher.codes`: ``(N, bits)`` or,
        for paper C, a list of ``(S, 27)`` groups). One query gives a :class:`SearchResult`, a list
        gives a list.

        ``mode``: one of :attr:`search_modes` -- ``topk`` (``k`` nearest), ``threshold`` (every
        item with ``BER < threshold``), ``two_stage`` (paper B: the query's category, then top-``k``
        or, ``stage2="threshold"``, ``BER(h2) < threshold``), ``keyword`` / ``full_speech``
        (paper C: sliding group matching at ``gamma``, ``direction``; ``k`` caps, 0 = all).
        ``metadata``: attach each hit's decrypted metadata (default: when opened with the key)."""
        if (query is None) == (codes is None):
            raise ConfigError("search: give exactly one of query (audio) or codes=")
        args = {"mode": mode, "k": k, "threshold": threshold, "gamma": gamma, "stage2": stage2,
                "direction": direction}
        check_search_args(**args, lib=self.store)
        if metadata and self.cipher is None:
            self._need("metadata=True", key=True)
        with_meta = self.cipher is not None if metadata is None else bool(metadata)
        if codes is None:
            self._need("search by audio", hasher=True)
        return run_search(self.store, self.hasher, query, codes, args, self.policy,
                          lambda name, hits: self._result(name, hits, mode, with_meta))

    def _result(self, name: str, hits: Sequence[dict], mode: str, with_meta: bool) -> SearchResult:
        return SearchResult(name, tuple(
            SearchHit(item_id=h["item_id"], rank=int(h["rank"]), distance=float(h["ber"]),
                      span=None if h.get("span") is None else (int(h["span"][0]), int(h["span"][1])),
                      metadata=self._metadata(h["item_id"]) if with_meta else None)
            for h in hits), mode)

    def _metadata(self, item_id: str) -> Mapping[str, Any]:
        return MappingProxyType({k: v for k, v in self.store.item(item_id).items() if k not in _STORAGE_FIELDS})

    # ---------------------------------------------------------------- items
    def metadata(self, item_id: str) -> Mapping[str, Any]:
        """An item's decrypted metadata (source path, speaker, label, text, duration, sample rate)."""
        self._need("metadata", key=True)
        return self._metadata(item_id)

    def decrypt(self, item_id: str, verify: bool = True) -> DecryptedItem:
        """An item's audio (bit-exact int16 PCM as added) and metadata; needs the key. A blob that
        fails its checksum or authentication raises (naming the item)."""
        self._need("decrypt", key=True)
        pcm = self.store.decrypt(item_id, verify=verify)
        meta = self._metadata(item_id)
        return DecryptedItem(item_id, np.asarray(pcm), int(meta.get("sample_rate") or self.store.manifest.get(
            "sample_rate") or 16000), meta)

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        """Remove items (row + blob) and re-derive the index (:meth:`SpeechLibrary.remove`)."""
        return self.store.remove(list(item_ids))

    def fsck(self, deep: bool = False) -> FsckReport:
        """Check rows, blobs, checksums, manifest and index (no key needed); ``deep=True`` (with the
        key) also authenticates every item's metadata and blob."""
        if deep:
            self._need("fsck(deep=True)", key=True)
        return FsckReport.from_dict(self.store.fsck(deep=deep))

    def stats(self) -> dict[str, Any]:
        return self.store.stats()

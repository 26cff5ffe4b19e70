"""The data owner's / user's side of the cloud deployment: :class:`RemoteLibrary`, a
:class:`speechret.Library` whose storage and search run on a keyless service
(:mod:`speechret.service`).

Everything secret stays here. The client hashes audio with the library's checkpoint
(:class:`~speechret.hashing.hasher.Hasher`), encrypts the PCM, seals the metadata and derives
the opaque ids with the library key, and keys the codes when the library keys codes -- with the
same code the local library runs (:class:`speechret.library.remote.ItemSealer`, which
:meth:`SpeechLibrary.add_batch` uses too). It sends sealed items and (keyed) query codes, and
opens what comes back: hits name opaque ids, which it maps to its own ids through their sealed
metadata; blobs are checked against the blob digest inside the authenticated metadata, then
decrypted. The pipeline around that is the local one, unchanged: adds go through
:func:`speechret.library.indexer.index_items` (audio policy, batching, resumable adds) and
searches through :func:`speechret.library.query.search_audio` / ``search_codes`` (modes,
parameter checks, windows), both driven by :class:`_RemoteStore`, which stands in for the
:class:`SpeechLibrary` they normally write to and search.

HTTP is :mod:`httpx` (one pooled connection per client). The key never leaves the process: it
is neither sent nor logged, and only the token goes into a header.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import numpy as np

from speechret.api import (
    _STORAGE_FIELDS,
    AddReport,
    DecryptedItem,
    FsckReport,
    Library,
    SearchHit,
    SearchResult,
    _cipher,
    _items,
    run_search,
)
from speechret.audio import AudioPolicy
from speechret.errors import ConfigError, SpeechretError
from speechret.hashing import get_hash_method
from speechret.hashing.hasher import Hasher
from speechret.hashing.sliding import DEFAULT_DIRECTION
from speechret.library.indexer import index_items
from speechret.library.layout import IntegrityError, LibraryError, ModelMismatchError, file_sha256
from speechret.library.query import check_search_args
from speechret.library.remote import ItemSealer, SealedItem, decode_b64, encode_b64

__all__ = ["RemoteLibrary", "ServiceClient", "ServiceError", "read_token_file", "remote_from_cfg"]

#: the fields of the ``remote`` config node of ``conf/index.yaml`` / ``conf/search.yaml``
REMOTE_FIELDS = ("url", "token_file")


def read_token_file(path: str | os.PathLike | None, param: str = "remote.token_file") -> str:
    """A service token from an owner-only file (0600 / 0400: the key-file rule,
    :func:`speechret.crypto.base.check_key_file_mode`, as the service's own token files,
    :mod:`speechret.service.auth`). A missing, loose, empty or whitespace-holding file is a
    :class:`ConfigError` naming ``param``; the token is never shown."""
    from speechret.crypto.base import check_key_file_mode
    from speechret.service.auth import MIN_TOKEN_CHARS

    if path in (None, "", False):
        raise ConfigError(f"{param}: the service needs a token: give {param}=<a 0600 file holding it> (the write "
                          f"token to index, the read token to search); never the token itself")
    p = Path(os.path.expanduser(os.fspath(path)))
    if not p.is_file():
        shown = str(p) if os.sep in str(path) or str(path).startswith(("~", ".")) or len(str(path)) < MIN_TOKEN_CHARS \
            else "(the value is not shown: is it a token? give the file holding it)"
        raise ConfigError(f"{param}: no such file {shown}")
    try:
        check_key_file_mode(p)
    except Exception as exc:  # KeyFileModeError
        raise ConfigError(f"{param}: {str(exc).replace('key file', 'token file', 1)}") from None
    token = p.read_text().strip()
    if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
        raise ConfigError(f"{param}: {p} holds no token (empty, shorter than {MIN_TOKEN_CHARS} characters, or "
                          f"with whitespace); make one with python -m speechret.service new-token")
    return token


def remote_from_cfg(node: Any) -> tuple[str, str]:
    """``(url, token)`` from a ``remote`` config node (``url``, ``token_file``). Any other field
    (``remote.token=...``: a token in a config or on the command line) is refused, naming it."""
    extra = sorted(str(k) for k in node.keys() if str(k) not in REMOTE_FIELDS)
    if extra:
        raise ConfigError(f"{', '.join('remote.' + k for k in extra)}: not a remote option (a token is never "
                          f"accepted in a config or on the command line; its value is not shown): give "
                          f"remote.url and remote.token_file (a 0600 file holding the token)")
    url = str(node.get("url") or "")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"remote.url: expected http(s)://host:port of the search service, not {url!r}")
    return url, read_token_file(node.get("token_file"))


class ServiceError(SpeechretError, RuntimeError):
    """The service refused a request (``status``: the HTTP status; the message is its detail)."""

    def __init__(self, status: int, detail: str, method: str = "", path: str = ""):
        super().__init__(f"{method} {path}: HTTP {status}: {detail}".strip())
        self.status, self.detail = status, detail


class ServiceClient:
    """The service's HTTP API, typed (``url``: its base URL; ``token``: a read or write token)."""

    def __init__(self, url: str, token: str, timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout,
                                 transport=transport)
        self._limits: dict[str, int] | None = None

    def close(self) -> None:
        self.http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = self.http.request(method, path, **kwargs)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            raise ServiceError(r.status_code, detail if isinstance(detail, str) else str(detail), method, path)
        return r

    def health(self) -> dict:
        return self._call("GET", "/health").json()

    def manifest(self) -> dict:
        return self._call("GET", "/v1/manifest").json()

    def stats(self) -> dict:
        return self._call("GET", "/v1/stats").json()

    def fsck(self) -> dict:
        return self._call("GET", "/v1/fsck").json()

    @property
    def limits(self) -> dict[str, int]:
        if self._limits is None:
            self._limits = dict(self.stats()["limits"])
        return self._limits

    def add(self, items: Sequence[SealedItem]) -> list[str]:
        """Upload sealed items in batches within the service's limits; returns the ids added."""
        lim = self.limits
        budget = int(lim["max_body_bytes"] * 0.7)  # base64 is 4/3 of the bytes, plus JSON framing
        added: list[str] = []
        batch: list[dict] = []
        size = 0
        for it in items:
            doc = {"item_id": it.item_id, "blob": encode_b64(it.blob),
                   "blob_sha256": it.blob_sha256 or hashlib.sha256(it.blob).hexdigest(), "code": encode_b64(it.code),
                   "meta": encode_b64(it.meta), "duration": float(it.duration), "sample_rate": int(it.sample_rate)}
            n = len(doc["blob"]) + len(doc["code"]) + len(doc["meta"]) + 256
            if batch and (len(batch) >= lim["max_items"] or size + n > budget):
                added += self._call("POST", "/v1/items", json={"items": batch}).json()["added"]
                batch, size = [], 0
            batch.append(doc)
            size += n
        if batch:
            added += self._call("POST", "/v1/items", json={"items": batch}).json()["added"]
        return added

    def search(self, rows: Sequence[bytes], **params: Any) -> list[list[dict]]:
        """Hits per query code row (stored form, keyed already): ``{item_id, rank, distance, span}``."""
        out: list[list[dict]] = []
        step = self.limits["max_queries"]
        for i in range(0, len(rows), step):
            body = {"codes": [encode_b64(r) for r in rows[i:i + step]], **params}
            out += self._call("POST", "/v1/search", json=body).json()["results"]
        return out

    def lookup(self, item_ids: Sequence[str]) -> tuple[dict[str, dict], list[str]]:
        """Rows of opaque ids (``meta`` decoded to bytes) and the ids the service does not hold."""
        found: dict[str, dict] = {}
        unknown: list[str] = []
        ids = list(dict.fromkeys(item_ids))
        step = self.limits["max_lookup"]
        for i in range(0, len(ids), step):
            r = self._call("POST", "/v1/items/lookup", json={"item_ids": ids[i:i + step]}).json()
            for row in r["items"]:
                row["meta"] = decode_b64(row["meta"], "meta")
                found[row["item_id"]] = row
            unknown += r["unknown"]
        return found, unknown

    def blob(self, item_id: str) -> bytes:
        return self._call("GET", f"/v1/items/{item_id}/blob").content

    def delete(self, item_id: str) -> list[str]:
        return self._call("DELETE", f"/v1/items/{item_id}").json()["removed"]


class _RemoteStore:
    """Stands in for :class:`SpeechLibrary` in :func:`index_items` / :func:`search_codes` /
    :func:`search_audio`: adds and searches go to the service; ids, metadata, keyed codes stay
    here (see the module docstring)."""

    def __init__(self, owner: RemoteLibrary):
        self.owner = owner
        self.manifest = owner.manifest
        self.hashing = owner.hashing
        self.method = self.hashing.name
        self.path = owner.url
        self._known: set[str] = set()
        self.meta: dict[str, dict] = {}  # own id -> opened metadata (+ duration, sample_rate)
        self.oids: dict[str, str] = {}   # own id -> opaque id

    # ---- adding (index_items)
    def prefetch(self, ids: Sequence[str]) -> None:
        sealer = self.owner._sealer("add")
        oids = {sealer.oid(i): i for i in ids}
        found, _ = self.owner.service.lookup(list(oids))
        self._known |= {oids[o] for o in found}

    def has(self, item_id: str) -> bool:
        return item_id in self._known

    def add_batch(self, items: Sequence[dict], codes: Any, cipher: Any = None) -> list[str]:
        sealer = self.owner._sealer("add")
        items = list(items)
        sealed = sealer.seal(items, codes)
        names = {s.item_id: it["item_id"] for s, it in zip(sealed, items)}
        added = self.owner.service.add(sealed)
        self._known |= {names[o] for o in added}
        return [names[o] for o in added]

    def sync_index(self) -> int:
        return 0  # the service syncs its index before every search

    def decrypt(self, item_id: str, cipher: Any = None) -> np.ndarray:
        """An item's int16 PCM (:meth:`RemoteLibrary.decrypt`; ``cipher`` is the owner's, unused):
        what :func:`speechret.library.query.decrypt_hits` asks of a library."""
        return self.owner.decrypt(item_id).pcm

    # ---- searching (search_codes)
    def _rows(self, codes: Any, prekeyed: bool) -> list[bytes]:
        h = self.hashing
        if h.variable_length:
            seqs = [np.asarray(g) for g in codes]
        else:
            try:
                seqs = h.bits(codes)
            except ConfigError as exc:
                raise ConfigError(f"codes: {exc}") from None
        if self.manifest.get("keyed_codes") and not prekeyed:
            seqs = self.owner._sealer("searching a library with keyed codes").key_codes(seqs)
        return [row for row, _, _ in h.encode_rows(seqs, len(seqs))]

    def _ask(self, codes: Any, prekeyed: bool, **params: Any) -> list[list[dict]]:
        results = self.owner.service.search(self._rows(codes, prekeyed), **params)
        names = self.owner._names([h["item_id"] for hits in results for h in hits])
        return [[{"item_id": names.get(h["item_id"], h["item_id"]), "row": None, "ber": float(h["distance"]),
                  "rank": int(h["rank"]), "span": None if h.get("span") is None else tuple(h["span"])}
                 for h in hits] for hits in results]

    def search_topk(self, codes: Any, k: int, prekeyed: bool = False) -> list[list[dict]]:
        return self._ask(codes, prekeyed, mode="topk", k=int(k))

    def search_threshold(self, codes: Any, ber: float, prekeyed: bool = False) -> list[list[dict]]:
        return self._ask(codes, prekeyed, mode="threshold", threshold=float(ber))

    def search_two_stage(self, codes: Any, k: int | None = None, ber: float | None = None,
                         prekeyed: bool = False) -> list[list[dict]]:
        if (k is None) == (ber is None):
            raise ValueError("give exactly one of k (top-k) or ber (threshold)")
        if k is not None:
            return self._ask(codes, prekeyed, mode="two_stage", stage2="topk", k=int(k))
        return self._ask(codes, prekeyed, mode="two_stage", stage2="threshold", threshold=float(ber))

    def search_keyword(self, groups: Any, gamma: float, mode: str = "keyword", direction: str | None = None,
                       prekeyed: bool = False) -> list[dict]:
        return self._ask([groups], prekeyed, mode=mode, gamma=float(gamma), k=0,
                         direction=direction or DEFAULT_DIRECTION)[0]


class RemoteLibrary:
    """A library served by :mod:`speechret.service`, used like :class:`speechret.Library`.

    ``url``: the service's base URL; ``token``: the write token (to add / remove) or the read
    token (search, decrypt); ``key``: the library's key as :meth:`Library.open` takes it (a key
    file path, 32 bytes, a cipher...; without it searches return opaque ids and nothing can be
    added or decrypted); ``checkpoint``: the library's checkpoint (to add, or to search by audio;
    its sha256 must be the manifest's unless ``force``). A wrong key is refused before anything is
    sent (its key id differs from the manifest's)."""

    def __init__(self, url: str, token: str, key: Any = None, checkpoint: str | os.PathLike | None = None, *,
                 force: bool = False, device: str = "cpu", batch_size: int = 32, policy: AudioPolicy | None = None,
                 timeout: float = 60.0, transport: httpx.BaseTransport | None = None):
        self.url = url
        self.service = ServiceClient(url, token, timeout=timeout, transport=transport)
        try:
            self.manifest: dict[str, Any] = self.service.manifest()
            self.hashing = get_hash_method(self.manifest["hash_method"], **self.manifest)
            self.unlock(key)
            self.hasher: Hasher | None = None
            if checkpoint is not None:
                want = self.manifest.get("checkpoint_sha256")
                if want and not force and file_sha256(checkpoint) != want:
                    raise ModelMismatchError(f"checkpoint {checkpoint} is not the model the library at {url} was "
                                             f"indexed with ({self.manifest.get('checkpoint_name')}); use its "
                                             f"checkpoint, or force=True")
                self.hasher = Hasher.from_checkpoint(checkpoint, device=device, batch_size=batch_size)
                if self.hasher.method != self.hashing.name:
                    raise LibraryError(f"{url}: library holds {self.hashing.name} codes, checkpoint {checkpoint} "
                                       f"makes {self.hasher.method}")
        except BaseException:
            self.service.close()
            raise
        self.policy = policy
        self.batch_size = int(batch_size)
        self.store = _RemoteStore(self)

    def unlock(self, key: Any) -> RemoteLibrary:
        """Take the library's key after opening (as ``key=`` would have): a caller that decides
        whether it needs the key from the manifest (e.g. keyed codes) opens once, reads
        :attr:`manifest`, then unlocks, without a second connection or manifest fetch."""
        self.cipher = None if key is None else _cipher(self.manifest["cipher"], key)
        self.sealer = None if self.cipher is None else ItemSealer(self.cipher, self.manifest)
        return self

    @staticmethod
    def create_library(path: str | os.PathLike, checkpoint: str | os.PathLike, key: Any, **kwargs: Any) -> Path:
        """An empty library directory for the service to serve (:meth:`Library.create`, keyword
        arguments as there: ``cipher``, ``index``, ``keyed_codes``, ``create_key``...). The key
        is used only to record its key id in the manifest; copy the directory to the server."""
        Library.create(path, checkpoint=checkpoint, key=key, **kwargs).close()
        return Path(path)

    # ---------------------------------------------------------------- plumbing
    def _sealer(self, what: str) -> ItemSealer:
        if self.sealer is None:
            raise LibraryError(f"{what} needs the library's key: RemoteLibrary({self.url!r}, token, key=...)")
        return self.sealer

    def _names(self, oids: Sequence[str]) -> dict[str, str]:
        """Opaque id -> own id (with the key; metadata cached), else the opaque id itself."""
        if self.sealer is None or not oids:
            return {o: o for o in oids}
        found, _ = self.service.lookup(list(oids))
        out = {}
        for oid, row in found.items():
            meta = self.sealer.sealer.open(oid, row["meta"])
            own = str(meta.get("id", oid))
            if self.sealer.oid(own) != oid:
                raise IntegrityError(f"item {oid}: its sealed metadata names another item (moved or tampered)")
            self.store.meta[own] = {**meta, "duration": row["duration"], "sample_rate": row["sample_rate"]}
            self.store.oids[own] = oid
            out[oid] = own
        return out

    @property
    def method(self) -> str:
        return self.hashing.name

    @property
    def search_modes(self) -> tuple[str, ...]:
        return self.hashing.search_modes

    def __len__(self) -> int:
        return int(self.service.stats()["items"])

    def __repr__(self) -> str:
        return f"RemoteLibrary({self.url!r}, {self.method}, {'with key' if self.cipher is not None else 'no key'})"

    def close(self) -> None:
        self.service.close()

    def __enter__(self) -> RemoteLibrary:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---------------------------------------------------------------- add / search
    def add(self, items: Any, *, progress: bool = False) -> AddReport:
        """Hash, encrypt, seal and upload (as :meth:`Library.add`; resumable: items the service
        holds already are skipped)."""
        if self.hasher is None:
            raise LibraryError(f"add needs the library's checkpoint: RemoteLibrary({self.url!r}, token, key=..., "
                               f"checkpoint=...)")
        self._sealer("add")
        pending = _items(items)
        self.store.prefetch([it.id for it in pending])
        rep = index_items(self.store, self.hasher, pending, self.cipher, batch_size=self.batch_size,
                          progress=progress, policy=self.policy)
        return AddReport(rep.added, rep.skipped_existing, tuple(rep.failed), rep.audio_seconds, rep.wall_seconds)

    def search(self, query: Any = None, *, codes: Any = None, mode: str = "topk", k: int = 10,
               threshold: float = 0.25, gamma: float = 0.25, stage2: str = "topk",
               direction: str = DEFAULT_DIRECTION, metadata: bool | None = None) -> SearchResult | list[SearchResult]:
        """As :meth:`Library.search`: audio is hashed here, codes keyed here, only codes are sent."""
        if (query is None) == (codes is None):
            raise ConfigError("search: give exactly one of query (audio) or codes=")
        args = {"mode": mode, "k": k, "threshold": threshold, "gamma": gamma, "stage2": stage2, "direction": direction}
        check_search_args(**args, lib=self.store)
        if metadata:
            self._sealer("metadata=True")
        with_meta = self.cipher is not None if metadata is None else bool(metadata)
        if codes is None and self.hasher is None:
            raise LibraryError("search by audio needs the library's checkpoint (checkpoint=...)")
        return run_search(self.store, self.hasher, query, codes, args, self.policy,
                          lambda name, hits: self._result(name, hits, mode, with_meta))

    def _result(self, name: str, hits: Sequence[dict], mode: str, with_meta: bool) -> SearchResult:
        return SearchResult(name, tuple(
            SearchHit(item_id=h["item_id"], rank=int(h["rank"]), distance=float(h["ber"]),
                      span=None if h.get("span") is None else (int(h["span"][0]), int(h["span"][1])),
                      metadata=self.metadata(h["item_id"]) if with_meta else None)
            for h in hits), mode)

    # ---------------------------------------------------------------- items
    def _oid(self, item_id: str) -> str:
        return self.store.oids.get(item_id) or self._sealer("this").oid(item_id)

    def metadata(self, item_id: str) -> Mapping[str, Any]:
        """An item's decrypted metadata (fetched sealed, opened here)."""
        sealer = self._sealer("metadata")
        if item_id not in self.store.meta:
            oid = sealer.oid(item_id)
            if oid not in self._names([oid]):
                raise KeyError(f"no item {item_id!r} in the library at {self.url}")
        meta = self.store.meta[item_id]
        return MappingProxyType({k: v for k, v in meta.items()
                                 if k not in (*_STORAGE_FIELDS, "id", "code_sha256", "blob_sha256")})

    def decrypt(self, item_id: str) -> DecryptedItem:
        """Fetch an item's ciphertext and decrypt it here. The blob must match the digest sealed
        in its (authenticated) metadata, so a server cannot swap blobs unnoticed."""
        meta = self.metadata(item_id)
        oid = self._oid(item_id)
        blob = self.service.blob(oid)
        if hashlib.sha256(blob).hexdigest() != self.store.meta[item_id].get("blob_sha256"):
            raise IntegrityError(f"item {item_id!r}: the blob the service returned is not the one sealed with it")
        pcm = self.cipher.decrypt(oid, blob)
        return DecryptedItem(item_id, np.asarray(pcm), int(meta.get("sample_rate") or 16000), meta)

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        """Remove items (by own id with the key, else by opaque id) from the service."""
        out = []
        for i in item_ids:
            self.service.delete(self._oid(i) if self.sealer is not None else i)
            self.store._known.discard(i)
            out.append(i)
        return out

    def fsck(self) -> FsckReport:
        """The service's keyless fsck."""
        return FsckReport.from_dict(self.service.fsck())

    def stats(self) -> dict[str, Any]:
        return self.service.stats()

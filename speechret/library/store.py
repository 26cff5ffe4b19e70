"""The on-disk encrypted speech library: one directory per library, safe to hand to a stranger.

Layout::

    <lib>/manifest.json           format version, hash method, code bits, model / hash config,
                                  checkpoint sha256 + file name (never a path), cipher name + key
                                  id (never the key), keyed_codes, index kind / params, created
    <lib>/manifest.json.bak       the same bytes (and a copy in ``library.db``): repair restores it
    <lib>/library.db              SQLite (WAL): ``items`` (opaque id, row, code, blob checksum,
                                  duration, sealed metadata) and ``meta`` (key / value)
    <lib>/blobs/<aa>/<id>.bin     encrypted audio, one file per item, ``<id>`` the opaque item id
    <lib>/index/hw<NNN>-<t>/      derived FAISS state covering rows ``< NNN``
    <lib>/.lock                   the writer lock (:mod:`speechret.library.lock`, ``flock(2)``)

Nothing descriptive is in clear (:mod:`speechret.library.sealing`): item ids are keyed HMACs of
the caller's ids, metadata is AES-GCM sealed with the item id as associated data. A key holder
(a library opened with its cipher) speaks the caller's ids and sees metadata; a keyless server
sees opaque ids, codes, distances and sizes only.

Writers (:meth:`add_batch`, :meth:`remove`, :meth:`rebuild`, repair) hold the library's
exclusive lock, so a second writer waits, then fails naming the library. Within :meth:`add_batch`
(under the lock) every blob of a batch is written first (temp file, fsync, rename, directory
fsync), THEN all rows go in ONE SQLite transaction: a crash before the commit leaves orphan blobs
only, never a committed item with a foreign blob. (Before the lock, a second ``index.py`` run
re-encrypted items the first had just committed into the same blob paths, so the committed rows
kept checksums of blobs that were no longer there, then died on the UNIQUE id: the skip test and
the blob writes now happen under the lock, so a committed item's blob is never rewritten.) Row numbers are never reused (``meta.next_row``),
so an index generation's high-water mark and row count pin exactly the rows it covers; search
refuses a generation whose count differs from SQLite (:meth:`matchers`). The directory layout, errors
and manifest files are :mod:`speechret.library.layout`; the index and search half of the class is
:mod:`speechret.library.searching`; checking and repairing is :mod:`speechret.library.fsck`;
saved matchers are :mod:`speechret.library.generations`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechret.crypto import CipherError, WrongKeyError
from speechret.hashing import HashMethod, get_hash_method, hash_method_names
from speechret.fileio import atomic_write_bytes
from speechret.hashing.keyed import KeyedCodes
from speechret.library.generations import INDEX_DIR, MatcherGenerations
from speechret.library.layout import (
    _COLUMNS,
    BLOBS,
    DB_NAME,
    FORMAT_VERSION,
    MANIFEST,
    MANIFEST_BAK,
    OPAQUE_ID,
    IntegrityError,
    LibraryError,
    ModelMismatchError,
    _connect,
    _library_errors,
    _scrub_paths,
    blob_relpath,
    cipher_key_id,
    db_manifest,
    file_sha256,
    holds_data,
    manifest_bytes,
    write_manifest,
)
from speechret.library.lock import LibraryLock
from speechret.library.remote import ItemSealer, add_sealed
from speechret.library.sealing import Sealer
from speechret.library.searching import IndexedSearch

__all__ = ["BLOBS", "DB_NAME", "FORMAT_VERSION", "MANIFEST", "MANIFEST_BAK", "OPAQUE_ID", "IntegrityError",
           "LibraryError", "ModelMismatchError", "SpeechLibrary", "blob_relpath", "cipher_key_id", "db_manifest",
           "file_sha256", "holds_data", "write_manifest"]


class SpeechLibrary(IndexedSearch):
    """An encrypted, searchable speech library directory (see the module docstring).

    Create with :meth:`create`, open with :meth:`open`. ``cipher`` (optional at open: fsck,
    rebuild, repair and search need no key) is used by :meth:`add_batch`, :meth:`decrypt`, the
    metadata and keyed codes; its key id must equal the manifest's."""

    def __init__(self, path: Path, manifest: dict, cipher: Any = None):
        self.path = Path(path)
        self.manifest = manifest
        self.cipher = None
        self.sealer: Sealer | None = None
        self.method: str = manifest["hash_method"]
        self.hashing: HashMethod = get_hash_method(self.method, **manifest)
        self.code_bits: int | None = manifest.get("code_bits")
        self.n_classes: int | None = manifest.get("n_classes")
        self.keyed_codes: bool = bool(manifest.get("keyed_codes", False))
        self._keyed: KeyedCodes | None = None
        if cipher is not None:
            self._check_cipher(cipher)
            self._set_cipher(cipher)
        idx = manifest.get("index") or {}
        self.index_kind: str = idx.get("kind", "flat")
        self.index_params: dict = dict(idx.get("params") or {})
        self.lock = LibraryLock(self.path, LibraryError)
        self._conn = _connect(self.path / DB_NAME)
        self._matchers: dict[str, Any] | None = None
        self._checked_version: tuple[int, int] | None = None  # IndexedSearch.sync_index
        self._hwm = 0
        self._count = 0
        self.generations = MatcherGenerations(self.path, self.hashing, self.index_kind, self.index_params)

    def _set_cipher(self, cipher: Any) -> None:
        self.cipher, self.sealer = cipher, Sealer(cipher)
        if self.keyed_codes:
            if self.hashing.variable_length and self.hashing.code_bits is None:
                raise LibraryError(f"library {self.path}: keyed codes need a fixed group width")
            self._keyed = KeyedCodes(self.sealer.code_secret, self.hashing)

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, path: str | os.PathLike, manifest: dict, cipher: Any) -> SpeechLibrary:
        """Create a new library at ``path`` (must hold no library data).

        ``manifest`` keys: ``hash_method``, the fields that method needs
        (:meth:`HashMethod.manifest_fields`), ``model`` / ``hash`` (config dicts), ``checkpoint``
        (a path: only its sha256 and file name are kept) or ``checkpoint_sha256``, ``index``
        ({kind, params}), ``keyed_codes`` (bool, default False). Filled in here:
        ``format_version``, ``cipher``, ``key_id``, ``created``."""
        path = Path(path)
        if cipher is None:
            raise LibraryError("creating a library needs a cipher")
        m = dict(manifest)
        method = m.get("hash_method")
        if method not in hash_method_names():
            raise LibraryError(f"hash_method must be one of {hash_method_names()}, got {method!r}")
        with _library_errors():
            get_hash_method(method, **m).check_manifest(m)
        for k in ("key", "key_material", "passphrase"):
            if k in m:
                raise LibraryError(f"manifest must not contain {k!r}: keys are never stored")
        ckpt = m.pop("checkpoint", None)
        if ckpt is not None:
            m["checkpoint_name"] = Path(ckpt).name
            m["checkpoint_sha256"] = file_sha256(ckpt)
        m.setdefault("checkpoint_sha256", None)
        m = _scrub_paths(m)
        idx = m.get("index") or {}
        m["index"] = {"kind": idx.get("kind", "flat"), "params": dict(idx.get("params") or {})}
        m["keyed_codes"] = bool(m.get("keyed_codes", False))
        m.update(format_version=FORMAT_VERSION, cipher=getattr(cipher, "name", type(cipher).__name__),
                 key_id=cipher_key_id(cipher), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if (path / MANIFEST).exists():
            raise FileExistsError(f"{path} already holds a speech library")
        path.mkdir(parents=True, exist_ok=True)
        with LibraryLock(path, LibraryError)():
            if (path / MANIFEST).exists():
                raise FileExistsError(f"{path} already holds a speech library")
            data = holds_data(path)
            if data is not None:
                raise LibraryError(
                    f"{path} holds library data ({data}) but no {MANIFEST}: refusing to create a new library "
                    f"(and key) over it. Restore {MANIFEST} from {MANIFEST_BAK} or a backup, or run "
                    f"index.py command=repair library={path} (it restores the copy kept in {DB_NAME})")
            (path / BLOBS).mkdir(exist_ok=True)
            (path / INDEX_DIR).mkdir(exist_ok=True)
            raw = manifest_bytes(m)
            conn = _connect(path / DB_NAME)
            try:  # the copy in the database first: a crash before the manifest leaves it restorable
                conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                                 [("format_version", str(FORMAT_VERSION)), ("manifest", raw.decode()),
                                  ("next_row", "0")])
            finally:
                conn.close()
            write_manifest(path, raw)
        return cls(path, m, cipher)

    @classmethod
    def read_manifest(cls, path: str | os.PathLike) -> dict:
        """The checked manifest of the library at ``path`` (see :meth:`open`)."""
        path = Path(path)
        mp = path / MANIFEST
        how = (f"run index.py command=repair library={path} to restore it (from the copy in {DB_NAME} "
               f"or {MANIFEST_BAK})")
        if not mp.is_file():
            if holds_data(path):
                raise LibraryError(f"{path} holds library data but {MANIFEST} is missing: {how}")
            raise LibraryError(f"{path} is not a speech library (no {MANIFEST})")
        raw = mp.read_bytes()
        try:
            m = json.loads(raw)
            if not isinstance(m, dict) or "hash_method" not in m:
                raise ValueError("not a library manifest object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise LibraryError(f"{mp}: malformed manifest ({exc}): {how}") from exc
        if m.get("format_version") != FORMAT_VERSION:
            raise LibraryError(f"{path}: library format {m.get('format_version')!r}, this code reads format "
                               f"{FORMAT_VERSION} (format 1 kept metadata in clear: re-index it)")
        if not (path / DB_NAME).is_file():
            raise LibraryError(f"{path}: {DB_NAME} is missing")
        copy = db_manifest(path)
        ref = None if copy is None else json.loads(copy)
        if ref is not None and ref != m:
            diff = sorted(k for k in set(m) | set(ref) if m.get(k) != ref.get(k))
            raise LibraryError(f"{mp} differs from the copy kept in {path / DB_NAME} (fields {', '.join(diff)}): "
                               f"edited or damaged; {how}")
        return m

    @classmethod
    def open(cls, path: str | os.PathLike, cipher: Any = None) -> SpeechLibrary:
        """Open an existing library. No key is needed (fsck, rebuild, repair, search); a
        ``cipher`` whose name or key id differs from the manifest's raises
        (:class:`~speechret.crypto.WrongKeyError`) before any data is read. A missing, malformed
        or edited manifest raises a :class:`LibraryError` saying how to restore it."""
        return cls(Path(path), cls.read_manifest(path), cipher)

    def _check_cipher(self, cipher: Any) -> None:
        name = getattr(cipher, "name", type(cipher).__name__)
        if name != self.manifest["cipher"]:
            raise CipherError(f"library {self.path} was encrypted with cipher "
                              f"{self.manifest['cipher']!r}, not {name!r}")
        kid = cipher_key_id(cipher)
        if kid != self.manifest["key_id"]:
            raise WrongKeyError(f"wrong key for library {self.path}: it was encrypted under key id "
                                f"{self.manifest['key_id']}, the key given has id {kid}")

    def _need_cipher(self, cipher: Any, what: str) -> Any:
        cipher = cipher or self.cipher
        if cipher is None:
            raise LibraryError(f"{what} needs the library's key (give a cipher to open() or to {what})")
        if cipher is not self.cipher:
            self._check_cipher(cipher)
            if self.cipher is None:
                self._set_cipher(cipher)
        return cipher

    def check_model(self, checkpoint: str | os.PathLike, force: bool = False) -> None:
        """Refuse codes of another checkpoint (its sha256 differs from the manifest's) unless ``force``."""
        want = self.manifest.get("checkpoint_sha256")
        if not want or force:
            return
        got = file_sha256(checkpoint)
        if got != want:
            raise ModelMismatchError(
                f"checkpoint {checkpoint} (sha256 {got[:16]}…) is not the model library {self.path} was indexed "
                f"with ({self.manifest.get('checkpoint_name') or 'checkpoint'}, sha256 {want[:16]}…): codes of "
                f"different models are not comparable; use the library's checkpoint, or force=true")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SpeechLibrary:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta / ids
    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        r = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    def _exists(self, oid: str) -> bool:
        return self._conn.execute("SELECT 1 FROM items WHERE item_id = ?", (oid,)).fetchone() is not None

    def oid(self, item_id: str) -> str:
        """The opaque on-disk id of ``item_id`` (the caller's id with the key, or an opaque id)."""
        if not isinstance(item_id, str) or not item_id:
            raise LibraryError(f"item_id must be a non-empty str, got {item_id!r}")
        if self.sealer is not None:
            oid = self.sealer.item_id(item_id)
            if self._exists(oid) or not (OPAQUE_ID.match(item_id) and self._exists(item_id)):
                return oid
        return item_id

    def _unknown(self, item_id: str) -> str:
        hint = "" if self.sealer is not None or OPAQUE_ID.match(item_id) else \
            " (opened without its key, a library knows items by their opaque ids only)"
        return f"no item {item_id!r} in library {self.path}{hint}"

    def _public(self, oid: str, meta: dict) -> str:
        return meta.get("id", oid) if self.sealer is not None else oid

    def _describe(self, r: Sequence) -> dict:
        d = dict(zip(_COLUMNS, r))
        d.pop("code")
        sealed = d.pop("meta")
        oid = d["item_id"]
        meta = self.sealer.open(oid, sealed) if self.sealer is not None else {}
        d["oid"], d["item_id"] = oid, self._public(oid, meta)
        d.update({k: v for k, v in meta.items() if k not in ("id", "code_sha256", "blob_sha256")})
        return d

    # ------------------------------------------------------------------ codes
    def _keyed_codes(self, codes: Any, prekeyed: bool = False) -> Any:
        """Codes as stored: with keyed codes, transformed by the library key (unless ``prekeyed``)."""
        if not self.keyed_codes or prekeyed:
            return codes
        if self._keyed is None:
            raise LibraryError(f"library {self.path} stores keyed codes: codes must be keyed on the client "
                               f"(open it with its key, or pass prekeyed=True for codes keyed already)")
        with _library_errors():
            return self._keyed.apply(codes)

    def _codes(self, max_row: int | None = None, min_row: int = 0):
        q, args = "SELECT row, item_id, code FROM items WHERE row >= ?", [min_row]
        if max_row is not None:
            q += " AND row < ?"
            args.append(max_row)
        res = self._conn.execute(q + " ORDER BY row", args).fetchall()
        rows = np.array([r[0] for r in res], dtype=np.int64)
        with _library_errors():
            return rows, [r[1] for r in res], self.hashing.decode_rows([r[2] for r in res])

    def load_codes(self, max_row: int | None = None, min_row: int = 0):
        """Stored codes in row order: ``(rows int64, item_ids, codes)`` (ids as :meth:`item` gives
        them; codes as the matchers take them, :meth:`HashMethod.decode_rows`)."""
        rows, oids, codes = self._codes(max_row, min_row)
        if self.sealer is not None:
            names = self._names(rows.tolist())
            oids = [names.get(int(r), o) for r, o in zip(rows, oids)]
        return rows, oids, codes

    # ------------------------------------------------------------------ adding / removing
    def has(self, item_id: str) -> bool:
        return self._exists(self.oid(item_id))

    def add_batch(self, items: Sequence[dict], codes: Any, cipher: Any = None, prekeyed: bool = False) -> list[str]:
        """Encrypt and add ``items`` (dicts with item_id, pcm int16, sample_rate, optionally
        duration and any metadata: source, speaker, label, text, ... — all sealed) with their
        ``codes`` (paper A/B: ``(N, d)`` bits or packed bytes; paper C: a list of ``(S, 27)`` groups
        / ``(S,)`` uint32 words). Under the writer lock: items already committed (and repeats in
        the batch) are skipped, the blobs are written, then the rows go in one transaction.
        Returns the ids actually added."""
        cipher = self._need_cipher(cipher, "add_batch")
        items = list(items)
        sealer = ItemSealer(cipher, self.manifest, self.sealer if cipher is self.cipher else None)
        encoded = sealer.encode(self._keyed_codes(codes, prekeyed), len(items), prekeyed=True)
        with self.lock():
            seen: set[str] = set()
            pending = []
            for it, row in zip(items, encoded):
                oid = sealer.oid(it["item_id"])
                if oid in seen or self._exists(oid):
                    continue
                seen.add(oid)
                pending.append((it["item_id"], it, row))
            # one implementation of both halves (speechret.library.remote): seal, then store
            sealed = [sealer.seal_one(it, row) for _, it, row in pending]
            names = {s.item_id: iid for s, (iid, _, _) in zip(sealed, pending)}
            added = add_sealed(self, sealed)
        return [names[oid] for oid in added]

    def _write_blob(self, path: Path, blob: bytes) -> None:
        """Write one blob crash-safely (temp file, fsync, rename, directory fsync)."""
        atomic_write_bytes(path, blob)

    def _insert_rows(self, rows: list[dict]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            nxt = self._next_row()
            for i, r in enumerate(rows):
                self._insert_row(conn, {**r, "row": nxt + i})
            self._set_meta("next_row", str(nxt + len(rows)))
            self._commit(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _insert_row(self, conn: sqlite3.Connection, r: dict) -> None:
        conn.execute(f"INSERT INTO items({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                     [r[c] for c in _COLUMNS])

    def _commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    def _next_row(self) -> int:
        """The next row number: rows are never reused, even after :meth:`remove`."""
        top = self._conn.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM items").fetchone()[0]
        return max(top, int(self.get_meta("next_row", "0") or 0))

    def remove(self, item_ids: Sequence[str]) -> list[str]:
        """Remove items (row, blob) under the writer lock and re-derive the index, so an item
        whose blob or row is unrecoverable can be re-added. Unknown ids raise, removing nothing."""
        with self.lock():
            oids = [self.oid(i) for i in item_ids]
            unknown = [i for i, o in zip(item_ids, oids) if not self._exists(o)]
            if unknown:
                raise LibraryError(f"library {self.path} holds no item {', '.join(map(repr, unknown))}; nothing removed")
            paths = [self._conn.execute("SELECT blob_path FROM items WHERE item_id = ?", (o,)).fetchone()[0]
                     for o in oids]
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._set_meta("next_row", str(self._next_row()))
                conn.executemany("DELETE FROM items WHERE item_id = ?", [(o,) for o in oids])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            for rel in paths:  # after the commit: a crash here leaves orphans, which repair removes
                (self.path / rel).unlink(missing_ok=True)
            self.rebuild()
        return list(item_ids)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def __contains__(self, item_id: str) -> bool:
        return self.has(item_id)

    def item(self, item_id: str) -> dict:
        """One item's row; with the key also its metadata (source, speaker, label, text, ...)."""
        r = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE item_id = ?",
                               (self.oid(item_id),)).fetchone()
        if r is None:
            raise KeyError(self._unknown(item_id))
        return self._describe(r)

    def items(self) -> Iterator[dict]:
        """Every item in row order (as :meth:`item`)."""
        for r in self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM items ORDER BY row").fetchall():
            yield self._describe(r)

    def get_blob(self, item_id: str, verify: bool = True) -> bytes:
        """The encrypted blob; with ``verify`` its sha256 must equal the recorded checksum."""
        oid = self.oid(item_id)
        meta = self._conn.execute("SELECT blob_path, checksum FROM items WHERE item_id = ?", (oid,)).fetchone()
        if meta is None:
            raise KeyError(self._unknown(item_id))
        try:
            blob = (self.path / meta[0]).read_bytes()
        except FileNotFoundError:
            raise LibraryError(f"item {item_id!r}: blob {meta[0]} of library {self.path} is missing "
                               f"(remove it with index.py command=remove and re-add it)") from None
        if verify and hashlib.sha256(blob).hexdigest() != meta[1]:
            raise IntegrityError(f"item {item_id!r}: blob {meta[0]} fails its sha256 checksum "
                                 f"(tampered or corrupted)")
        return blob

    def decrypt(self, item_id: str, cipher: Any = None, verify: bool = True) -> np.ndarray:
        """Decrypted int16 PCM. AEAD failures are re-raised naming the item."""
        cipher = self._need_cipher(cipher, "decrypt")
        oid = self.oid(item_id)
        blob = self.get_blob(item_id, verify=verify)
        try:
            return cipher.decrypt(oid, blob)
        except CipherError as exc:
            raise type(exc)(f"item {item_id!r}: {exc}") from exc

    def stats(self) -> dict:
        n, dur, groups = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(duration), 0), COALESCE(SUM(n_groups), 0) FROM items").fetchone()
        blob_bytes = sum(p.stat().st_size for p in (self.path / BLOBS).rglob("*.bin"))
        cur = self.generations.current()
        return {"items": n, "duration_s": float(dur), "n_groups": int(groups), "blob_bytes": blob_bytes,
                "hash_method": self.method, "code_bits": self.code_bits, "cipher": self.manifest["cipher"],
                "key_id": self.manifest["key_id"], "index_kind": self.index_kind,
                "keyed_codes": self.keyed_codes, "index_high_water": cur[0] if cur else 0}

    def fsck(self, remove: bool = False, verify_checksums: bool = True, deep: bool = False) -> dict:
        """Check the library (:func:`speechret.library.fsck.fsck`; ``deep`` needs the key)."""
        from speechret.library.fsck import fsck

        return fsck(self, remove=remove, verify_checksums=verify_checksums, deep=deep)


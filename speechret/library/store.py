"""The on-disk encrypted speech library: one directory per library.

Layout::

    <lib>/manifest.json           format version, hash method, code bits, model / hash config,
                                  checkpoint sha256, cipher name + key id (never the key), index
                                  kind / params, created time (written atomically, once)
    <lib>/library.db              SQLite (WAL): ``items`` (metadata + packed code + blob checksum)
                                  and ``meta`` (key / value)
    <lib>/blobs/<aa>/<name>.bin   encrypted audio, one file per item (``aa`` = first two hex chars
                                  of sha256(item_id))
    <lib>/index/hw<NNN>-<t>/      derived FAISS state covering rows ``< NNN`` (the high-water
                                  mark is in the directory name, so index and mark change together)

Crash safety (:meth:`SpeechLibrary.add_batch`): every blob of a batch is written first (temp file,
fsync, rename, directory fsync), THEN all rows of the batch are inserted in ONE SQLite
transaction. A crash before the commit leaves only orphan blobs (no rows): a later add of the same
items overwrites them and :meth:`SpeechLibrary.fsck` reports / removes them. A committed item is
never re-added (:meth:`SpeechLibrary.has`), so re-running an interrupted add is idempotent.

The FAISS indexes are derived state: :meth:`sync_index` adds rows committed since the index's
high-water mark and writes a new index directory atomically (temp dir + rename, then the old one
is removed); :meth:`rebuild` recreates them from the codes in SQLite. Searches sync lazily.
What each stored code is (its width, bytes, category, matchers and search modes) is the hash
method's business (:class:`speechret.hashing.HashMethod`); the generations of saved matchers are
:class:`speechret.library.generations.MatcherGenerations`.

This module is longer than 500 lines because :class:`SpeechLibrary` is one transactional object:
its blob writing, SQLite rows, checksum verification and fsck share the crash-safety invariant
above, and splitting them would spread that invariant over several files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechret.crypto import AuthenticationError, CipherError, WrongKeyError
from speechret.errors import ConfigError, SpeechretError
from speechret.fileio import atomic_write_bytes
from speechret.hashing import HashMethod, get_hash_method, hash_method_class, hash_method_names
from speechret.library.generations import INDEX_DIR, MatcherGenerations
from speechret.search import index as ix

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_NAME = "library.db"
BLOBS = "blobs"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")

__all__ = [
    "FORMAT_VERSION", "IntegrityError", "LibraryError", "SpeechLibrary", "cipher_key_id",
    "file_sha256",
]


class LibraryError(SpeechretError, RuntimeError):
    """A malformed, incompatible or inconsistent library (or a misuse of its API)."""


class IntegrityError(AuthenticationError):
    """A stored blob does not match its recorded sha256 (tampered or corrupted on disk)."""


# ------------------------------------------------------------------------------------ helpers
@contextlib.contextmanager
def _library_errors() -> Iterator[None]:
    """A hash method's :class:`ConfigError` about codes or a manifest, as a :class:`LibraryError`."""
    try:
        yield
    except ConfigError as exc:
        raise LibraryError(str(exc)) from exc


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while b := fh.read(chunk):
            h.update(b)
    return h.hexdigest()


def cipher_key_id(cipher: Any) -> str:
    """The cipher's public key id: ``cipher.key_id`` (AES-GCM); for the chaotic ciphers, which
    have none, a domain-separated sha256 fingerprint of the key and system parameters (16 hex).
    The key itself is never stored."""
    kid = getattr(cipher, "key_id", None)
    if callable(kid):
        kid = kid()
    if kid:
        return str(kid)
    key = getattr(cipher, "key", None)
    if key is None or not hasattr(key, "as_tuple"):
        raise CipherError(f"cannot derive a key id for cipher {type(cipher).__name__}")
    params = getattr(cipher, "params", None)
    params = params.__dict__ if hasattr(params, "__dict__") else params
    material = json.dumps({"name": getattr(cipher, "name", type(cipher).__name__),
                           "key": [float.hex(float(v)) for v in key.as_tuple()],
                           "params": repr(params)}, sort_keys=True)
    return hashlib.sha256(b"speechret-chaotic-key-id\0" + material.encode()).hexdigest()[:16]


def _blob_relpath(item_id: str) -> str:
    digest = hashlib.sha256(item_id.encode("utf-8")).hexdigest()
    name = item_id if _SAFE_ID.match(item_id) else digest[:32]
    return f"{BLOBS}/{digest[:2]}/{name}.bin"


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id     TEXT PRIMARY KEY,
    row         INTEGER UNIQUE NOT NULL,
    source      TEXT,
    duration    REAL,
    sample_rate INTEGER,
    speaker     TEXT,
    label       INTEGER,
    text        TEXT,
    category    INTEGER,
    blob_path   TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    code        BLOB NOT NULL,
    n_groups    INTEGER,
    added_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_COLUMNS = ("item_id", "row", "source", "duration", "sample_rate", "speaker", "label", "text",
            "category", "blob_path", "checksum", "code", "n_groups", "added_at")


# ------------------------------------------------------------------------------------ library
class SpeechLibrary:
    """An encrypted, searchable speech library directory (see the module docstring).

    Create with :meth:`create`, open with :meth:`open`. ``cipher`` (optional at open) is used by
    :meth:`add_batch` and :meth:`decrypt`; its key id must equal the manifest's."""

    def __init__(self, path: Path, manifest: dict, cipher: Any = None):
        self.path = Path(path)
        self.manifest = manifest
        self.cipher = None
        if cipher is not None:
            self._check_cipher(cipher)
            self.cipher = cipher
        #: the :class:`~speechret.hashing.HashMethod` of the stored codes: their width, storage,
        #: matchers and search modes (the library never compares method names).
        self.method: str = manifest["hash_method"]
        self.hashing: HashMethod = get_hash_method(self.method, **manifest)
        self.code_bits: int | None = manifest.get("code_bits")
        self.n_classes: int | None = manifest.get("n_classes")
        idx = manifest.get("index") or {}
        self.index_kind: str = idx.get("kind", "flat")
        self.index_params: dict = dict(idx.get("params") or {})
        self._conn = sqlite3.connect(self.path / DB_NAME, isolation_level=None, timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._matchers: dict[str, Any] | None = None
        self._hwm = 0
        self.generations = MatcherGenerations(self.path, self.hashing, self.index_kind, self.index_params)

    # ------------------------------------------------------------------ create / open
    @classmethod
    def create(cls, path: str | os.PathLike, manifest: dict, cipher: Any) -> SpeechLibrary:
        """Create a new library at ``path`` (must not already hold one).

        ``manifest`` keys: ``hash_method`` (a :class:`~speechret.hashing.HashMethod` name), the
        fields that method needs (:meth:`HashMethod.manifest_fields`: ``code_bits``, the total
        code length or the bits per group; ``n_classes`` for a category code),
        ``model`` / ``hash`` (config dicts), ``checkpoint`` (a path, hashed into
        ``checkpoint_sha256``) or ``checkpoint_sha256``, ``index`` ({kind, params}). Filled in
        here: ``format_version``, ``cipher``, ``key_id``, ``created``."""
        path = Path(path)
        if (path / MANIFEST).exists():
            raise FileExistsError(f"{path} already holds a speech library")
        m = dict(manifest)
        method = m.get("hash_method")
        if method not in hash_method_names():
            raise LibraryError(f"hash_method must be one of {hash_method_names()}, got {method!r}")
        with _library_errors():
            get_hash_method(method, **m).check_manifest(m)
        ckpt = m.pop("checkpoint", None)
        if ckpt is not None:
            m["checkpoint"] = str(ckpt)
            m["checkpoint_sha256"] = file_sha256(ckpt)
        m.setdefault("checkpoint_sha256", None)
        m.setdefault("index", {"kind": "flat", "params": {}})
        m["index"] = {"kind": m["index"].get("kind", "flat"), "params": dict(m["index"].get("params") or {})}
        if cipher is None:
            raise LibraryError("creating a library needs a cipher")
        m.update(format_version=FORMAT_VERSION, cipher=getattr(cipher, "name", type(cipher).__name__),
                 key_id=cipher_key_id(cipher), created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        for k in ("key", "key_material", "passphrase"):
            if k in m:
                raise LibraryError(f"manifest must not contain {k!r}: keys are never stored")
        path.mkdir(parents=True, exist_ok=True)
        (path / BLOBS).mkdir(exist_ok=True)
        (path / INDEX_DIR).mkdir(exist_ok=True)
        lib = cls(path, m, cipher)  # creates library.db
        lib._set_meta("format_version", str(FORMAT_VERSION))
        atomic_write_bytes(path / MANIFEST, (json.dumps(m, indent=2, sort_keys=True, default=str) + "\n").encode())
        return lib

    @classmethod
    def open(cls, path: str | os.PathLike, cipher: Any = None) -> SpeechLibrary:
        """Open an existing library; a ``cipher`` whose name or key id differs from the
        manifest's raises (:class:`~speechret.crypto.WrongKeyError`) before any data is read."""
        path = Path(path)
        mp = path / MANIFEST
        if not mp.is_file():
            raise LibraryError(f"{path} is not a speech library (no {MANIFEST})")
        try:
            m = json.loads(mp.read_text())
        except json.JSONDecodeError as exc:
            raise LibraryError(f"{mp}: malformed manifest: {exc}") from exc
        if m.get("format_version") != FORMAT_VERSION:
            raise LibraryError(f"{path}: library format {m.get('format_version')!r}, "
                               f"this code reads format {FORMAT_VERSION}")
        if not (path / DB_NAME).is_file():
            raise LibraryError(f"{path}: {DB_NAME} is missing")
        return cls(path, m, cipher)

    def _check_cipher(self, cipher: Any) -> None:
        name = getattr(cipher, "name", type(cipher).__name__)
        if name != self.manifest["cipher"]:
            raise CipherError(f"library {self.path} was encrypted with cipher "
                              f"{self.manifest['cipher']!r}, not {name!r}")
        kid = cipher_key_id(cipher)
        if kid != self.manifest["key_id"]:
            raise WrongKeyError(f"wrong key for library {self.path}: it was encrypted under key id "
                                f"{self.manifest['key_id']}, the key given has id {kid}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SpeechLibrary:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta
    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        r = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return r[0] if r else default

    # ------------------------------------------------------------------ codes
    def _encode_codes(self, codes: Any, n: int) -> list[tuple[bytes, int | None, int | None]]:
        """Per item ``(code bytes, n_groups, category)`` (:meth:`HashMethod.encode_rows`)."""
        with _library_errors():
            return self.hashing.encode_rows(codes, n)

    def _packed(self, codes: Any) -> np.ndarray:
        """Fixed-length codes (bool / 0-1 bits ``(N, d)`` or packed ``uint8 (N, ceil(d/8))``)
        → packed ``uint8 (N, ceil(d/8))`` (:meth:`HashMethod.pack`)."""
        with _library_errors():
            return self.hashing.pack(codes)

    def _bits(self, codes: Any) -> np.ndarray:
        with _library_errors():
            return self.hashing.bits(codes)

    def load_codes(self, max_row: int | None = None, min_row: int = 0):
        """Stored codes in row order: ``(rows int64, item_ids, codes)`` with ``codes`` in the form
        the matchers take (:meth:`HashMethod.decode_rows`: packed ``uint8 (N, ceil(d/8))`` for
        fixed-length codes, a list of uint32 word arrays for grouped ones)."""
        q = "SELECT row, item_id, code FROM items WHERE row >= ?"
        args: list = [min_row]
        if max_row is not None:
            q += " AND row < ?"
            args.append(max_row)
        res = self._conn.execute(q + " ORDER BY row", args).fetchall()
        rows = np.array([r[0] for r in res], dtype=np.int64)
        ids = [r[1] for r in res]
        return rows, ids, self.hashing.decode_rows([r[2] for r in res])

    # ------------------------------------------------------------------ adding
    def has(self, item_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM items WHERE item_id = ?", (item_id,)).fetchone() is not None

    def add_batch(self, items: Sequence[dict], codes: Any, cipher: Any = None) -> list[str]:
        """Encrypt and add ``items`` (dicts with item_id, pcm int16, sample_rate and optionally
        source, duration, speaker, label, text) with their ``codes`` (paper A/B: ``(N, d)`` bits or
        packed bytes; paper C: a list of ``(S, 27)`` groups / ``(S,)`` uint32 words).

        Items already committed (and repeats within the batch) are skipped. Returns the ids
        actually added. Blobs are written first; the rows go in one transaction after."""
        cipher = cipher or self.cipher
        if cipher is None:
            raise LibraryError("add_batch needs a cipher (give one to open() or add_batch())")
        if cipher is not self.cipher:
            self._check_cipher(cipher)
        items = list(items)
        encoded = self._encode_codes(codes, len(items))
        seen: set[str] = set()
        pending = []
        for it, enc in zip(items, encoded):
            iid = it["item_id"]
            if not isinstance(iid, str) or not iid:
                raise LibraryError(f"item_id must be a non-empty str, got {iid!r}")
            if iid in seen or self.has(iid):
                continue
            seen.add(iid)
            pending.append((it, enc))
        if not pending:
            return []
        rows = []
        for it, (code, n_groups, cat) in pending:  # 1. blobs (crash here: orphans only)
            iid = it["item_id"]
            pcm = np.asarray(it["pcm"])
            sr = int(it["sample_rate"])
            blob = cipher.encrypt(iid, pcm)
            rel = _blob_relpath(iid)
            atomic_write_bytes(self.path / rel, blob)
            dur = it.get("duration")
            dur = float(dur) if dur is not None else pcm.shape[-1] / sr
            label = it.get("label")
            category = it.get("category", cat)
            rows.append({
                "item_id": iid, "source": None if it.get("source") is None else str(it["source"]),
                "duration": dur, "sample_rate": sr, "speaker": it.get("speaker"),
                "label": None if label is None else int(label), "text": it.get("text"),
                "category": None if category is None else int(category), "blob_path": rel,
                "checksum": hashlib.sha256(blob).hexdigest(), "code": code, "n_groups": n_groups,
                "added_at": time.time(),
            })
        self._insert_rows(rows)  # 2. one transaction
        return [r["item_id"] for r in rows]

    def _insert_rows(self, rows: list[dict]) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            nxt = conn.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM items").fetchone()[0]
            for i, r in enumerate(rows):
                self._insert_row(conn, {**r, "row": nxt + i})
            self._commit(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _insert_row(self, conn: sqlite3.Connection, r: dict) -> None:
        conn.execute(f"INSERT INTO items({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                     [r[c] for c in _COLUMNS])

    def _commit(self, conn: sqlite3.Connection) -> None:
        conn.execute("COMMIT")

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]

    def __contains__(self, item_id: str) -> bool:
        return self.has(item_id)

    def item(self, item_id: str) -> dict:
        cur = self._conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM items WHERE item_id = ?", (item_id,))
        r = cur.fetchone()
        if r is None:
            raise KeyError(f"no item {item_id!r} in library {self.path}")
        d = dict(zip(_COLUMNS, r))
        d.pop("code")
        return d

    def items(self) -> Iterator[dict]:
        """Metadata of every item in row order (without the code)."""
        cols = [c for c in _COLUMNS if c != "code"]
        for r in self._conn.execute(f"SELECT {', '.join(cols)} FROM items ORDER BY row"):
            yield dict(zip(cols, r))

    def get_blob(self, item_id: str, verify: bool = True) -> bytes:
        """The encrypted blob; with ``verify`` its sha256 must equal the recorded checksum."""
        meta = self._conn.execute("SELECT blob_path, checksum FROM items WHERE item_id = ?",
                                  (item_id,)).fetchone()
        if meta is None:
            raise KeyError(f"no item {item_id!r} in library {self.path}")
        p = self.path / meta[0]
        try:
            blob = p.read_bytes()
        except FileNotFoundError:
            raise LibraryError(f"item {item_id!r}: blob {meta[0]} is missing") from None
        if verify and hashlib.sha256(blob).hexdigest() != meta[1]:
            raise IntegrityError(f"item {item_id!r}: blob {meta[0]} fails its sha256 checksum "
                                 f"(tampered or corrupted)")
        return blob

    def decrypt(self, item_id: str, cipher: Any = None, verify: bool = True) -> np.ndarray:
        """Decrypted int16 PCM. AEAD failures are re-raised naming the item."""
        cipher = cipher or self.cipher
        if cipher is None:
            raise LibraryError("decrypt needs a cipher")
        if cipher is not self.cipher:
            self._check_cipher(cipher)
        blob = self.get_blob(item_id, verify=verify)
        try:
            return cipher.decrypt(item_id, blob)
        except CipherError as exc:
            if item_id in str(exc):
                raise
            raise type(exc)(f"item {item_id!r}: {exc}") from exc

    def stats(self) -> dict:
        n, dur, groups = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(duration), 0), COALESCE(SUM(n_groups), 0) FROM items").fetchone()
        blob_bytes = sum(p.stat().st_size for p in (self.path / BLOBS).rglob("*.bin"))
        cur = self.generations.current()
        return {"items": n, "duration_s": float(dur), "n_groups": int(groups), "blob_bytes": blob_bytes,
                "hash_method": self.method, "code_bits": self.code_bits, "cipher": self.manifest["cipher"],
                "key_id": self.manifest["key_id"], "index_kind": self.index_kind,
                "index_high_water": cur[0] if cur else 0}

    # ------------------------------------------------------------------ fsck
    def fsck(self, remove: bool = False, verify_checksums: bool = True) -> dict:
        """Check blobs against rows: ``orphans`` (blob files with no committed row, e.g. left
        by a crash before the commit), ``missing`` (rows whose blob is gone), ``corrupt`` (checksum
        mismatch), ``tmp`` (leftover temp files / index dirs). ``remove=True`` deletes orphans and
        temp leftovers (never a committed item)."""
        known = {}
        for iid, rel, chk in self._conn.execute("SELECT item_id, blob_path, checksum FROM items"):
            known[rel] = (iid, chk)
        orphans, tmp, missing, corrupt = [], [], [], []
        for p in sorted((self.path / BLOBS).rglob("*")):
            if not p.is_file():
                continue
            rel = p.relative_to(self.path).as_posix()
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                tmp.append(rel)
            elif rel not in known:
                orphans.append(rel)
        for rel, (iid, chk) in known.items():
            p = self.path / rel
            if not p.is_file():
                missing.append(iid)
            elif verify_checksums and file_sha256(p) != chk:
                corrupt.append(iid)
        idx = self.path / INDEX_DIR
        if idx.is_dir():
            tmp += [p.relative_to(self.path).as_posix() for p in idx.iterdir() if p.name.startswith(".")]
        if remove:
            for rel in orphans + tmp:
                p = self.path / rel
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        return {"ok": not (orphans or tmp or missing or corrupt), "orphans": orphans, "tmp": tmp,
                "missing": missing, "corrupt": corrupt}

    # ------------------------------------------------------------------ indexes
    def _save_generation(self, matchers: dict[str, Any], high_water: int) -> None:
        final = self.generations.save(matchers, high_water)
        self._set_meta("index_high_water", str(high_water))
        self._set_meta("index_dir", final.name)

    def _db_high_water(self) -> int:
        return self._conn.execute("SELECT COALESCE(MAX(row) + 1, 0) FROM items").fetchone()[0]

    def sync_index(self) -> int:
        """Add rows committed since the index's high-water mark and save a new index generation
        atomically. Returns the number of rows added."""
        if self._matchers is None:
            cur = self.generations.current()
            if cur is None:
                self._matchers, self._hwm = self.generations.new(), 0
            else:
                try:
                    self._matchers, self._hwm = self.generations.load(cur[1]), cur[0]
                except FileNotFoundError:  # an index generation of an older layout: derived state
                    return self.rebuild()
        target = self._db_high_water()
        if target <= self._hwm and self.generations.current() is not None:
            return 0
        rows, _, codes = self.load_codes(max_row=target, min_row=self._hwm)
        self.generations.add(self._matchers, rows, codes)
        self._save_generation(self._matchers, target)
        self._hwm = target
        return len(rows)

    def rebuild(self) -> int:
        """Recreate the FAISS index(es) from the codes in SQLite, from scratch."""
        target = self._db_high_water()
        m = self.generations.new()
        rows, _, codes = self.load_codes(max_row=target)
        self.generations.add(m, rows, codes)
        self._save_generation(m, target)
        self._matchers, self._hwm = m, target
        return len(rows)

    def matchers(self) -> dict[str, Any]:
        """The in-memory matchers, synced with SQLite (lazy)."""
        if self._matchers is None or self._hwm < self._db_high_water():
            self.sync_index()
        return self._matchers

    # ------------------------------------------------------------------ search
    def _ids_for_rows(self, rows: Sequence[int]) -> dict[int, str]:
        rows = sorted({int(r) for r in rows if r >= 0})
        out: dict[int, str] = {}
        for i in range(0, len(rows), 900):
            chunk = rows[i:i + 900]
            q = f"SELECT row, item_id FROM items WHERE row IN ({','.join('?' * len(chunk))})"
            out.update({r: iid for r, iid in self._conn.execute(q, chunk)})
        return out

    def _rows_to_dicts(self, results: list[tuple[np.ndarray, np.ndarray]]) -> list[list[dict]]:
        names = self._ids_for_rows([int(r) for ids, _ in results for r in ids])
        out = []
        for ids, bers in results:
            out.append([{"item_id": names[int(r)], "row": int(r), "ber": float(b), "rank": k + 1, "span": None}
                        for k, (r, b) in enumerate((r, b) for r, b in zip(ids, bers) if r >= 0)])
        return out

    def _matcher_for(self, mode: str) -> Any:
        """The matcher answering search ``mode``; a mode the hash method lacks raises."""
        if mode not in self.hashing.search_modes:
            able = [n for n in hash_method_names() if mode in hash_method_class(n).mode_matcher]
            raise LibraryError(f"search mode {mode!r} needs a {' / '.join(able) or 'different'} library; this one "
                               f"holds {self.method} codes (its modes: {', '.join(self.hashing.search_modes)})")
        return self.matchers()[self.hashing.mode_matcher[mode]]

    def search_topk(self, codes: Any, k: int, exact_ties: bool = True) -> list[list[dict]]:
        """The k nearest stored codes per query (BER over the whole code; fixed-length methods)."""
        matcher = self._matcher_for("topk")
        exact = exact_ties and ix.index_kind(matcher.index) != "hnsw"
        ids, bers = matcher.topk(self._packed(codes), k, exact_ties=exact)
        return self._rows_to_dicts(list(zip(ids, bers)))

    def search_threshold(self, codes: Any, ber: float) -> list[list[dict]]:
        """All stored codes with ``BER < ber`` per query (fixed-length methods)."""
        return self._rows_to_dicts(self._matcher_for("threshold").search(self._packed(codes), ber))

    def search_two_stage(self, codes: Any, k: int | None = None, ber: float | None = None) -> list[list[dict]]:
        """Paper B two-stage: same category as the query, then top-``k`` or ``BER(h2) < ber``."""
        if (k is None) == (ber is None):
            raise ValueError("give exactly one of k (top-k) or ber (threshold)")
        ts = self._matcher_for("two_stage")
        bits = self._bits(codes)
        if k is not None:
            exact = all(ix.index_kind(index) != "hnsw" for index in ts.indexes.values())
            ids, bers = ts.topk(bits, k, exact_ties=exact)
            return self._rows_to_dicts(list(zip(ids, bers)))
        return self._rows_to_dicts(ts.search(bits, ber))

    def search_keyword(self, groups: Any, gamma: float, mode: str = "keyword",
                       direction: str | None = None) -> list[dict]:
        """Paper C: one query's ``(S, 27)`` groups (or uint32 words) slid over every stored
        sequence; hits with ``span = (start, end)`` in groups, sorted by (BER, item, start).
        ``mode``: ``keyword`` or ``full_speech``; ``direction``: the full-speech direction
        (default: the matcher's, :data:`~speechret.hashing.sliding.DEFAULT_DIRECTION`)."""
        hits = self._matcher_for(mode).search(np.asarray(groups), gamma, mode=mode, direction=direction)
        names = self._ids_for_rows([h.item for h in hits])
        return [{"item_id": names[h.item], "row": h.item, "ber": h.ber, "rank": k + 1, "span": (h.start, h.end)}
                for k, h in enumerate(hits)]

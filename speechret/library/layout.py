"""The library directory's layout, errors and manifest files (see :mod:`speechret.library.store`).

``manifest.json`` is written atomically (temp file, fsync, ``os.replace``, directory fsync;
:func:`speechret.fileio.atomic_write_bytes`) together with ``manifest.json.bak``, and a copy is
kept in ``library.db`` (``meta.manifest``): :meth:`SpeechLibrary.read_manifest` refuses a
manifest that differs from that copy, and repair restores it from there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from speechret.crypto import AuthenticationError, CipherError
from speechret.errors import ConfigError, SpeechretError
from speechret.fileio import atomic_write_bytes

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
MANIFEST_BAK = "manifest.json.bak"
DB_NAME = "library.db"
BLOBS = "blobs"
OPAQUE_ID = re.compile(r"^[0-9a-f]{32}$")
_NOT_META = {"item_id", "pcm", "sample_rate", "duration", "category"}

__all__ = ["BLOBS", "DB_NAME", "FORMAT_VERSION", "MANIFEST", "MANIFEST_BAK", "OPAQUE_ID", "IntegrityError",
           "LibraryError", "ModelMismatchError", "blob_relpath", "cipher_key_id", "db_manifest", "file_sha256",
           "holds_data", "manifest_bytes", "write_manifest"]


class LibraryError(SpeechretError, RuntimeError):
    """A malformed, incompatible or inconsistent library (or a misuse of its API)."""


class ModelMismatchError(LibraryError, ValueError):
    """Codes of a checkpoint other than the library's (its sha256 differs from the manifest's)."""


class IntegrityError(AuthenticationError):
    """A stored blob does not match its recorded sha256 (tampered or corrupted on disk)."""


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
    """The cipher's public key id: ``cipher.key_id`` (AES-GCM: a fingerprint of the key, which
    for a passphrase is the scrypt output, so testing a guess costs one scrypt); for the chaotic
    ciphers a domain-separated sha256 fingerprint of key and system parameters (16 hex)."""
    kid = getattr(cipher, "key_id", None)
    if callable(kid):
        kid = kid()
    if kid:
        return str(kid)
    return hashlib.sha256(b"speechret-chaotic-key-id\0" + chaotic_key_material(cipher)).hexdigest()[:16]


def chaotic_key_material(cipher: Any) -> bytes:
    """The secret of a chaotic cipher (papers B, C) as bytes: its initial values (exact, as float
    hex) with its name and system parameters, canonical JSON — what its key id fingerprints and
    what the library's sealing keys are derived from."""
    key = getattr(cipher, "key", None)
    if key is None or not hasattr(key, "as_tuple"):
        raise CipherError(f"cannot derive a key id or library keys from cipher {type(cipher).__name__}")
    params = getattr(cipher, "params", None)
    params = params.__dict__ if hasattr(params, "__dict__") else params
    return json.dumps({"name": getattr(cipher, "name", type(cipher).__name__),
                       "key": [float.hex(float(v)) for v in key.as_tuple()],
                       "params": repr(params)}, sort_keys=True).encode()


def blob_relpath(oid: str) -> str:
    return f"{BLOBS}/{oid[:2]}/{oid}.bin"


def _scrub_paths(value: Any) -> Any:
    """Config values with every absolute path replaced by its file name (no paths on the server)."""
    if isinstance(value, dict):
        return {k: _scrub_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub_paths(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return Path(value).name
    return value


def manifest_bytes(m: dict) -> bytes:
    return (json.dumps(m, indent=2, sort_keys=True, default=str) + "\n").encode()


def write_manifest(path: Path, m: dict | bytes) -> None:
    """manifest.json and its backup, each atomically (temp file, fsync, os.replace, dir fsync)."""
    data = m if isinstance(m, bytes) else manifest_bytes(m)
    atomic_write_bytes(path / MANIFEST_BAK, data)
    atomic_write_bytes(path / MANIFEST, data)


def _connect(db: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, timeout=60.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


def db_manifest(path: Path) -> bytes | None:
    """The manifest copy kept in ``library.db`` (None: no database or no copy)."""
    if not (path / DB_NAME).is_file():
        return None
    conn = sqlite3.connect(f"file:{path / DB_NAME}?mode=ro", uri=True, timeout=60.0)
    try:
        r = conn.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()
    return r[0].encode() if r else None


def holds_data(path: Path) -> str | None:
    """What library data ``path`` already holds (library.db / blobs), or None."""
    if (path / DB_NAME).exists():
        return DB_NAME
    if (path / BLOBS).is_dir() and any(p.is_file() for p in (path / BLOBS).rglob("*")):
        return f"{BLOBS}/"
    return None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id     TEXT PRIMARY KEY,
    row         INTEGER UNIQUE NOT NULL,
    duration    REAL,
    sample_rate INTEGER,
    category    INTEGER,
    n_groups    INTEGER,
    blob_path   TEXT NOT NULL,
    checksum    TEXT NOT NULL,
    code        BLOB NOT NULL,
    meta        BLOB,
    added_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
_COLUMNS = ("item_id", "row", "duration", "sample_rate", "category", "n_groups", "blob_path", "checksum",
            "code", "meta", "added_at")



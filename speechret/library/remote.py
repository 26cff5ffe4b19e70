"""Items sealed on one machine and stored on another: the keyless write path of the cloud side.

Adding an item is split in two halves with one implementation each:

* :class:`ItemSealer` (**the key holder**: :meth:`SpeechLibrary.add_batch` locally, and
  :class:`speechret.client.RemoteLibrary` on a data owner's machine) turns an item into a
  :class:`SealedItem`: the opaque item id ``HMAC(k_id, source id)``, the encrypted blob
  (``cipher.encrypt(item id, pcm)``), the stored code row (keyed with the library key when the
  library keys its codes, :mod:`speechret.hashing.keyed`), and the AES-GCM sealed metadata
  document (:class:`~speechret.library.sealing.Sealer`: source id, path, speaker, label, text and
  the sha256 of the stored code and blob);
* :func:`add_sealed` (**anyone holding the directory**, the search service included: no key is
  needed or accepted) checks every field of every item *before* writing anything (opaque id,
  code row width / padding / 27-bit groups through the library's
  :class:`~speechret.hashing.HashMethod`, blob checksum, sizes), then under the library's writer
  lock skips items already committed, writes the blobs (temp file, fsync, rename) and inserts all
  rows in ONE SQLite transaction -- the crash-safety order of
  :meth:`SpeechLibrary.add_batch`, which now runs both halves itself.

The server therefore stores exactly what a local ``add_batch`` stores (``fsck deep=true`` with
the key authenticates a remotely added item like a local one), and learns only what the library's
threat model says a keyless holder learns (README, "Threat model").
"""

from __future__ import annotations

import base64
import hashlib
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from speechret.crypto import CipherError, WrongKeyError
from speechret.hashing import HashMethod, get_hash_method
from speechret.hashing.keyed import KeyedCodes
from speechret.library.layout import (
    _NOT_META,
    OPAQUE_ID,
    LibraryError,
    _library_errors,
    blob_relpath,
    cipher_key_id,
)
from speechret.library.sealing import NONCE, Sealer

__all__ = ["ItemSealer", "SealedItem", "add_sealed", "check_code_row", "decode_b64", "encode_b64"]

#: bytes of an AES-GCM sealed metadata document beyond its JSON: the nonce and the 16-byte tag
SEALED_OVERHEAD = NONCE + 16


def encode_b64(data: bytes) -> str:
    return base64.b64encode(bytes(data)).decode("ascii")


def decode_b64(text: str, what: str) -> bytes:
    """Strict base64 (RFC 4648 alphabet, padding required); anything else names ``what``."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise LibraryError(f"{what}: not valid base64 ({exc})") from None


@dataclass(frozen=True)
class SealedItem:
    """One item as the library stores it, produced by the key holder (:class:`ItemSealer`).

    ``item_id``: opaque 128-bit hex id; ``blob``: the encrypted audio; ``code``: the stored code
    row (:meth:`HashMethod.encode_rows` bytes: packed bits, or little-endian uint32 words of
    27-bit groups for paper C); ``meta``: the sealed metadata document; ``duration`` (s) and
    ``sample_rate`` (Hz): stored in clear, as the threat model lists; ``blob_sha256``: the blob's
    digest (checked on arrival); ``category``: an explicit category overriding the code's (local
    adds only: the service always derives it from the code)."""

    item_id: str
    blob: bytes
    code: bytes
    meta: bytes
    duration: float
    sample_rate: int
    blob_sha256: str = ""
    category: int | None = None


def check_code_row(hashing: HashMethod, code: bytes, what: str = "code") -> tuple[bytes, int | None, int | None]:
    """``(code bytes, n_groups, category)`` of one stored code row, checked against the hash
    method: fixed-length codes must be exactly ``ceil(code_bits / 8)`` bytes with zero padding
    bits; paper C rows whole uint32 words, each group within 27 bits. A bad row raises a
    :class:`LibraryError` naming ``what`` and the width expected."""
    code = bytes(code)
    if not hashing.variable_length:
        nbytes = (int(hashing.code_bits) + 7) // 8
        if len(code) != nbytes:
            raise LibraryError(f"{what}: {len(code)} bytes; a {hashing.name} code of {hashing.code_bits} bits is "
                               f"{nbytes} packed bytes")
        packed = np.frombuffer(code, dtype=np.uint8)[None]
        with _library_errors():
            if hashing.pack(hashing.bits(packed)).tobytes() != code:
                raise LibraryError(f"{what}: the {8 * nbytes - hashing.code_bits} padding bits after bit "
                                   f"{hashing.code_bits} must be zero")
            row = hashing.encode_rows(packed, 1)[0]
    else:
        if len(code) % 4:
            raise LibraryError(f"{what}: {len(code)} bytes; a {hashing.name} code is whole little-endian uint32 "
                               f"words (one per {hashing.code_bits}-bit group)")
        try:
            with _library_errors():
                row = hashing.encode_rows(hashing.decode_rows([code]), 1)[0]
        except LibraryError as exc:
            raise LibraryError(f"{what}: {exc}") from None
    if row[0] != code:  # pragma: no cover - encode_rows(decode_rows(x)) is x for every method
        raise LibraryError(f"{what}: not in the stored form of {hashing.name} codes")
    return row


class ItemSealer:
    """The key holder's half of adding (see the module docstring) for one library, known by its
    ``manifest`` (a keyless server hands it out: it holds no secret). ``cipher`` must be the
    library's (its name and key id are checked against the manifest)."""

    def __init__(self, cipher: Any, manifest: Mapping[str, Any], sealer: Sealer | None = None):
        name = getattr(cipher, "name", type(cipher).__name__)
        if name != manifest.get("cipher"):
            raise CipherError(f"the library was encrypted with cipher {manifest.get('cipher')!r}, not {name!r}")
        kid = cipher_key_id(cipher)
        if kid != manifest.get("key_id"):
            raise WrongKeyError(f"wrong key for the library: it was encrypted under key id {manifest.get('key_id')}, "
                                f"the key given has id {kid}")
        self.cipher = cipher
        self.manifest = dict(manifest)
        self.hashing = get_hash_method(manifest["hash_method"], **manifest)
        self.sealer = sealer or Sealer(cipher)
        self.keyed: KeyedCodes | None = None
        if manifest.get("keyed_codes"):
            if self.hashing.variable_length and self.hashing.code_bits is None:
                raise LibraryError("keyed codes need a fixed group width")
            self.keyed = KeyedCodes(self.sealer.code_secret, self.hashing)

    def oid(self, source_id: str) -> str:
        """The opaque on-disk id of the item the caller calls ``source_id``."""
        return self.sealer.item_id(source_id)

    def key_codes(self, codes: Any) -> Any:
        """Codes as stored (and as a search must send them): keyed when the library keys codes."""
        if self.keyed is None:
            return codes
        with _library_errors():
            return self.keyed.apply(codes)

    def encode(self, codes: Any, n: int, prekeyed: bool = False) -> list[tuple[bytes, int | None, int | None]]:
        """Per item ``(stored code row, n_groups, category)`` of ``n`` items' codes."""
        with _library_errors():
            return self.hashing.encode_rows(codes if prekeyed else self.key_codes(codes), n)

    def seal_one(self, item: Mapping[str, Any], row: tuple[bytes, int | None, int | None]) -> SealedItem:
        """Encrypt one item (a dict with ``item_id``, ``pcm`` int16, ``sample_rate``, optionally
        ``duration`` / ``category`` and metadata: source, speaker, label, text, ...)."""
        iid = item["item_id"]
        oid = self.oid(iid)
        pcm = np.asarray(item["pcm"])
        sr = int(item["sample_rate"])
        blob = self.cipher.encrypt(oid, pcm)
        checksum = hashlib.sha256(blob).hexdigest()
        code, _, cat = row
        meta = {"id": iid, **{k: v for k, v in item.items() if k not in _NOT_META},
                "code_sha256": hashlib.sha256(code).hexdigest(), "blob_sha256": checksum}
        dur = item.get("duration")
        category = item.get("category", cat)
        return SealedItem(oid, blob, code, self.sealer.seal(oid, meta),
                          float(dur) if dur is not None else pcm.shape[-1] / sr, sr, checksum,
                          None if category is None else int(category))

    def seal(self, items: Sequence[Mapping[str, Any]], codes: Any, prekeyed: bool = False) -> list[SealedItem]:
        """:meth:`seal_one` for every item with its code (``codes`` as :meth:`SpeechLibrary.add_batch`
        takes them; keyed here unless ``prekeyed``)."""
        items = list(items)
        return [self.seal_one(it, row) for it, row in zip(items, self.encode(codes, len(items), prekeyed))]


def _check(lib: Any, item: SealedItem, i: int, max_blob_bytes: int | None) -> tuple[bytes, int | None, int | None]:
    what = f"items[{i}]"
    if not isinstance(item.item_id, str) or not OPAQUE_ID.match(item.item_id):
        raise LibraryError(f"{what}.item_id: an opaque item id is 32 lowercase hex digits (the key holder's "
                           f"HMAC of its own id), got {str(item.item_id)[:40]!r}")
    if not item.blob:
        raise LibraryError(f"{what}.blob: empty")
    if max_blob_bytes is not None and len(item.blob) > max_blob_bytes:
        raise LibraryError(f"{what}.blob: {len(item.blob)} bytes, more than the limit of {max_blob_bytes}")
    if item.blob_sha256 and hashlib.sha256(item.blob).hexdigest() != item.blob_sha256:
        raise LibraryError(f"{what}.blob: its sha256 differs from blob_sha256 (damaged in transit)")
    if len(item.meta) < SEALED_OVERHEAD:
        raise LibraryError(f"{what}.meta: {len(item.meta)} bytes is no sealed metadata document (nonce + tag "
                           f"alone are {SEALED_OVERHEAD})")
    if not (isinstance(item.duration, (int, float)) and math.isfinite(item.duration) and item.duration > 0):
        raise LibraryError(f"{what}.duration: a positive number of seconds, got {item.duration!r}")
    if isinstance(item.sample_rate, bool) or not isinstance(item.sample_rate, int) or item.sample_rate <= 0:
        raise LibraryError(f"{what}.sample_rate: a positive integer, got {item.sample_rate!r}")
    return check_code_row(lib.hashing, item.code, f"{what}.code")


def add_sealed(lib: Any, items: Sequence[SealedItem], max_blob_bytes: int | None = None) -> list[str]:
    """Store items sealed by the key holder in ``lib`` (a :class:`SpeechLibrary`, opened with or
    without its key). Every item is checked first: one bad item raises a :class:`LibraryError`
    naming it and nothing is written. Then, under the writer lock, items already committed (and
    repeats in the batch) are skipped, the blobs are written, and the rows go in one
    transaction. Returns the opaque ids actually added, in order."""
    items = list(items)
    rows_in = [_check(lib, it, i, max_blob_bytes) for i, it in enumerate(items)]
    added: list[dict] = []
    with lib.lock():
        seen: set[str] = set()
        for it, (code, n_groups, cat) in zip(items, rows_in):
            oid = it.item_id
            if oid in seen or lib._exists(oid):
                continue
            seen.add(oid)
            rel = blob_relpath(oid)
            lib._write_blob(lib.path / rel, it.blob)  # 1. blobs (crash here: orphans only)
            category = cat if it.category is None else it.category
            added.append({"item_id": oid, "duration": float(it.duration), "sample_rate": int(it.sample_rate),
                          "category": None if category is None else int(category), "n_groups": n_groups,
                          "blob_path": rel, "checksum": it.blob_sha256 or hashlib.sha256(it.blob).hexdigest(),
                          "code": code, "meta": bytes(it.meta), "added_at": round(time.time())})
        if added:
            lib._insert_rows(added)  # 2. one transaction
    return [r["item_id"] for r in added]

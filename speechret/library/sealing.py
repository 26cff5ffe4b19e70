"""What only a key holder may read: opaque item ids and sealed item metadata.

Every secret here is derived from the library's cipher key with HKDF-SHA256 (RFC 5869,
``cryptography``'s HKDF), one ``info`` string per purpose, so no derived key reveals another or
the cipher key:

* **item ids** on disk (SQLite rows, blob file names, the blobs' associated data) are
  ``HMAC-SHA256(k_id, source id)`` truncated to 128 bits, hex (RFC 2104). They are opaque to the
  server, and deterministic for the key holder, so re-running ``index.py`` recognises committed
  items (idempotent resume) without storing the source id in clear;
* **item metadata** (source id, source path, speaker, label, text, and digests of the stored code
  and blob) is one JSON document sealed with AES-256-GCM (NIST SP 800-38D; ``cryptography``'s
  AESGCM, random 96-bit nonce) under ``k_meta``, with the item id as associated data: a sealed
  document moved to another row fails authentication;
* **keyed codes** (:mod:`speechret.hashing.keyed`) take ``k_codes``.

The papers' chaotic ciphers (A: hyperchaotic, B: Rössler) have no byte key: their key is a few
initial values plus system parameters. Their metadata still goes through AES-GCM, never through
the chaotic stream: the HKDF input is then a canonical serialisation of those values (exact
float hex), so the metadata is only as hard to guess as the chaotic key itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from speechret.crypto import AuthenticationError
from speechret.hashing.keyed import hkdf
from speechret.library.layout import chaotic_key_material

__all__ = ["Sealer", "library_secret"]

NONCE = 12
_AD = b"speechret-meta-v1\0"


def library_secret(cipher: Any) -> bytes:
    """32 secret bytes of ``cipher``'s key (never stored), the root of :class:`Sealer`'s keys."""
    raw = getattr(cipher, "_key", None)
    material = bytes(raw) if isinstance(raw, (bytes, bytearray)) else chaotic_key_material(cipher)
    return hkdf(material, b"speechret library secret v1")


class Sealer:
    """Opaque ids and sealed metadata under one library key (see the module docstring)."""

    def __init__(self, cipher: Any):
        secret = library_secret(cipher)
        self._id_key = hkdf(secret, b"speechret item id v1")
        self._aead = AESGCM(hkdf(secret, b"speechret item metadata v1"))
        self.code_secret = hkdf(secret, b"speechret keyed codes v1")

    def item_id(self, source_id: str) -> str:
        """The opaque on-disk id of the item the caller calls ``source_id`` (128-bit hex)."""
        return hmac.new(self._id_key, source_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def seal(self, item_id: str, meta: dict) -> bytes:
        nonce = os.urandom(NONCE)
        doc = json.dumps(meta, sort_keys=True, default=str).encode("utf-8")
        return nonce + self._aead.encrypt(nonce, doc, _AD + item_id.encode("utf-8"))

    def open(self, item_id: str, sealed: bytes | None) -> dict:
        """The metadata sealed for ``item_id``; a tampered or moved document raises."""
        if not sealed:
            return {}
        sealed = bytes(sealed)
        try:
            doc = self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], _AD + item_id.encode("utf-8"))
        except InvalidTag:
            raise AuthenticationError(f"item {item_id!r}: its sealed metadata fails authentication "
                                      f"(tampered, moved to another row, or wrong key)") from None
        return json.loads(doc)

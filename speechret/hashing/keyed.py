"""Keyed codes (beyond the papers; optional, off by default): a secret bit permutation plus an
XOR mask, both derived from a library key, applied on the client before codes are stored or
searched.

For two codes ``a, b`` and the same key, ``(P a) xor m`` and ``(P b) xor m`` differ exactly where
``a`` and ``b`` differ (a permutation of the differing positions), so every Hamming distance and
BER is preserved *exactly*: FAISS search over keyed codes returns what it returns over the plain
ones. A code made under another key, or by the public model without the key, lands at an
unrelated point (the mask alone moves it by ~d/2 bits on average), so it does not retrieve.

Layout (what the permutation may act on, so that each method's matching stays exact):

* fixed-length codes (papers A, speechret's sign hash): the whole code;
* paper B: the category code ``h1`` (first ``category_bits``) is left as it is, because stage 1
  takes ``argmax h1`` and a permutation would change which of tied maxima wins; ``h2`` is
  permuted and masked. The category is therefore visible to the server, as it is anyway;
* variable-length grouped codes (paper C): one permutation and one mask for every 27-bit group,
  acting *within* each group, so group-to-group distances and hence sliding matching (keyword and
  full-speech) are preserved exactly; the number of groups stays visible.

Keys: the 32-byte ``secret`` is expanded with HKDF-SHA256 (RFC 5869, ``cryptography``'s HKDF)
into a seed for the permutation (a Fisher-Yates shuffle driven by numpy's PCG64 seeded from the
HKDF output) and the mask bits. This is obfuscation of the code space, not encryption: it hides
which code a given public model produces for given audio, not the distances between stored codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from speechret.hashing.bits import pack_bits, unpack_bits
from speechret.hashing.method import HashMethod
from speechret.hashing.sliding import as_words

__all__ = ["KeyedCodes", "hkdf"]

_INFO = b"speechret keyed codes v1"


def hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``secret`` for the purpose ``info`` (no salt: ``secret`` is a key)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(bytes(secret))


class KeyedCodes:
    """The keyed transform of one hash method's codes (see the module docstring).

    ``secret``: 32 secret bytes (the library derives them from its key); ``hashing``: the
    :class:`~speechret.hashing.HashMethod` whose codes are transformed."""

    def __init__(self, secret: bytes, hashing: HashMethod):
        self.hashing = hashing
        self.grouped = bool(hashing.variable_length)
        width = int(hashing.code_bits)
        fixed = 0 if self.grouped else int(hashing.category_bits)
        seed = hkdf(secret, _INFO + f" {hashing.name} {width}".encode(), 64)
        rng = np.random.Generator(np.random.PCG64(int.from_bytes(seed[:32], "little")))
        keyed = width - fixed
        self.perm = np.concatenate([np.arange(fixed), fixed + rng.permutation(keyed)]).astype(np.int64)
        mask = np.zeros(width, dtype=bool)
        mask[fixed:] = rng.integers(0, 2, keyed).astype(bool)
        self.mask = mask
        self.width = width

    # ------------------------------------------------------------------ bits
    def _bits(self, bits: np.ndarray) -> np.ndarray:
        if bits.shape[-1] != self.width:
            raise ValueError(f"keyed codes: expected {self.width} bits per code, got {bits.shape[-1]}")
        return bits[..., self.perm] ^ self.mask

    def _groups(self, seq: Any) -> np.ndarray:
        g = np.asarray(seq)
        words = g.dtype == np.uint32 and g.ndim == 1
        if words:
            g = (g[:, None] >> np.arange(self.width, dtype=np.uint32)) & 1
        out = self._bits(g.astype(bool).reshape(-1, self.width))
        return as_words(out) if words else out

    def apply(self, codes: Any) -> Any:
        """Keyed codes in the form given: ``bool (N, d)`` / 0-1 bits, packed ``uint8 (N, ceil(d/8))``,
        or (grouped methods) a sequence of ``(S, 27)`` groups / ``(S,)`` uint32 words."""
        if self.grouped:
            return [self._groups(s) for s in codes]
        c = np.asarray(codes)
        one = c.ndim == 1
        c = np.atleast_2d(c)
        nbytes = (self.width + 7) // 8
        if c.dtype == np.uint8 and c.shape[-1] == nbytes and c.shape[-1] != self.width:
            out = pack_bits(self._bits(unpack_bits(c, self.width)))
        else:
            out = self._bits(c.astype(bool))
        return out[0] if one else out

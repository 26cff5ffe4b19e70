"""Paper B's speech cipher: Rossler chaotic map (§III-D eq. 8, §IV-B steps 1-6, decryption §IV-E).

Key: the initial state [x0, y0, z0]; parameters a = b = 0.2, c = 5.7 (configurable, may be treated
as extra key material); integration settings in :mod:`speechret.crypto.chaos` (RK4, h = 0.01,
20000 transient steps, one sample per step).  Paper B gives no example key; the demo key
(1, 1, 1) of :meth:`RosslerKey.demo` is ours and is for demos / tests only.

Encryption of int16 samples S (any length L, no padding):

* Step 2: the speech "matrix" T is the byte string of the samples, int16 little-endian (2L bytes).
* Step 3: a trajectory of 2L samples gives the real sequences Kx, Ky, Kz.
* Step 4: each real becomes a byte: ``floor(frac(|v| · 10^10) · 256)``.  The paper multiplies the
  fractional part of v itself by 256 (``scale=1`` reproduces that literally); the 10^10 scaling is
  our documented choice: with the raw value consecutive bytes change by only a few units per step
  (strongly correlated keystream) and a 1e-12 key change would not show in the bytes, whereas the
  10th-decimal digits are uniformly distributed and fully key-sensitive.
* Step 5: E = T ⊕ Cx ⊕ Cy ⊕ Cz, byte-wise; the result is read back as int16 LE samples.

Decryption is the same XOR with the keystream regenerated from the key.  No authentication: a
wrong key decrypts to noise.  The keystream depends only on the key (paper design): two items
encrypted with the same key share it, so this is a research / demo cipher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import CipherError, ConfigurableCipher, as_pcm16, pack_chaotic_blob, unpack_chaotic_blob
from .chaos import rossler_trajectory
from .hyperchaotic import _parse_key

__all__ = ["RosslerKey", "RosslerCipher", "to_bytes"]

MAGIC = b"SRRO"
SCALE = 1e10


def to_bytes(v: np.ndarray, scale: float = SCALE) -> np.ndarray:
    """Chaotic reals -> bytes: floor(frac(|v| * scale) * 256)."""
    frac = np.modf(np.abs(v) * scale)[0]
    return np.minimum(np.floor(frac * 256.0), 255.0).astype(np.uint8)


@dataclass(frozen=True)
class RosslerKey:
    """Initial state [x0, y0, z0] of the Rossler system (the secret key)."""

    x0: float
    y0: float
    z0: float

    @classmethod
    def demo(cls) -> "RosslerKey":
        """(1, 1, 1): a public demo key (not from paper B).  DEMO ONLY."""
        return cls(1.0, 1.0, 1.0)

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.x0, self.y0, self.z0)

    @classmethod
    def from_material(cls, material) -> "RosslerKey":
        """Build from a key, a 3-sequence, a mapping {x0,y0,z0}, or a JSON key file path."""
        return _parse_key(cls, material, ("x0", "y0", "z0"))


class RosslerCipher(ConfigurableCipher):
    """Paper B's cipher.

    Sample API: ``encrypt(samples) -> int16`` (same length), ``decrypt(cipher, length=None)``.
    :class:`~speechret.crypto.base.SpeechCipher` API (first argument a ``str`` item id):
    ``encrypt(item_id, pcm) -> bytes``, ``decrypt(item_id, blob) -> int16``.
    """

    name = "rossler"

    @classmethod
    def demo_key(cls) -> RosslerKey:
        return RosslerKey.demo()

    def __init__(self, key, *, a=0.2, b=0.2, c=5.7, h=0.01, transient=20000, stride=1,
                 scale: float = SCALE):
        self.key = key if isinstance(key, RosslerKey) else RosslerKey.from_material(key)
        self.a, self.b, self.c = float(a), float(b), float(c)
        self.h, self.transient, self.stride = float(h), int(transient), int(stride)
        self.scale = float(scale)

    def keystream(self, nbytes: int) -> np.ndarray:
        """Cx ⊕ Cy ⊕ Cz for ``nbytes`` bytes (uint8)."""
        traj = rossler_trajectory(self.key.as_tuple(), nbytes, a=self.a, b=self.b, c=self.c, h=self.h,
                                  transient=self.transient, stride=self.stride)
        cx, cy, cz = (to_bytes(traj[:, k], self.scale) for k in range(3))
        return cx ^ cy ^ cz

    def _xor(self, s: np.ndarray) -> np.ndarray:
        t = s.astype("<i2").view(np.uint8)
        return (t ^ self.keystream(t.size)).view("<i2").astype(np.int16)

    # ---------------------------------------------------------------- sample API
    def encrypt(self, samples, pcm=None):
        """int16 samples -> int16 ciphertext of the same length (``encrypt(item_id, pcm)`` -> bytes)."""
        if isinstance(samples, str):
            return self.encrypt_bytes(pcm)
        return self._xor(as_pcm16(samples))

    def decrypt(self, cipher, length=None):
        """Inverse of :meth:`encrypt` (``decrypt(item_id, blob)`` is the SpeechCipher form)."""
        if isinstance(cipher, str):
            return self.decrypt_bytes(length, item=cipher)
        c = as_pcm16(cipher, "ciphertext")
        if length is not None and int(length) != c.size:
            raise CipherError(f"original length {length} does not match ciphertext of {c.size} samples")
        return self._xor(c)

    # ---------------------------------------------------------------- bytes API
    def encrypt_bytes(self, samples) -> bytes:
        """Blob: b"SRRO" | version u8 | length u64 LE | int16 LE ciphertext."""
        s = as_pcm16(samples)
        return pack_chaotic_blob(MAGIC, s.size, self._xor(s))

    def decrypt_bytes(self, blob: bytes, item: str = "<bytes>") -> np.ndarray:
        length, c = unpack_chaotic_blob(MAGIC, blob, item, multiple=1)
        return self._xor(c)

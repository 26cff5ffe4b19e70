"""Paper A's speech cipher: 4D quadratic autonomous hyperchaotic system (§3.3, §4.2, §4.6).

Key: the initial state K = (x0, y0, z0, w0) (paper §5.4: doubles with 12 decimal places, key space
~2^164); the system parameters a, b, c, d, e and the integration settings (h, transient, stride, see
:mod:`speechret.crypto.chaos`) may be treated as extra key material.  The paper's demo key is
K = (1, 1, 1, 1) (§5.4) -- :meth:`HyperchaoticKey.paper_demo`; it is for demos and tests only.

Encryption of S = {s(i)}, length L (int16 samples), frames of N = 256 samples:

1. Pre-processing: zero-pad S to L' = V·N, V = ceil(L / N) frames (documented padding: the
   *ciphertext has the padded length*; the original length L travels beside it -- returned by the
   caller / stored in the blob header of :meth:`encrypt_bytes`).
2. One trajectory of max(L', N) samples (x, y, z, w) is generated from K.
   X = x(1..V), Y = y(1..N), Z = z(1..L'), W = w(1..L').
3. Inter-frame scrambling: Ix = argsort(X) (ascending, stable); frame j of Sy is frame Ix(j) of Sx.
4. Intra-frame scrambling: Iy = argsort(Y); sample k of each frame of Sz is sample Iy(k) of Sy
   (the same permutation in every frame, as in the paper, Y has only N elements).
5. XOR diffusion on the 16-bit words (samples viewed as uint16):
   forward,  eq. (5): S'z(i)  = S'z(i-1)  ⊕ z(i) ⊕ Sz(i),   S'z(0)   = 0
   backward, eq. (6): S''z(i) = S''z(i+1) ⊕ w(i) ⊕ S'z(i),  S''z(L'+1) = 0
6. The ciphertext is S'' viewed back as int16.

Chaotic real -> 16-bit word: ``q(v) = floor(|v| · 1e10) mod 65536`` (computed with an exact float
``fmod``); the low 16 bits of the scaled value move by thousands per RK4 step, so the words are
well mixed (uniform histogram, ~0 autocorrelation) and a 1e-12 change of the key changes them all.

Decryption (§4.6) reverses the steps: inverse backward diffusion with W, inverse forward diffusion
with Z, inverse intra-frame and inverse inter-frame permutation.  NOTE: eqs. (9)-(10) as printed
(``S'z(i) = S'z(i+1) ⊕ w(i) ⊕ Sz(i)``, recursive in their *outputs*) do not invert (5)-(6); the
exact inverse, implemented here, is non-recursive::

    S'z(i) = C(i) ⊕ C(i+1) ⊕ w(i)          (C = ciphertext, C(L'+1) = 0)
    Sz(i)  = S'z(i) ⊕ S'z(i-1) ⊕ z(i)       (S'z(0) = 0)

No authentication: a wrong key decrypts to noise, never to an error.  The same key gives the same
keystream for every item (the paper's design): treat it as a research / demo cipher.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .base import (
    CipherError,
    ConfigurableCipher,
    as_pcm16,
    check_key_file_mode,
    env_var_name,
    pack_chaotic_blob,
    unpack_chaotic_blob,
)
from .chaos import hyperchaotic_trajectory

__all__ = ["HyperchaoticKey", "HyperchaoticCipher", "FRAME", "to_uint16"]

FRAME = 256  # N, samples per frame (paper A §4.2)
MAGIC = b"SRHC"
SCALE = 1e10


def to_uint16(v: np.ndarray, scale: float = SCALE) -> np.ndarray:
    """Chaotic reals -> 16-bit words: floor(|v| * scale) mod 65536."""
    y = np.floor(np.abs(v) * scale)
    if y.size and y.max() < 2.0**62:  # fast exact path: integer-valued doubles -> int64, keep 16 bits
        return (y.astype(np.int64) & 0xFFFF).astype(np.uint16)
    return np.fmod(y, 65536.0).astype(np.uint16)


@dataclass(frozen=True)
class HyperchaoticKey:
    """Initial state K = (x0, y0, z0, w0) of paper A's 4D hyperchaotic system (the secret key)."""

    x0: float
    y0: float
    z0: float
    w0: float

    @classmethod
    def paper_demo(cls) -> "HyperchaoticKey":
        """K = (1, 1, 1, 1), the key of paper A §5.4.  DEMO ONLY: it is public."""
        return cls(1.0, 1.0, 1.0, 1.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.z0, self.w0)

    @classmethod
    def from_material(cls, material) -> "HyperchaoticKey":
        """Build from a key, a 4-sequence, a mapping {x0,y0,z0,w0}, or a JSON key file path."""
        return _parse_key(cls, material, ("x0", "y0", "z0", "w0"))


@dataclass(frozen=True)
class HyperchaoticParams:
    a: float = 10.0
    b: float = 28.0
    c: float = 8.0 / 3.0
    d: float = 1.0
    e: float = 16.0
    h: float = 0.01
    transient: int = 5000
    stride: int = 1


class HyperchaoticCipher(ConfigurableCipher):
    """Paper A's cipher.

    Sample API: ``encrypt(samples) -> int16 (padded)``, ``decrypt(cipher, length) -> int16``.
    :class:`~speechret.crypto.base.SpeechCipher` API (first argument a ``str`` item id):
    ``encrypt(item_id, pcm) -> bytes`` (= :meth:`encrypt_bytes`), ``decrypt(item_id, blob)``.
    The item id is not used by the keystream (paper design) and nothing is authenticated.
    """

    name = "hyperchaotic"

    @classmethod
    def demo_key(cls) -> HyperchaoticKey:
        return HyperchaoticKey.paper_demo()

    def __init__(self, key, *, a=10.0, b=28.0, c=8.0 / 3.0, d=1.0, e=16.0, h=0.01, transient=5000,
                 stride=1, frame: int = FRAME, scale: float = SCALE):
        self.key = key if isinstance(key, HyperchaoticKey) else HyperchaoticKey.from_material(key)
        self.params = HyperchaoticParams(float(a), float(b), float(c), float(d), float(e), float(h),
                                         int(transient), int(stride))
        self.frame = int(frame)
        self.scale = float(scale)
        if self.frame < 1:
            raise ValueError(f"frame must be >= 1, got {frame}")

    # ---------------------------------------------------------------- keystream
    def _streams(self, v: int):
        n = self.frame
        length = v * n
        p = asdict(self.params)
        traj = hyperchaotic_trajectory(self.key.as_tuple(), max(length, n), **p)
        ix = np.argsort(traj[:v, 0], kind="stable")
        iy = np.argsort(traj[:n, 1], kind="stable")
        z = to_uint16(traj[:length, 2], self.scale)
        w = to_uint16(traj[:length, 3], self.scale)
        return ix, iy, z, w

    def padded_length(self, length: int) -> int:
        return int(math.ceil(length / self.frame)) * self.frame

    # ---------------------------------------------------------------- sample API
    def encrypt(self, samples, pcm=None):
        """int16 samples (any length) -> int16 ciphertext of the padded length (multiple of 256).

        ``encrypt(item_id: str, pcm)`` is the SpeechCipher form and returns the blob bytes."""
        if isinstance(samples, str):
            return self.encrypt_bytes(pcm)
        s = as_pcm16(samples)
        L = s.size
        Lp = self.padded_length(L)
        if Lp == 0:
            return np.zeros(0, np.int16)
        v = Lp // self.frame
        ix, iy, z, w = self._streams(v)
        frames = np.zeros(Lp, np.int16)
        frames[:L] = s
        frames = frames.view(np.uint16).reshape(v, self.frame)
        sz = frames[ix][:, iy].reshape(-1)                              # steps 2-3
        s1 = np.bitwise_xor.accumulate(sz ^ z)                         # eq. (5)
        s2 = np.bitwise_xor.accumulate((s1 ^ w)[::-1])[::-1]           # eq. (6)
        return np.ascontiguousarray(s2).view(np.int16)

    def decrypt(self, cipher, length=None):
        """Inverse of :meth:`encrypt`; ``length`` = original length (default: the padded length).

        ``decrypt(item_id: str, blob: bytes)`` is the SpeechCipher form."""
        if isinstance(cipher, str):
            return self.decrypt_bytes(length, item=cipher)
        c = as_pcm16(cipher, "ciphertext")
        Lp = c.size
        if Lp % self.frame:
            raise CipherError(f"ciphertext length {Lp} is not a multiple of the frame size {self.frame}")
        if length is None:
            length = Lp
        length = int(length)
        if length < 0 or length > Lp or Lp - length >= self.frame:
            raise CipherError(f"original length {length} does not fit ciphertext of {Lp} samples")
        if Lp == 0:
            return np.zeros(0, np.int16)
        v = Lp // self.frame
        ix, iy, z, w = self._streams(v)
        cu = c.view(np.uint16)
        nxt = np.empty_like(cu)
        nxt[:-1] = cu[1:]
        nxt[-1] = 0
        s1 = cu ^ nxt ^ w                                              # inverse of eq. (6)
        prev = np.empty_like(s1)
        prev[0] = 0
        prev[1:] = s1[:-1]
        sz = (s1 ^ prev ^ z).reshape(v, self.frame)                    # inverse of eq. (5)
        sy = np.empty_like(sz)
        sy[:, iy] = sz                                                 # inverse intra-frame
        sx = np.empty_like(sy)
        sx[ix] = sy                                                    # inverse inter-frame
        return sx.reshape(-1)[:length].view(np.int16).copy()

    # ---------------------------------------------------------------- bytes API
    def encrypt_bytes(self, samples: np.ndarray) -> bytes:
        """Blob: b"SRHC" | version u8 | original length u64 LE | int16 LE ciphertext (padded)."""
        s = as_pcm16(samples)
        return pack_chaotic_blob(MAGIC, s.size, HyperchaoticCipher.encrypt(self, s))

    def decrypt_bytes(self, blob: bytes, item: str = "<bytes>") -> np.ndarray:
        length, c = unpack_chaotic_blob(MAGIC, blob, item, multiple=self.frame)
        return HyperchaoticCipher.decrypt(self, c, length)


def _parse_key(cls, material, names):
    """Shared key-material parser for the chaotic keys."""
    if isinstance(material, cls):
        return material
    if isinstance(material, (str, os.PathLike)):
        path = Path(os.path.expanduser(os.fspath(material)))
        check_key_file_mode(path)
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise CipherError(f"cannot read chaotic key file {path}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise CipherError(f"chaotic key file {path} is not JSON: {exc}") from exc
        return _parse_key(cls, data, names)
    if hasattr(material, "keys"):
        m = dict(material)
        if "key_file" in m and m["key_file"] is not None:
            return _parse_key(cls, m["key_file"], names)
        if "key_env" in m and m["key_env"] is not None:
            name = env_var_name(m["key_env"], "key_env")
            raw = os.environ.get(name)
            if raw is None:
                raise CipherError(f"environment variable {name} (chaotic key) is not set")
            try:
                vals = [float(t) for t in raw.replace(",", " ").split()]
            except ValueError:
                raise CipherError(f"environment variable {name} must hold {len(names)} numbers {names} "
                                  f"(its value is not shown)") from None
            return _parse_key(cls, vals, names)
        if "key" in m and m["key"] is not None:
            return _parse_key(cls, m["key"], names)
        try:
            return cls(*(float(m[k]) for k in names))
        except KeyError as exc:
            raise CipherError(f"chaotic key needs fields {names}, missing {exc}") from None
    vals = [float(t) for t in material]
    if len(vals) != len(names):
        raise CipherError(f"chaotic key needs {len(names)} values {names}, got {len(vals)}")
    if not all(math.isfinite(t) for t in vals):
        raise CipherError("chaotic key values must be finite")
    return cls(*vals)

"""Common interface, errors and small helpers shared by the speech ciphers.

Every cipher implements :class:`SpeechCipher`::

    cipher.name                                  # "aes_gcm" | "hyperchaotic" | "rossler"
    blob = cipher.encrypt(item_id, pcm_int16)    # -> bytes
    pcm  = cipher.decrypt(item_id, blob)         # -> np.ndarray int16 (1-D)

Only ``aes_gcm`` authenticates: a tampered blob, a wrong key or a wrong item id raises
:class:`AuthenticationError`.  The papers' chaotic ciphers have *no* authentication: decrypting
with a wrong key silently returns noise (that is the papers' design), only a malformed header is
detected (:class:`CipherError`).
"""

from __future__ import annotations

import inspect
import struct
from typing import Any, Protocol, runtime_checkable

import numpy as np

from speechret.errors import ConfigError, SpeechretError

__all__ = [
    "CipherError",
    "AuthenticationError",
    "WrongKeyError",
    "SpeechCipher",
    "ConfigurableCipher",
    "as_pcm16",
    "pack_chaotic_blob",
    "unpack_chaotic_blob",
]


class CipherError(SpeechretError, ValueError):
    """Any encryption / decryption failure (malformed or truncated blob, bad input)."""


class AuthenticationError(CipherError):
    """The blob failed authentication: it was tampered with, or the key / item id is wrong."""


class WrongKeyError(AuthenticationError):
    """The blob names a key (key id) different from the one supplied (detected before decrypting)."""


@runtime_checkable
class SpeechCipher(Protocol):
    name: str

    def encrypt(self, item_id: str, pcm: np.ndarray) -> bytes: ...

    def decrypt(self, item_id: str, blob: bytes) -> np.ndarray: ...


class ConfigurableCipher:
    """Construction of a speech cipher from configuration, shared by the three ciphers.

    :meth:`from_key_material` is the Hydra ``_target_`` of ``conf/cipher/<name>.yaml``: the config
    names the class directly, no registry. Subclasses set ``name`` and may override
    :meth:`demo_key`."""

    name: str

    @classmethod
    def demo_key(cls) -> Any:
        """The public demo key (``key_material: {demo: true}``); by default there is none."""
        raise CipherError(f"{cls.name} has no demo key; generate a key file")

    @classmethod
    def from_key_material(cls, key_material: Any = None, *, name: str | None = None, **params: Any):
        """``cls(key_material, **params)`` from a config node's values.

        ``key_material``: what the constructor takes (see the subclass), or a mapping with a true
        ``demo`` entry for :meth:`demo_key`. ``name``: the config's ``name`` key (index.py reads it),
        checked against the class. ``params``: constructor keywords. A mismatched name, missing key
        material or an unknown parameter raises :class:`~speechret.errors.ConfigError`."""
        if name is not None and name != cls.name:
            raise ConfigError(f"cipher.name: {name!r} does not match the configured class "
                              f"{cls.__name__}, whose cipher is {cls.name!r}")
        if key_material is None:
            raise ConfigError(f"cipher.key_material: the {cls.name} cipher needs key material")
        accepted = [p for p in inspect.signature(cls).parameters if p != "key"]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise ConfigError(f"cipher: unknown parameter(s) {unknown} for the {cls.name} cipher "
                              f"(it takes {accepted or 'none'})")
        if hasattr(key_material, "keys") and dict(key_material).get("demo"):
            key_material = cls.demo_key()
        return cls(key_material, **params)


def as_pcm16(samples, what: str = "samples") -> np.ndarray:
    """Validate mono 16-bit PCM: a 1-D int16 array (returned C-contiguous, not copied if possible)."""
    arr = np.asarray(samples)
    if arr.dtype != np.int16:
        raise CipherError(f"{what}: expected int16 PCM, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise CipherError(f"{what}: expected mono 1-D PCM, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


# Chaotic blob: magic(4) | version(1) | original length in samples (uint64 LE) | int16 LE samples
_CHAOTIC_HEADER = struct.Struct("<4sBQ")
CHAOTIC_VERSION = 1


def pack_chaotic_blob(magic: bytes, length: int, cipher_samples: np.ndarray) -> bytes:
    return _CHAOTIC_HEADER.pack(magic, CHAOTIC_VERSION, int(length)) + cipher_samples.astype("<i2").tobytes()


def unpack_chaotic_blob(magic: bytes, blob: bytes, item: str, multiple: int = 1) -> tuple[int, np.ndarray]:
    """Parse a chaotic blob -> (original length, int16 cipher samples); raises CipherError naming ``item``."""
    blob = bytes(blob)
    if len(blob) < _CHAOTIC_HEADER.size:
        raise CipherError(f"item {item!r}: blob truncated ({len(blob)} bytes, header needs {_CHAOTIC_HEADER.size})")
    got_magic, version, length = _CHAOTIC_HEADER.unpack_from(blob)
    if got_magic != magic:
        raise CipherError(f"item {item!r}: not a {magic!r} blob (magic {got_magic!r})")
    if version != CHAOTIC_VERSION:
        raise CipherError(f"item {item!r}: unsupported blob version {version}")
    body = blob[_CHAOTIC_HEADER.size:]
    if len(body) % 2:
        raise CipherError(f"item {item!r}: blob body has an odd number of bytes ({len(body)})")
    n = len(body) // 2
    if n % multiple or length > n or n - length >= multiple:
        raise CipherError(f"item {item!r}: blob truncated or corrupt ({n} cipher samples for length {length})")
    return int(length), np.frombuffer(body, dtype="<i2").astype(np.int16)

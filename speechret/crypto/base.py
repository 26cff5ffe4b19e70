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
import os
import re
import shlex
import stat
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
    "KeyFileModeError",
    "as_pcm16",
    "check_key_file_mode",
    "env_var_name",
    "refuse_raw_key_fields",
    "pack_chaotic_blob",
    "unpack_chaotic_blob",
]


class CipherError(SpeechretError, ValueError):
    """Any encryption / decryption failure (malformed or truncated blob, bad input)."""


class AuthenticationError(CipherError):
    """The blob failed authentication: it was tampered with, or the key / item id is wrong."""


class WrongKeyError(AuthenticationError):
    """The blob names a key (key id) different from the one supplied (detected before decrypting)."""


class KeyFileModeError(CipherError):
    """A key file that others may read (group / other permission bits set): refused."""


def check_key_file_mode(path) -> None:
    """Refuse a key file whose mode lets anyone but its owner read or write it.

    A key file is the library's whole secret; 0644 (the usual umask) would hand it to every user of
    the machine, so anything but owner-only access (0600 / 0400) raises :class:`KeyFileModeError`
    with the exact ``chmod 600 <file>`` to run. Nothing to check where POSIX modes do not exist."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return  # the reader reports the missing / unreadable file
    if mode & 0o077:
        raise KeyFileModeError(f"key file {path} has mode {mode:04o}: other users can read it; key files must "
                               f"be readable by their owner only. Run: chmod 600 {shlex.quote(str(path))}")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEXISH = re.compile(r"[0-9A-Fa-f]{16,}")


def env_var_name(value, field: str) -> str:
    """``value`` checked as the *name* of an environment variable (``key_env``, ``passphrase_env``).

    A value that is not an identifier, or that looks like key material itself (16+ hex digits),
    is refused without echoing it: someone who typed the key where its variable's name belongs
    must not find it in a log."""
    name = str(value)
    if not _ENV_NAME.fullmatch(name) or _HEXISH.fullmatch(name):
        raise ConfigError(f"cipher.key_material.{field}: must be the NAME of an environment variable that holds "
                          f"the secret (letters, digits, _), not the secret itself; the value given is not "
                          f"shown")
    return name


def refuse_raw_key_fields(material, allowed, cipher: str) -> None:
    """Refuse a key-material mapping (a config node) with any field but ``allowed``.

    Raw key material (``key_hex``, ``passphrase``, ``key``, a chaotic key's ``x0``...) in a config
    or on the command line would be copied into Hydra's output files and logs; only a key file or
    the *name* of an environment variable (or a prompt) may be configured. The error names the
    field, never its value."""
    if not hasattr(material, "keys"):
        return
    bad = sorted(str(k) for k in material if k not in allowed)
    if bad:
        fields = ", ".join(f"cipher.key_material.{k}" for k in bad)
        raise ConfigError(f"{fields}: raw key material (or an unknown key field) is never accepted in a config "
                          f"or on the command line, and its value is not shown. The {cipher} cipher takes "
                          f"key material only from {', '.join(sorted(allowed))}: a key file (mode 0600)"
                          + (" or a passphrase from an environment variable / an interactive prompt"
                             if "passphrase_env" in allowed else "") + ".")


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
    #: the fields a ``key_material`` config mapping may have (anything else is refused unseen)
    KEY_MATERIAL_FIELDS: tuple[str, ...] = ("key_file", "key_env", "demo")

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
        material, raw key material in a mapping (:func:`refuse_raw_key_fields`: the error names the
        field, never its value) or an unknown parameter raises :class:`~speechret.errors.ConfigError`."""
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
        refuse_raw_key_fields(key_material, cls.KEY_MATERIAL_FIELDS, cls.name)
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

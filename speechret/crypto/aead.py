"""Default speech cipher: AES-256-GCM authenticated encryption (``cryptography``'s AESGCM).

Blob format (version 1)::

    magic b"SRAG" (4) | version u8 (1) | key id (8 raw bytes) | nonce (12) | ciphertext || tag (16)

* the plaintext is the mono int16 PCM, little-endian;
* a fresh random 96-bit nonce (``os.urandom``) per item;
* associated data = header (magic|version|key id|nonce) + the UTF-8 item id, so a blob moved to
  another item id, or any header / body byte changed, fails authentication;
* the key id (first 8 bytes of SHA-256 of the key, shown as 16 hex digits by :func:`key_id`) lets a
  wrong key be recognised before decrypting (:class:`WrongKeyError`); it is a fingerprint, never
  the key.  Keys themselves are never written into a library.

Keys: a key file of 32 random bytes (:func:`generate_key_file`, created 0600, never overwritten;
a key file that group or others may read is refused, see
:func:`~speechret.crypto.base.check_key_file_mode`), or a passphrase through scrypt (n = 2**15,
r = 8, p = 1) with a random 16-byte salt kept in a small JSON "salt file" next to the library
(:func:`create_salt_file`, :func:`key_from_passphrase`).  The passphrase comes from an environment
variable (``passphrase_env``: its *name*) or an interactive prompt (``passphrase_prompt``,
:func:`getpass.getpass`), never from a config or the command line (:mod:`speechret.crypto.keys`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from speechret.errors import ConfigError

from .base import (
    AuthenticationError,
    CipherError,
    ConfigurableCipher,
    WrongKeyError,
    as_pcm16,
    check_key_file_mode,
    env_var_name,
    refuse_raw_key_fields,
)

__all__ = [
    "AesGcmCipher",
    "KeyFile",
    "KEY_BYTES",
    "generate_key_file",
    "load_key_file",
    "derive_key",
    "create_salt_file",
    "read_salt_file",
    "key_from_passphrase",
    "key_id",
    "prompt_passphrase",
    "resolve_aes_key",
    "AES_KEY_MATERIAL_FIELDS",
]

#: the only fields an ``aes_gcm`` key-material config may have: a key file, or the *name* of an
#: environment variable (key as hex, or a passphrase), or an interactive prompt; never the secret.
AES_KEY_MATERIAL_FIELDS = (
    "key_file", "key_env", "passphrase_env", "passphrase_prompt", "salt_file", "create_salt", "demo")  # demo: refused

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
MAGIC = b"SRAG"
VERSION = 1
_HEADER = struct.Struct("<4sB8s12s")  # magic, version, key id, nonce
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
SALT_BYTES = 16


def _key_fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:8]


def key_id(key: bytes) -> str:
    """Public fingerprint of a key: first 8 bytes of SHA-256(key), hex.  Safe for manifests."""
    return _key_fingerprint(_check_key(key)).hex()


def _check_key(key) -> bytes:
    key = bytes(key)
    if len(key) != KEY_BYTES:
        raise CipherError(f"AES-256 key must be {KEY_BYTES} bytes, got {len(key)}")
    return key


# ------------------------------------------------------------------------------------ key files
def generate_key_file(path) -> Path:
    """Create ``path`` holding 32 random bytes, mode 0600; refuses to overwrite an existing file."""
    path = Path(os.path.expanduser(os.fspath(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CipherError(f"key file {path} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, os.urandom(KEY_BYTES))
    finally:
        os.close(fd)
    return path


def load_key_file(path) -> bytes:
    """Read a 32-byte key file (raw bytes; a 64-hex-digit text file is accepted too).

    The file must be readable by its owner only (mode 0600 or 0400): otherwise
    :class:`~speechret.crypto.base.KeyFileModeError` says which ``chmod`` to run."""
    path = Path(os.path.expanduser(os.fspath(path)))
    check_key_file_mode(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CipherError(f"cannot read key file {path}: {exc}") from exc
    if len(data) != KEY_BYTES:
        try:
            data = bytes.fromhex(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            pass
    if len(data) != KEY_BYTES:
        raise CipherError(f"key file {path} must hold {KEY_BYTES} raw bytes (or 64 hex digits)")
    return data


@dataclass(frozen=True)
class KeyFile:
    """A key file on disk: ``KeyFile.generate(path)`` / ``KeyFile(path).load()``."""

    path: Path

    @classmethod
    def generate(cls, path) -> "KeyFile":
        return cls(generate_key_file(path))

    def load(self) -> bytes:
        return load_key_file(self.path)

    @property
    def key_id(self) -> str:
        return key_id(self.load())


# ------------------------------------------------------------------------------------ passphrase
def derive_key(passphrase: str | bytes, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R,
               p: int = SCRYPT_P) -> bytes:
    """scrypt(passphrase, salt) -> 32-byte key."""
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not passphrase:
        raise CipherError("empty passphrase")
    if len(salt) < 8:
        raise CipherError("scrypt salt must be at least 8 bytes")
    return Scrypt(salt=bytes(salt), length=KEY_BYTES, n=int(n), r=int(r), p=int(p)).derive(passphrase)


def create_salt_file(path, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> Path:
    """Write a JSON salt file ``{"kdf": "scrypt", "salt": hex, "n", "r", "p"}`` (not secret; no overwrite)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"kdf": "scrypt", "salt": os.urandom(SALT_BYTES).hex(), "n": n, "r": r, "p": p}
    try:
        with open(path, "x") as fh:
            json.dump(doc, fh)
    except FileExistsError:
        raise CipherError(f"salt file {path} already exists; refusing to overwrite it") from None
    return path


def read_salt_file(path) -> dict:
    path = Path(os.path.expanduser(os.fspath(path)))
    try:
        doc = json.loads(path.read_text())
        return {"salt": bytes.fromhex(doc["salt"]), "n": int(doc.get("n", SCRYPT_N)),
                "r": int(doc.get("r", SCRYPT_R)), "p": int(doc.get("p", SCRYPT_P))}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CipherError(f"bad salt file {path}: {exc}") from exc


def key_from_passphrase(passphrase: str | bytes, salt_file, *, create: bool = False) -> bytes:
    """Derive the key from ``passphrase`` and the salt file (created first when ``create``)."""
    path = Path(os.path.expanduser(os.fspath(salt_file)))
    if create and not path.exists():
        create_salt_file(path)
    s = read_salt_file(path)
    return derive_key(passphrase, s["salt"], n=s["n"], r=s["r"], p=s["p"])


def prompt_passphrase(salt_file, *, confirm: bool = False) -> str:
    """Ask for the passphrase on the terminal (:func:`getpass.getpass`, no echo); twice when
    ``confirm`` (a new library: a typo would lock it for good). No terminal -> ConfigError."""
    if not (sys.stdin and sys.stdin.isatty()):
        raise ConfigError("cipher.key_material.passphrase_prompt: no terminal to prompt on; give the passphrase "
                          "through an environment variable instead (cipher.key_material.passphrase_env=NAME)")
    pw = getpass.getpass(f"passphrase for the library key (salt {salt_file}): ")
    if confirm and getpass.getpass("repeat the passphrase: ") != pw:
        raise ConfigError("cipher.key_material.passphrase_prompt: the two passphrases differ")
    return pw


def resolve_aes_key(material) -> bytes:
    """Key material -> 32-byte key.  Accepted: 32 raw bytes (from code); a key-file path (str /
    Path); or a config mapping (:data:`AES_KEY_MATERIAL_FIELDS`) with one of ``key_file``,
    ``key_env`` (the name of an env var holding 64 hex digits), or ``passphrase_env`` (the name of
    an env var holding the passphrase) / ``passphrase_prompt: true`` together with ``salt_file``
    (and optional ``create_salt``).  Inline secrets (``key_hex``, ``passphrase``, ...) are refused
    with a :class:`~speechret.errors.ConfigError` naming the field, never showing its value."""
    if isinstance(material, (bytes, bytearray, memoryview)):
        return _check_key(material)
    if isinstance(material, (str, os.PathLike)):
        return load_key_file(material)
    if hasattr(material, "keys"):
        refuse_raw_key_fields(material, AES_KEY_MATERIAL_FIELDS, "aes_gcm")
        m = {k: v for k, v in dict(material).items() if v is not None and v is not False}
        if "key_file" in m:
            return load_key_file(m["key_file"])
        if "key_env" in m:
            name = env_var_name(m["key_env"], "key_env")
            raw = os.environ.get(name)
            if raw is None:
                raise CipherError(f"environment variable {name} (AES key, hex) is not set")
            try:
                return _check_key(bytes.fromhex(raw.strip()))
            except (ValueError, CipherError):
                raise CipherError(f"environment variable {name} must hold the key as 64 hex digits "
                                  f"(its value is not shown)") from None
        if "passphrase_env" in m or "passphrase_prompt" in m:
            if "salt_file" not in m:
                raise ConfigError("cipher.key_material.salt_file: a passphrase key needs a salt_file")
            salt = Path(os.path.expanduser(os.fspath(m["salt_file"])))
            create = bool(m.get("create_salt", False)) and not salt.exists()
            if "passphrase_env" in m:
                name = env_var_name(m["passphrase_env"], "passphrase_env")
                pw = os.environ.get(name)
                if pw is None:
                    raise CipherError(f"environment variable {name} (passphrase) is not set")
            else:
                pw = prompt_passphrase(salt, confirm=create)
            return key_from_passphrase(pw, salt, create=create)
    raise CipherError("no usable AES key material (give key_file, key_env, or passphrase_env / passphrase_prompt "
                      "+ salt_file)")


# ------------------------------------------------------------------------------------ cipher
class AesGcmCipher(ConfigurableCipher):
    """AES-256-GCM :class:`~speechret.crypto.base.SpeechCipher` (the default cipher)."""

    name = "aes_gcm"
    KEY_MATERIAL_FIELDS = AES_KEY_MATERIAL_FIELDS

    def __init__(self, key):
        self._key = resolve_aes_key(key)
        self._aead = AESGCM(self._key)
        self._kid = _key_fingerprint(self._key)

    @property
    def key_id(self) -> str:
        return self._kid.hex()

    def __repr__(self) -> str:  # never show the key
        return f"AesGcmCipher(key_id={self.key_id})"

    def encrypt(self, item_id: str, pcm: np.ndarray) -> bytes:
        item_id = _item(item_id)
        s = as_pcm16(pcm, f"item {item_id!r}")
        nonce = os.urandom(NONCE_BYTES)
        header = _HEADER.pack(MAGIC, VERSION, self._kid, nonce)
        ct = self._aead.encrypt(nonce, s.astype("<i2").tobytes(), header + item_id.encode("utf-8"))
        return header + ct

    def decrypt(self, item_id: str, blob: bytes) -> np.ndarray:
        item_id = _item(item_id)
        blob = bytes(blob)
        if len(blob) < _HEADER.size + TAG_BYTES:
            raise CipherError(f"item {item_id!r}: blob truncated ({len(blob)} bytes, "
                              f"at least {_HEADER.size + TAG_BYTES} needed)")
        magic, version, kid, nonce = _HEADER.unpack_from(blob)
        if magic != MAGIC:
            raise CipherError(f"item {item_id!r}: not an AES-GCM speech blob (magic {magic!r})")
        if version != VERSION:
            raise CipherError(f"item {item_id!r}: unsupported blob version {version}")
        if kid != self._kid:
            raise WrongKeyError(f"item {item_id!r}: encrypted under key id {kid.hex()}, "
                                f"but the key given has id {self.key_id} (wrong key or tampered header)")
        header = blob[:_HEADER.size]
        try:
            pt = self._aead.decrypt(nonce, blob[_HEADER.size:], header + item_id.encode("utf-8"))
        except InvalidTag:
            raise AuthenticationError(f"item {item_id!r}: authentication failed (blob tampered, "
                                      f"wrong item id, or wrong key)") from None
        if len(pt) % 2:
            raise CipherError(f"item {item_id!r}: plaintext has an odd number of bytes")
        return np.frombuffer(pt, dtype="<i2").astype(np.int16)


def _item(item_id) -> str:
    if not isinstance(item_id, str):
        raise CipherError(f"item id must be a str, got {type(item_id).__name__}")
    return item_id

"""Speech ciphers: the papers' chaotic ciphers and the default authenticated encryption.

* ``aes_gcm``      -- :class:`~speechret.crypto.aead.AesGcmCipher` (default; AES-256-GCM, tamper-evident)
* ``hyperchaotic`` -- :class:`~speechret.crypto.hyperchaotic.HyperchaoticCipher` (paper A, no authentication)
* ``rossler``      -- :class:`~speechret.crypto.rossler.RosslerCipher` (paper B, no authentication)

All three implement :class:`~speechret.crypto.base.SpeechCipher`:
``encrypt(item_id, pcm_int16) -> bytes`` and ``decrypt(item_id, blob) -> int16``.
Use :func:`build_cipher` (also the Hydra ``_target_`` of ``conf/cipher/*.yaml``).
"""

from __future__ import annotations

from .aead import (
    AesGcmCipher,
    KeyFile,
    create_salt_file,
    derive_key,
    generate_key_file,
    key_from_passphrase,
    key_id,
    load_key_file,
)
from .base import AuthenticationError, CipherError, SpeechCipher, WrongKeyError
from .chaos import hyperchaotic_trajectory, rossler_trajectory
from .hyperchaotic import HyperchaoticCipher, HyperchaoticKey
from .rossler import RosslerCipher, RosslerKey

__all__ = [
    "AesGcmCipher", "AuthenticationError", "CipherError", "HyperchaoticCipher", "HyperchaoticKey",
    "KeyFile", "RosslerCipher", "RosslerKey", "SpeechCipher", "WrongKeyError", "CIPHERS",
    "build_cipher", "create_salt_file", "derive_key", "generate_key_file", "hyperchaotic_trajectory",
    "key_from_passphrase", "key_id", "load_key_file", "rossler_trajectory",
]

CIPHERS = {"aes_gcm": AesGcmCipher, "hyperchaotic": HyperchaoticCipher, "rossler": RosslerCipher}


def build_cipher(name: str, key_material=None, **params) -> SpeechCipher:
    """Build a cipher by name.

    ``key_material``: for ``aes_gcm`` 32 bytes, a key-file path, or a mapping (``key_file`` /
    ``key_env`` / ``key_hex`` / ``passphrase_env`` + ``salt_file``); for the chaotic ciphers a key
    object, a sequence of initial values, a mapping {x0, y0, z0[, w0]}, ``{"key_file": json}``,
    ``{"key_env": VAR}`` (comma-separated values) or ``{"demo": true}`` for the public demo key.
    ``params`` go to the chaotic ciphers (system parameters, h, transient, stride, scale).
    """
    if name not in CIPHERS:
        raise ValueError(f"unknown cipher {name!r}; choose one of {sorted(CIPHERS)}")
    if key_material is None:
        raise CipherError(f"cipher {name!r} needs key material")
    if hasattr(key_material, "keys") and dict(key_material).get("demo"):
        if name == "hyperchaotic":
            key_material = HyperchaoticKey.paper_demo()
        elif name == "rossler":
            key_material = RosslerKey.demo()
        else:
            raise CipherError("aes_gcm has no demo key; generate a key file")
    if name == "aes_gcm":
        if params:
            raise TypeError(f"aes_gcm takes no parameters, got {sorted(params)}")
        return AesGcmCipher(key_material)
    return CIPHERS[name](key_material, **params)

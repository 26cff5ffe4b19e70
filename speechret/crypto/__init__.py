"""Speech ciphers: the papers' chaotic ciphers and the default authenticated encryption.

* ``aes_gcm``      -- :class:`~speechret.crypto.aead.AesGcmCipher` (default; AES-256-GCM, tamper-evident)
* ``hyperchaotic`` -- :class:`~speechret.crypto.hyperchaotic.HyperchaoticCipher` (paper A, no authentication)
* ``rossler``      -- :class:`~speechret.crypto.rossler.RosslerCipher` (paper B, no authentication)

All three implement :class:`~speechret.crypto.base.SpeechCipher`:
``encrypt(item_id, pcm_int16) -> bytes`` and ``decrypt(item_id, blob) -> int16``.
Each ``conf/cipher/<name>.yaml`` names its class's
:meth:`~speechret.crypto.base.ConfigurableCipher.from_key_material` as its ``_target_``; there is
no name registry. :func:`build_cipher` builds a cipher by that config name in code.

Key hygiene (no raw key material in configs or on the command line, key files 0600, guarded
``create_key``, redaction from Hydra's outputs): :mod:`speechret.crypto.keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import get_method
from omegaconf import OmegaConf

from speechret.config import CONF_DIR
from speechret.errors import ConfigError

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
from .base import (
    AuthenticationError,
    CipherError,
    ConfigurableCipher,
    KeyFileModeError,
    SpeechCipher,
    WrongKeyError,
    check_key_file_mode,
)
from .chaos import hyperchaotic_trajectory, rossler_trajectory
from .hyperchaotic import HyperchaoticCipher, HyperchaoticKey
from .rossler import RosslerCipher, RosslerKey

__all__ = [
    "AesGcmCipher", "AuthenticationError", "CipherError", "ConfigurableCipher", "HyperchaoticCipher",
    "HyperchaoticKey", "KeyFile", "KeyFileModeError", "RosslerCipher", "RosslerKey", "SpeechCipher", "WrongKeyError",
    "CIPHER_CONF_DIR", "build_cipher", "check_key_file_mode", "create_salt_file", "derive_key", "generate_key_file",
    "hyperchaotic_trajectory", "key_from_passphrase", "key_id", "load_key_file", "rossler_trajectory",
]

#: The cipher config group: ``<name>.yaml`` per cipher (the only place a cipher name is bound).
CIPHER_CONF_DIR = CONF_DIR / "cipher"


def build_cipher(name: str, key_material: Any = None, **params: Any) -> SpeechCipher:
    """The cipher of ``conf/cipher/<name>.yaml`` with ``key_material`` and ``params`` in place of
    the config's key material and parameter values (unlisted parameters keep the config's values).

    ``key_material``: for ``aes_gcm`` 32 bytes, a key-file path, or a mapping (``key_file`` /
    ``key_env`` / ``passphrase_env`` or ``passphrase_prompt`` + ``salt_file``; inline secrets such
    as ``key_hex`` / ``passphrase`` are refused); for the chaotic ciphers a key
    object, a sequence of initial values, a mapping {x0, y0, z0[, w0]}, ``{"key_file": json}``,
    ``{"key_env": VAR}`` (comma-separated values) or ``{"demo": true}`` for the public demo key.
    ``params`` go to the chaotic ciphers (system parameters, h, transient, stride, scale).
    An unknown name or parameter raises :class:`~speechret.errors.ConfigError`.
    """
    path = CIPHER_CONF_DIR / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in CIPHER_CONF_DIR.glob("*.yaml"))
        raise ConfigError(f"cipher: unknown cipher {name!r} (no {path}); choose one of {known}")
    node = OmegaConf.load(path)
    node.pop("key_material", None)  # replaced (never merged) by the caller's key material
    values = {k: v for k, v in OmegaConf.to_container(node, resolve=True).items() if not k.startswith("_")}
    target = node.get("_target_")
    if not target:
        raise ConfigError(f"cipher._target_: {path} names no target")
    try:
        factory = get_method(target)
    except ImportError as exc:
        raise ConfigError(f"cipher._target_: {path}: cannot import {target!r}: {exc}") from None
    return factory(key_material, **{**values, **params})

"""Key hygiene for the entry points: where key material may come from, and the guards that keep
it out of command lines, configs, Hydra's output files and error messages (issue 14, item 6).

Rules:

* **No raw key material in a config or on the command line.** A key comes from a key file
  (``cipher.key_material.key_file``, mode 0600) or, for ``aes_gcm``, from a passphrase read from
  an environment variable (``passphrase_env: SPEECHRET_PASSPHRASE``: the variable's *name*) or
  from an interactive prompt (``passphrase_prompt: true``, :func:`getpass.getpass`).
  ``key_hex``, ``passphrase``, ``key``, a chaotic key's ``x0``... are refused with a
  :class:`~speechret.errors.ConfigError` that names the parameter and never shows its value.
* **Refused before Hydra writes anything.** Hydra saves ``.hydra/{config,overrides,hydra}.yaml``
  *before* the task runs and echoes the overrides when a task fails ("Error executing job with
  overrides: [...]"), so a check inside the task is too late.  Two guards run earlier:
  :func:`refuse_secret_overrides` on ``sys.argv`` in ``index.py`` / ``search.py`` before
  ``@hydra.main`` (nothing is composed, no run directory is made), and :class:`SecretGuard`, a
  Hydra callback (``conf/hydra/default.yaml``) whose ``on_run_start`` checks the *composed*
  config -- a secret put in a config file rather than on the command line -- before Hydra
  creates the run directory.
* **Key files are owner-only** (:func:`~speechret.crypto.base.check_key_file_mode`: anything but
  0600 / 0400 is refused with the ``chmod 600 <file>`` to run).
* **``create_key`` never overwrites a key and never writes one for a library that is not new**
  (:func:`build_cipher_from_cfg`): a library directory that already holds data -> an error
  before any key (or salt) file is written.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate

from speechret.errors import ConfigError, SpeechretError

from .aead import generate_key_file
from .base import WrongKeyError

__all__ = ["KeyCreationRefused", "SecretGuard", "build_cipher_from_cfg", "cli_guard", "library_holds_data",
           "refuse_secret_config", "refuse_secret_overrides", "SAFE_KEY_FIELDS"]

log = logging.getLogger(__name__)

#: key-material fields that hold no secret (a path, an environment variable's *name*, a switch)
SAFE_KEY_FIELDS = frozenset({"key_file", "key_env", "passphrase_env", "passphrase_prompt", "salt_file",
                             "create_salt", "demo"})
#: a parameter (last path component, lower case) whose name says it holds a secret
_SECRET_NAME = re.compile(r"(passphrase|password|passwd|secret|key_hex|hex_key|raw_key|private)", re.I)
_SECRET_EXACT = frozenset({"key", "pw", "pass", "token"})


class KeyCreationRefused(ConfigError, WrongKeyError):
    """``create_key`` would write a new key for a library that already holds data (its items are
    under another key): refused before anything is written."""


def is_secret_param(path: str) -> bool:
    """A dotted parameter path that names raw key material."""
    parts = [p for p in path.split(".") if p]
    if not parts:
        return False
    last = parts[-1].lower()
    if last in SAFE_KEY_FIELDS:
        return False
    if "key_material" in parts[:-1]:
        return True  # only SAFE_KEY_FIELDS may be set under key_material
    return last in _SECRET_EXACT or bool(_SECRET_NAME.search(last))


def _looks_secret(field: str, value: Any) -> bool:
    """A value of a safe field that is key material typed in the wrong place: an environment
    variable *name* that is not an identifier or is all hex (16+ digits), or a key / salt file
    "path" of 32+ hex digits."""
    v = str(value).strip().strip("'\"")
    if value is None or v in ("", "null", "None") or v.startswith("${"):  # unset, or an interpolation
        return False
    if field in ("key_env", "passphrase_env"):
        return not _ENV_NAME.fullmatch(v) or bool(_HEXISH.fullmatch(v))
    if field in ("key_file", "salt_file"):
        return bool(re.fullmatch(r"[0-9A-Fa-f]{32,}", v))
    return False


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEXISH = re.compile(r"[0-9A-Fa-f]{16,}")


def refuse_secret_overrides(argv: list[str]) -> None:
    """Raise :class:`ConfigError` for a command-line override that carries raw key material.

    Checks every ``key=value`` (with ``+``, ``++`` or ``~``): a parameter under
    ``cipher.key_material`` other than :data:`SAFE_KEY_FIELDS`, a parameter whose name says it is
    a secret (``passphrase``, ``password``, ``key_hex``, ... -- also ``hydra.job.env_set.*``), and
    a whole ``cipher.key_material={...}`` mapping with such a field, and key material typed into a
    safe field (:func:`_looks_secret`: ``key_env=<64 hex digits>``). The message names the
    parameter only."""
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        bad = key if is_secret_param(key) or _looks_secret(key.split(".")[-1], value) else None
        if bad is None and key.split(".")[-1] == "key_material":
            fields = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", value)
            bad = next((f"{key}.{f}" for f in fields if is_secret_param(f"{key}.{f}")), None)
        if bad is not None:
            raise ConfigError(f"{bad}: raw key material is never accepted on the command line (its value is not "
                              f"shown, and nothing was written). Use a key file (cipher.key_material.key_file=PATH, "
                              f"mode 0600) or, for aes_gcm, a passphrase from an environment variable "
                              f"(cipher.key_material.passphrase_env=SPEECHRET_PASSPHRASE) or a prompt "
                              f"(cipher.key_material.passphrase_prompt=true), with cipher.key_material.salt_file.")


def refuse_secret_config(cfg: Any) -> None:
    """Raise :class:`ConfigError` when a composed config holds raw key material: a field of
    ``cipher.key_material`` other than :data:`SAFE_KEY_FIELDS`, or a secret-named entry of
    ``hydra.job.env_set``. Names the field, never the value."""
    cipher = cfg.get("cipher") if hasattr(cfg, "get") else None
    km = cipher.get("key_material") if hasattr(cipher, "get") else None
    if hasattr(km, "keys"):
        bad = sorted(str(k) for k in km.keys()
                     if str(k) not in SAFE_KEY_FIELDS or _looks_secret(str(k), _raw(km, k)))
        if bad:
            raise ConfigError(f"{', '.join('cipher.key_material.' + k for k in bad)}: raw key material (or an "
                              f"unknown key field) is never accepted in a config (its value is not shown); use a "
                              f"key file (mode 0600), or a passphrase from passphrase_env / passphrase_prompt")
    env = None
    try:
        env = cfg.hydra.job.env_set
    except Exception:  # noqa: BLE001 - no hydra node (compose API) or not readable: nothing to check
        env = None
    for k in (env.keys() if hasattr(env, "keys") else []):
        if is_secret_param(str(k)):
            raise ConfigError(f"hydra.job.env_set.{k}: a secret is never accepted in a config or on the command line "
                              f"(its value is not shown); export it in the environment instead")


def _raw(node: Any, key: Any) -> Any:
    """A config value without resolving interpolations (``${oc.env:...}`` stays as written)."""
    try:
        from omegaconf import DictConfig

        if isinstance(node, DictConfig):
            return node._get_node(key)._value()
    except Exception:  # noqa: BLE001 - fall back to the plain value
        pass
    return node.get(key)


class SecretGuard(Callback):
    """Hydra callback: :func:`refuse_secret_config` on the composed config in ``on_run_start`` /
    ``on_multirun_start``, which Hydra calls before it creates the run directory and writes
    ``.hydra/*.yaml`` -- so a secret in a config file is refused before it is copied anywhere.

    It also applies :func:`refuse_secret_overrides` to the run's overrides, which covers every app
    that uses ``conf/hydra/default.yaml`` (``train.py``, ``evaluate.py``), not only the two entry
    points with the argv guard. Hydra turns an exception raised by a callback into a mere warning
    and carries on, so on a refusal the guard prints the error (parameter name only) and exits
    with status 2 itself."""

    @staticmethod
    def _check(config: Any) -> None:
        try:
            try:  # the command line too, for apps without the argv guard (train.py, evaluate.py)
                overrides = [str(o) for o in config.hydra.overrides.task]
            except Exception:  # noqa: BLE001 - no hydra node: nothing to check
                overrides = []
            refuse_secret_overrides(overrides)
            refuse_secret_config(config)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config)


def cli_guard(argv: list[str] | None = None) -> None:
    """For ``index.py`` / ``search.py`` before ``@hydra.main``: on a secret override print the error
    (which names the parameter only) to stderr and exit with status 2; nothing is composed or
    written."""
    try:
        refuse_secret_overrides(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def library_holds_data(library: str | os.PathLike | None, ignore: tuple[Path, ...] = ()) -> bool:
    """Whether ``library`` is an existing directory with anything in it (but ``ignore``)."""
    if library is None:
        return False
    p = Path(os.path.expanduser(os.fspath(library)))
    if not p.is_dir():
        return p.exists()
    skip = {q.resolve() for q in ignore}
    return any(e.resolve() not in skip for e in p.iterdir())


def _path(v: Any) -> Path | None:
    return Path(os.path.expanduser(str(v))) if v not in (None, "", False) else None


def build_cipher_from_cfg(cfg_cipher: Any, create_key: bool = False, library: str | os.PathLike | None = None) -> Any:
    """Instantiate ``conf/cipher`` (after :func:`refuse_secret_config`).

    With ``create_key`` and the ``aes_gcm`` cipher, a missing key file is generated (mode 0600);
    an existing one is used, never overwritten. A key (or a passphrase salt, ``create_salt``) is
    only written when ``library`` is new -- absent or an empty directory: a library directory
    that already holds data gets :class:`KeyCreationRefused` before anything is written (a new
    key cannot open it, and a stray key file next to it would only mislead)."""
    refuse_secret_config({"cipher": cfg_cipher})
    km = cfg_cipher.get("key_material") or {}
    get = km.get if hasattr(km, "get") else (lambda _k, _d=None: None)
    key_file, salt_file = _path(get("key_file")), _path(get("salt_file"))
    new_key = create_key and cfg_cipher.get("name") == "aes_gcm" and key_file is not None and not key_file.exists()
    new_salt = key_file is None and bool(get("create_salt")) and salt_file is not None and not salt_file.exists()
    if new_key or new_salt:
        what = f"key file {key_file}" if new_key else f"salt file {salt_file}"
        if library_holds_data(library, ignore=tuple(p for p in (key_file, salt_file) if p is not None)):
            raise KeyCreationRefused(
                f"create_key: would write a new {what}, but the library {library} already holds data (encrypted "
                f"under its own key); refusing before anything is written. Give that library's key "
                f"(cipher.key_material.key_file=...), or choose a new library directory")
    if new_key:
        generate_key_file(key_file)
        log.info("created key file %s (mode 0600): keep it, the library cannot be decrypted without it", key_file)
    try:
        return instantiate(cfg_cipher)
    except Exception as exc:  # noqa: BLE001 - unwrap Hydra's InstantiationException for a clean message
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, SpeechretError):
            raise cause from None
        raise
